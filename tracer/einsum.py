"""`em.einsum`: Einstein summation lowered to diagonal, sum, permute, reshape and matmul.

The equation is parsed as torch parses it (same errors); every operand first loses its
repeated subscripts (a diagonal view) and the subscripts no other operand or the output
needs (a sum); the operands are then contracted left to right, each pair as one batched
matrix product, so the result is fast and differentiable with the ordinary rules.
"""

from __future__ import annotations

from math import prod

from .tensor import Tensor

__all__ = ["einsum"]

_ELL = "..."


def _is_label(ch: str) -> bool:
    return ("a" <= ch <= "z") or ("A" <= ch <= "Z")


def _parse_term(eq: str, start: int, stop: int, what: str) -> list:
    """The subscripts of eq[start:stop] (a letter, or None for the ellipsis)."""
    labels: list = []
    i = start
    found = False
    while i < stop:
        ch = eq[i]
        if ch == " ":
            i += 1
        elif ch == ".":
            if found:
                raise RuntimeError(f"einsum(): found '.' for {what} for which an ellipsis was "
                                   f"already found")
            if eq[i:i + 3] != _ELL or i + 3 > stop:
                raise RuntimeError(f"einsum(): found '.' for {what} that is not part of any "
                                   f"ellipsis" + (" (...)" if what == "output" else ""))
            labels.append(None)
            found = True
            i += 3
        elif _is_label(ch):
            labels.append(ch)
            i += 1
        else:
            raise RuntimeError(f"einsum(): invalid subscript given at index {i} in the equation "
                               f"string, subscripts must be in [a-zA-Z]")
    return labels


def _parse(equation: str, n_ops: int):
    arrow = equation.find("->")
    lhs_end = len(equation) if arrow < 0 else arrow
    terms, start = [], 0
    while True:
        comma = equation.find(",", start, lhs_end)
        stop = lhs_end if comma < 0 else comma
        if len(terms) == n_ops:
            raise RuntimeError("einsum(): fewer operands were provided than specified in the "
                               "equation")
        terms.append(_parse_term(equation, start, stop, f"operand {len(terms)}"))
        if comma < 0:
            break
        start = comma + 1
    if len(terms) < n_ops:
        raise RuntimeError("einsum(): more operands were provided than specified in the "
                           "equation")
    out = None if arrow < 0 else _parse_term(equation, arrow + 2, len(equation), "output")
    return terms, out


def _expand_terms(terms, operands):
    """Each operand's subscripts with its ellipsis replaced by integer labels (aligned
    from the right, as broadcasting aligns), and the ellipsis' length."""
    expanded, n_ell = [], 0
    for k, (term, x) in enumerate(zip(terms, operands)):
        named = sum(1 for t in term if t is not None)
        if None in term:
            if named > x.ndim:
                raise RuntimeError(f"einsum(): the number of subscripts in the equation "
                                   f"({named}) is more than the number of dimensions "
                                   f"({x.ndim}) for operand {k}")
            n_ell = max(n_ell, x.ndim - named)
        elif named != x.ndim:
            raise RuntimeError(f"einsum(): the number of subscripts in the equation ({named}) "
                               f"does not match the number of dimensions ({x.ndim}) for "
                               f"operand {k} and no ellipsis was given")
    for term, x in zip(terms, operands):
        labels = []
        for t in term:
            if t is None:
                width = x.ndim - (len(term) - 1)
                labels.extend(range(n_ell - width, n_ell))
            else:
                labels.append(t)
        expanded.append(labels)
    return expanded, n_ell


def _dedupe(x: Tensor, labels: list, k: int):
    """x with each repeated subscript reduced to its diagonal (a view)."""
    while True:
        seen = {}
        for i, lab in enumerate(labels):
            if lab in seen:
                j = seen[lab]
                if x.shape[i] != x.shape[j]:
                    raise RuntimeError(f"einsum(): subscript {lab} is repeated for operand {k} "
                                       f"but the sizes don't match, {x.shape[i]} != "
                                       f"{x.shape[j]}")
                x = x.diagonal(0, j, i)
                labels = [lb for m, lb in enumerate(labels) if m not in (i, j)] + [lab]
                break
            seen[lab] = i
        else:
            return x, labels


def _sum_out(x: Tensor, labels: list, keep: set):
    dims = tuple(i for i, lab in enumerate(labels) if lab not in keep)
    if not dims:
        return x, labels
    return x.sum(dims), [lab for lab in labels if lab in keep]


def _contract(a: Tensor, la: list, c: Tensor, lc: list, keep: set):
    """The product of a and c summed over their shared subscripts that keep lacks."""
    sizes = {}
    for x, labels in ((a, la), (c, lc)):
        for lab, s in zip(labels, x.shape):
            sizes[lab] = max(sizes.get(lab, 1), s)
    shared = [lab for lab in la if lab in lc]
    batch = [lab for lab in shared if lab in keep]
    inner = [lab for lab in shared if lab not in keep]
    only_a = [lab for lab in la if lab not in lc]
    only_c = [lab for lab in lc if lab not in la]
    # NOTE: a subscript of size 1 in one operand broadcasts against the other's
    a = a.permute([la.index(lab) for lab in batch + only_a + inner])
    c = c.permute([lc.index(lab) for lab in batch + inner + only_c])
    a = a.expand(*[sizes[lab] for lab in batch], *a.shape[len(batch):len(batch) + len(only_a)],
                 *[sizes[lab] for lab in inner])
    c = c.expand(*[sizes[lab] for lab in batch + inner], *c.shape[len(batch) + len(inner):])
    nb = prod(sizes[lab] for lab in batch)
    m = prod(sizes[lab] for lab in only_a)
    kk = prod(sizes[lab] for lab in inner)
    n = prod(sizes[lab] for lab in only_c)
    out = _matrix(a, len(batch), len(only_a), nb, m, kk) @ \
        _matrix(c, len(batch), len(inner), nb, kk, n)
    labels = batch + only_a + only_c
    return out.reshape([sizes[lab] for lab in labels]), labels


