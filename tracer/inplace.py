"""In-place operations, functionalised on the storage.

`x.add_(y)` computes the new value of x's elements as a node and writes it into
x's storage (a WRITE node over the old value), bumping the storage's version, so
every view of that storage sees the change and no data is copied where PyTorch
would not copy. Autograd follows PyTorch: in-place on a leaf that requires grad
(or a view of one) is an error while grad is enabled; in-place on a view of a
tensor that requires grad rewrites the base's history (CopySlices) and the
views' histories are rebuilt from it on demand.
"""

from __future__ import annotations

from ..ir import build as b
from ..ir.node import Node, node
from ..ir.ops import Op
from ..runtime import buffers as rb
from ..runtime.context import current, swap_eager, swap_grad
from . import elementwise, mathops
from .data import check_scalar
from .records import base_flat, record
from .storage import realize_storages
from .tensor import Tensor, wrap_node

__all__ = ["INPLACE_METHODS", "check_no_internal_overlap", "copy_", "fill_", "inplace_node",
           "inplace_op", "zero_"]


def _check(x: Tensor, others) -> bool:
    """Validate an in-place write on x; True when autograd must record it.

    A write into an integer or bool tensor never records: such a tensor cannot require
    grad, whatever it is copied from (torch's `b.copy_(w)`, `b[i] = w`).
    """
    if not current().grad_enabled or not x.dtype.is_floating_point:
        return False
    base = _tracked_base(x)
    records = _tracks(x, others, base)
    if records and x._view_meta is not None:  # NOTE: first, as in PyTorch
        raise RuntimeError(x._view_meta)
    if x._rg and x._grad_fn is None:  # NOTE: a view of a leaf is judged by its base below
        raise RuntimeError("a leaf Variable that requires grad is being used in an in-place "
                           "operation.")
    if base is not None and base._requires_grad and base._grad_fn is None:
        raise RuntimeError("a view of a leaf Variable that requires grad is being used in an "
                           "in-place operation.")
    return records


def _tracks(x: Tensor, others, base=False) -> bool:
    """Whether x or an operand of its in-place write requires grad (a detached alias's
    base is not looked at: autograd never sees the write). `base`: x's tracked base,
    where the caller has it."""
    if base is False:
        base = _tracked_base(x)
    return x._requires_grad or (base is not None and base._requires_grad) or any(
        o._requires_grad for o in others)


def _tracked_base(x: Tensor):
    """The base whose history a write into x rewrites: none for a detached alias (as in
    PyTorch, `v.detach().mul_(2)` changes the values autograd never sees)."""
    return x.history_base()


def check_no_internal_overlap(x: Tensor) -> None:
    """Refuse to write x when several of its elements are one memory location (expand)."""
    if x._view.has_overlap():
        raise RuntimeError("unsupported operation: more than one element of the written-to "
                           "tensor refers to a single memory location. Please clone() the "
                           "tensor before performing the operation.")


def _dense(v) -> bool:
    """Whether a view's elements fill a gap-free range of memory, each once."""
    lo, hi = v.span()
    return hi - lo == v.numel and not v.has_overlap()


def _check_no_partial_overlap(x: Tensor, others) -> None:
    """Refuse an input that shares some, but not exactly all, of x's memory (PyTorch's
    rule: the result would depend on the order the elements are written in).

    NOTE: as PyTorch's check, this only judges dense, non-overlapping views; an input in
    exactly x's memory with x's strides is fine (`x.add_(x)`).
    """
    xv = x._view
    for o in others:
        if o is x or o._storage is not x._storage or not o.numel() or not x.numel():
            continue
        ov = o._view
        if not (_dense(xv) and _dense(ov)):
            continue
        (a0, a1), (b0, b1) = xv.span(), ov.span()
        if (a0, a1) == (b0, b1) and xv.strides == ov.strides:
            continue
        if a0 < b1 and b0 < a1:
            raise RuntimeError("unsupported operation: some elements of the input tensor and "
                               "the written-to tensor refer to a single memory location. "
                               "Please clone() the tensor before performing the operation.")


def inplace_node(x: Tensor, build, others: tuple = (), name: str = "CopySlices",
                 uniform: bool = False, stops=()) -> Tensor:
    """Write `build(x_old_node, *other_nodes)` (x's shape) into x's elements.

    `uniform`: every element gets the same value (fill_, zero_), so a view whose
    elements alias (an expanded dim) may be written, as PyTorch allows. `stops`:
    nodes the gradient treats as constants (see autograd.record), a list `build`
    may fill.
    """
    records = _check(x, others)  # NOTE: first, as in PyTorch: a leaf's error wins
    if not uniform:
        check_no_internal_overlap(x)
    _check_no_partial_overlap(x, others)
    storage = x._storage
    storage.check_writable()
    other_nodes = tuple([o.node for o in others])
    version = storage.version
    base = _tracked_base(x)
    if records and base is not None:
        base_node = base.node
        flat_old = base_flat(base, base_node)
        x_old = b.as_strided(flat_old, x._view)
        new_flat = b.write(flat_old, build(x_old, *other_nodes), x._view)
        storage.write(new_flat)
        base_new = b.as_strided(new_flat, base._view)
        if base._detached:  # NOTE: read through a node of its own (see Tensor.node)
            base_new = node(Op.CAST, (base_new,), None, base_new.dtype, base_new.shape)
        base._node = base_new
        base._node_src = new_flat
        record(base, "CopySlices", (base,) + tuple(others), (base_node,) + other_nodes,
               stops=tuple(stops))
        base._grad_fn.dense = True  # as PyTorch: a fully overwritten base gets zeros
        base._grad_fn.saved = ((storage, None, None),) + _saved_before(
            base._grad_fn.saved[1:], storage, version)
        x._fn_version = -1  # the view's history is rebuilt from the base on demand
    else:
        x_old = x.node
        new_value = build(x_old, *other_nodes)
        dest = storage.node
        if not records and current().trace is None:
            # NOTE: only here: autograd's records and em.compile's traces keep the
            # nodes they were built with
            new_value, dest = rb.read_known_from_buffers((new_value, dest))
        new_flat = b.write(dest, new_value, x._view)
        storage.write(new_flat)
        if records or (not x._detached and storage.node is new_flat
                       and x._view.is_full(storage.numel)):
            # x reads new_value itself, not new_value flattened and reshaped back
            x._node = new_value
            x._node_src = storage.node
        if records:
            record(x, name, (x,) + tuple(others), (x_old,) + other_nodes,
                   stops=tuple(stops))
            x._grad_fn.dense = True  # as PyTorch: an overwritten x gets zeros, not None
            x._grad_fn.saved = ((storage, None, None),) + _saved_before(
                x._grad_fn.saved[1:], storage, version)
    if current().eager or _folds_away(x, storage):
        realize_storages([storage])
    elif storage.external and current().trace is None:
        # NOTE: NumPy shares this memory: the write reaches it before the call returns,
        # and x reads the storage again (its new value as a node would read a snapshot).
        realize_storages([storage])
        x._node = x._node_src = None
    return x


def _saved_before(saved: tuple, storage, version: int) -> tuple:
    """The operands' saved entries, those in x's own memory at its version before the
    write: an operand that is x (`v.mul_(v)`) was saved, then overwritten by the op
    itself, which backward reports as PyTorch does where the formula reads it."""
    return tuple([(st, version, desc) if st is storage else (st, v, desc)
                  for st, v, desc in saved])


def _folds_away(x: Tensor, storage) -> bool:
    """Whether a tensor that requires grad now reads a constant node.

    NOTE: a constant (after `zero_()` or `fill_()` under no_grad) is folded into
    the ops that broadcast or cast it, so the leaf would vanish from their graphs
    and get no gradient; realising gives it a buffer node of its own.
    """
    owner = x._base if x._base is not None else x
    return owner._requires_grad and storage.node.op is Op.CONST


# x op= y where y is a tensor of x's dtype and shape, or a number x's dtype absorbs:
# the node is built directly (what the out-of-place op would build) without
# wrapping x's old value and y in temporary tensors.
_DIRECT = {elementwise.add: Op.ADD, elementwise.sub: Op.SUB, elementwise.mul: Op.MUL}
_NUMBER_CATEGORY = {int: 1, float: 2}


def _direct_build(x: Tensor, fn, args, kwargs):
    """A build function for the common `x op= y`, or None for the general path."""
    op = _DIRECT.get(fn)
    if op is None and fn is elementwise.div and x.dtype.is_floating_point:
        op = Op.DIV
    if op is None or kwargs or len(args) != 1 or x.dtype.category == 0:
        return None
    other = args[0]
    if type(other) is Tensor:
        if other.dtype is not x.dtype or other._view.shape != x._view.shape or \
                other._storage.device != x._storage.device:
            return None
        return lambda old, o: node(op, (old, o))
    category = _NUMBER_CATEGORY.get(type(other))
    if category is None or category > x.dtype.category:
        return None
    return lambda old: node(op, (old, b.full(other, x.dtype, old.shape)))