def _matrix(x: Tensor, n_batch: int, n_rows: int, nb: int, rows: int, cols: int) -> Tensor:
    """x (batch dims, row dims, column dims) as a (nb, rows, cols) batch of matrices.

    NOTE: where x's memory holds the columns before the rows (a transposed operand, as
    k in q @ k^T), the matrices are a transposed view, not a copy: matmul reads either.
    """
    cut = n_batch + n_rows
    order = list(range(n_batch)) + list(range(cut, x.ndim)) + list(range(n_batch, cut))
    swapped = x.permute(order)
    if not x.is_contiguous() and swapped.is_contiguous():
        return swapped.reshape(nb, cols, rows).transpose(1, 2)
    return x.reshape(nb, rows, cols)


def _check_sizes(operands, labels_list):
    seen: dict = {}
    for k, (x, labels) in enumerate(zip(operands, labels_list)):
        for lab, s in zip(labels, x.shape):
            prev = seen.get(lab)
            if prev is not None and s != prev and s != 1 and prev != 1:
                what = "subscript " + lab if isinstance(lab, str) else "ellipsis dimension"
                raise RuntimeError(f"einsum(): {what} has size {s} for operand {k} which does "
                                   f"not broadcast with previously seen size {prev}")
            if prev is None or prev == 1:
                seen[lab] = s


def einsum(equation: str, *operands) -> Tensor:
    """Sum the product of the operands over the subscripts the output does not name.

    Follows `torch.einsum`: subscripts are letters (`a-z`, `A-Z`), one term per operand
    separated by commas; `->` names the output (without it, the output takes the
    subscripts that appear exactly once, in alphabetical order, after the ellipsis
    dims); a subscript repeated within a term takes a diagonal; `...` stands for the
    dims not named, broadcast across operands. The operands may also be given as one
    list. Lowered to diagonal views, sums, permutes and batched matmuls.

    Args:
        equation (str): the subscripts, e.g. ``"bij,bjk->bik"``.
        *operands (Tensor): the tensors, one per term.

    >>> a, b = em.arange(6.).reshape(2, 3), em.arange(12.).reshape(3, 4)
    >>> em.einsum("ij,jk->ik", a, b)
    tensor([[20., 23., 26., 29.],
            [56., 68., 80., 92.]])
    >>> em.einsum("ii", em.eye(3))
    tensor(3.)
    """
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])
    if not isinstance(equation, str):
        raise TypeError(f"einsum(): argument 'equation' (position 1) must be str, not "
                        f"{type(equation).__name__}")
    for i, x in enumerate(operands):
        if not isinstance(x, Tensor):
            raise TypeError(f"einsum(): argument 'tensors' must be tuple of Tensors, but "
                            f"found element of type {type(x).__name__} at pos {i}")
    if not operands:
        raise RuntimeError("einsum(): must provide at least one operand")
    terms, out_term = _parse(equation, len(operands))
    labels_list, n_ell = _expand_terms(terms, operands)
    ops, labs = [], []
    for k, (x, labels) in enumerate(zip(operands, labels_list)):
        x, labels = _dedupe(x, labels, k)
        ops.append(x)
        labs.append(labels)
    _check_sizes(ops, labs)
    out = _output(out_term, labels_list, n_ell)
    result, labels = _reduce(ops, labs, out)
    # NOTE: always a new tensor (a view where nothing was computed), never an operand
    return result.permute([labels.index(lab) for lab in out])


def _output(out_term, labels_list, n_ell) -> list:
    every = [lab for labels in labels_list for lab in labels]
    if out_term is None:
        once = sorted({lab for lab in every if isinstance(lab, str) and every.count(lab) == 1})
        return list(range(n_ell)) + once
    out = []
    for lab in out_term:
        if lab is None:
            out.extend(range(n_ell))
            continue
        if lab in out:
            raise RuntimeError(f"einsum(): output subscript {lab} appears more than once in "
                               f"the output")
        if lab not in every:
            raise RuntimeError(f"einsum(): output subscript {lab} does not appear in the "
                               f"equation for any input operand")
        out.append(lab)
    return out


def _reduce(ops, labs, out):
    """Contract the operands left to right, summing each subscript once nothing needs it."""
    def needed(after: int) -> set:
        keep = set(out)
        for labels in labs[after:]:
            keep.update(labels)
        return keep

    acc, acc_labels = _sum_out(ops[0], labs[0], needed(1))
    for k in range(1, len(ops)):
        keep = needed(k + 1)
        x, labels = _sum_out(ops[k], labs[k], keep | set(acc_labels))
        acc, acc_labels = _contract(acc, acc_labels, x, labels, keep)
    sizes = dict(zip(acc_labels, acc.shape))
    # NOTE: an output subscript of size 1 in every operand that broadcast stays 1
    missing = [lab for lab in out if lab not in sizes]
    if missing:  # pragma: no cover - every output subscript comes from some operand
        raise AssertionError(missing)
    return acc, acc_labels