_NAMES: dict = {}  # fn -> the name of its in-place record
_DIVISIONS = (elementwise.floor_divide, elementwise.remainder, elementwise.div, mathops.fmod)

# fn -> the form it takes when autograd records the write (the build runs without
# grad, where `clamp` leaves out what its gradient needs)
_GRADED = {elementwise.clamp: elementwise.clamp_graded,
           elementwise.relu: elementwise.relu_graded}


# fn -> (how many tensor operands come first, the record's name when one more is a tensor);
# operations defined above this module add theirs (`record_names`)
_BY_TENSOR = {elementwise.lerp: (1, "LerpBackward1"), mathops.fmod: (0, "FmodBackward1"),
              mathops.copysign: (0, "CopysignBackward0")}
_NAMES_BY_NUMBER = {mathops.copysign: "CopysignBackward1"}


def record_names(fn, leading: int, by_tensor: str, by_number: str) -> None:
    """PyTorch's names of `fn_`'s record: `by_tensor` where an operand after the first
    `leading` tensor operands is a tensor, `by_number` otherwise (scatter_ by a src
    tensor or by a value)."""
    _BY_TENSOR[fn] = (leading, by_tensor)
    _NAMES_BY_NUMBER[fn] = by_number


def inplace_op(x: Tensor, fn, *args, name: str | None = None, **kwargs) -> Tensor:
    """Apply the out-of-place `fn(x, *args)` and write its result into x."""
    # NOTE: a tensor passed by keyword (`clamp_(min=t)`) is an operand too
    others = tuple([a for a in args if isinstance(a, Tensor)]
                   + [v for v in kwargs.values() if isinstance(v, Tensor)])
    if fn in _DIVISIONS and args and (fn is not elementwise.div or kwargs.get("rounding_mode")):
        # NOTE: checked before anything is written: a zero found later would leave x
        # holding a value that can never be computed
        elementwise.check_int_divisor(x, args[0], now=True)
    if name is None:
        name = _NAMES.get(fn) or _NAMES_BY_NUMBER.get(fn)
        if name is None:
            # NOTE: PyTorch's record names are CamelCase: scatter_add -> ScatterAddBackward0
            name = _NAMES[fn] = "".join(
                p.capitalize() for p in fn.__name__.rstrip("_").split("_")) + "Backward0"
    if fn is elementwise.clamp:
        name = elementwise.clamp_name(others)
    elif fn is elementwise.remainder and others:
        name = "RemainderBackward1"  # by a tensor (PyTorch's name)
    elif fn is elementwise.floor_divide:
        name = "torch::autograd::NotImplemented"
    elif fn is elementwise.div and kwargs.get("rounding_mode") is not None:
        name = "DivBackward2"
    elif fn is elementwise.pow and others:
        name = "PowBackward1"
    elif fn in _BY_TENSOR and others[_BY_TENSOR[fn][0]:]:
        name = _BY_TENSOR[fn][1]  # PyTorch's record by a tensor operand
    direct = _direct_build(x, fn, args, kwargs)
    if direct is not None:
        return inplace_node(x, direct, others, name)
    stops: list = []
    if fn in _GRADED and current().grad_enabled and _tracks(x, others):
        kwargs = dict(kwargs, stops=stops)
        fn = _GRADED[fn]

    def build(x_old: Node, *other_nodes: Node) -> Node:
        grad_was, eager_was = swap_grad(False), swap_eager(False)
        try:
            it = iter(other_nodes)
            temp_args = [wrap_node(next(it)) if isinstance(a, Tensor) else a for a in args]
            temp_kwargs = {k: wrap_node(next(it)) if isinstance(v, Tensor) else v
                           for k, v in kwargs.items()}
            out = fn(wrap_node(x_old), *temp_args, **temp_kwargs)
        finally:
            swap_eager(eager_was)
            swap_grad(grad_was)
        if tuple(out.shape) != tuple(x.shape):
            raise RuntimeError(f"output with shape {list(x.shape)} doesn't match the broadcast "
                               f"shape {list(out.shape)}")
        if out.dtype.category > x.dtype.category:
            raise RuntimeError(f"result type {out.dtype.name.capitalize()} can't be cast to the "
                               f"desired output type {x.dtype.name.capitalize()}")
        return b.cast(out.node, x.dtype)
    return inplace_node(x, build, others, name, stops=stops)


def copy_(x: Tensor, src) -> Tensor:
    """Copy src (broadcast, cast to x's dtype) into x's elements."""
    src = elementwise.as_operand(src, "source")
    if isinstance(src, Tensor):
        shape = elementwise.broadcast_shapes(tuple(src.shape), tuple(x.shape))
        if shape != tuple(x.shape):
            raise RuntimeError(f"output with shape {list(x.shape)} doesn't match the broadcast "
                               f"shape {list(shape)}")
        return inplace_node(x, lambda old, s: b.expand_to(b.cast(s, x.dtype), tuple(x.shape)),
                            (src,), "torch::autograd::CopyBackwards")
    return fill_(x, src)


def _fill_tensor(x: Tensor, value: Tensor) -> Tensor:
    """`x.fill_(t)` of a 0-d t: a copy, recorded under PyTorch's name for it."""
    out = copy_(x, value)
    fn = out._grad_fn
    if fn is not None and fn._name == "torch::autograd::CopyBackwards":
        fn._name = "FillBackward3"
    return out


def fill_(x: Tensor, value) -> Tensor:
    """Fill `x` with `value` (a number, or a 0-dim tensor cast to x's dtype); returns `x`.

    The number is converted to x's dtype (2.5 fills an integer tensor with 2); one
    out of its range raises RuntimeError.

    >>> em.zeros(3).fill_(2)
    tensor([2., 2., 2.])
    """
    if isinstance(value, Tensor):
        if value.ndim:
            raise RuntimeError(f"fill_ only supports 0-dimension value tensor but got tensor "
                               f"with {value.ndim} dimensions.")
        return _fill_tensor(x, value)
    check_scalar(value, x.dtype)
    return inplace_node(x, lambda old: b.full(value, x.dtype, tuple(x.shape)), (),
                        "FillBackward2", uniform=True)


def zero_(x: Tensor) -> Tensor:
    """Fill `x` with zeros in place; returns `x`.

    >>> em.ones(2).zero_()
    tensor([0., 0.])
    """
    return inplace_node(x, lambda old: b.zeros(x.dtype, tuple(x.shape)), (), "ZeroBackward0",
                        uniform=True)


def _make_inplace(fn_name: str, module):
    fn = getattr(module, fn_name)

    def method(self, *args, **kwargs):
        return inplace_op(self, fn, *args, **kwargs)
    method.__name__ = fn_name + "_"
    method.__doc__ = f"In-place `{fn_name}`: writes the result into this tensor; returns it."
    return method


INPLACE_METHODS = ["add", "sub", "mul", "div", "pow", "neg", "abs", "sqrt", "rsqrt", "exp",
                   "log", "log1p", "expm1", "sin", "cos", "tan", "tanh", "sigmoid", "relu",
                   "clamp", "clip", "floor", "ceil", "round", "trunc", "reciprocal", "sign",
                   "square", "remainder", "floor_divide", "maximum", "minimum", "lerp",
                   "nan_to_num", "logical_not", "bitwise_not", "bitwise_and", "bitwise_or",
                   "bitwise_xor", "multiply", "divide", "negative", "exp2",
                   "log2", "log10", "erf", "erfc", "erfinv"]
# in-place forms of mathops' functions (those of modules above this one bind their own)
MATHOPS_INPLACE = ["asin", "acos", "atan", "sinh", "cosh", "asinh",
                   "acosh", "atanh", "arcsin", "arccos", "arctan", "arcsinh", "arccosh",
                   "arctanh", "atan2", "arctan2", "hypot", "copysign", "fmod",
                   "bitwise_left_shift", "bitwise_right_shift"]


# Tensor methods: `t.add_(y)`, `t.copy_(src)`, `t += y`, ...
for _name in INPLACE_METHODS:
    setattr(Tensor, _name + "_", _make_inplace(_name, elementwise))
for _name in MATHOPS_INPLACE:
    setattr(Tensor, _name + "_", _make_inplace(_name, mathops))
Tensor.copy_ = copy_
Tensor.fill_ = fill_
Tensor.zero_ = zero_


def _inplace_operator(name):
    method = getattr(Tensor, name)

    def op(self, other):
        return method(self, other)
    return op


for _op, _method in (("__iadd__", "add_"), ("__isub__", "sub_"), ("__imul__", "mul_"),
                     ("__itruediv__", "div_"), ("__ifloordiv__", "floor_divide_"),
                     ("__imod__", "remainder_"), ("__ilshift__", "bitwise_left_shift_"),
                     ("__irshift__", "bitwise_right_shift_")):
    setattr(Tensor, _op, _inplace_operator(_method))
