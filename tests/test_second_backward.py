"""A second backward() through records an earlier pass went through, against torch.

Without retain_graph a pass frees what the records saved; a record whose formula
saves no tensor (a view, a sum, an addition) stays usable, so a later pass
through it runs, and only one that reaches a freed saved value raises.
"""

from __future__ import annotations

import gc
import weakref

import numpy as np
import pytest
from helpers import needs_torch, torch

import ember as em

pytestmark = needs_torch

SECOND_TIME = "backward through the graph a second time"

# name -> expression over (module, x, y, i), x and y leaves requiring grad, i indices
OPS = {
    "view": lambda m, x, y, i: x.view(-1),
    "reshape": lambda m, x, y, i: x.reshape(3, 2),
    "reshape of a transpose": lambda m, x, y, i: x.T.reshape(-1),
    "narrow": lambda m, x, y, i: x.narrow(1, 0, 2),
    "empty narrow": lambda m, x, y, i: x.narrow(1, 2, 0),
    "T": lambda m, x, y, i: x.T,
    "permute": lambda m, x, y, i: x.permute(1, 0),
    "unsqueeze": lambda m, x, y, i: x.unsqueeze(0),
    "squeeze": lambda m, x, y, i: x[None].squeeze(0),
    "select": lambda m, x, y, i: x.select(0, 1),
    "slice": lambda m, x, y, i: x[:, ::2],
    "expand": lambda m, x, y, i: x[None].expand(2, 2, 3),
    "diagonal": lambda m, x, y, i: x.diagonal(),
    "index": lambda m, x, y, i: x[i],
    "index_select": lambda m, x, y, i: x.index_select(0, i),
    "cat": lambda m, x, y, i: m.cat([x, y]),
    "stack": lambda m, x, y, i: m.stack([x, y]),
    "add": lambda m, x, y, i: x + y,
    "add a number": lambda m, x, y, i: x + 2,
    "sub": lambda m, x, y, i: x - y,
    "rsub": lambda m, x, y, i: 2 - x,
    "neg": lambda m, x, y, i: -x,
    "mul": lambda m, x, y, i: x * y,
    "mul by a number": lambda m, x, y, i: x * 2,
    "div": lambda m, x, y, i: x / y,
    "floor": lambda m, x, y, i: x.floor(),
    "ceil": lambda m, x, y, i: x.ceil(),
    "round": lambda m, x, y, i: x.round(),
    "sum": lambda m, x, y, i: x.sum(),
    "sum(dim)": lambda m, x, y, i: x.sum(0),
    "mean": lambda m, x, y, i: x.mean(),
    "mean(dim)": lambda m, x, y, i: x.mean(1),
    "matmul": lambda m, x, y, i: x @ y.T,
    "clone": lambda m, x, y, i: x.clone(),
    "double": lambda m, x, y, i: x.double(),
    "flip": lambda m, x, y, i: x.flip(0),
    "cumsum": lambda m, x, y, i: x.cumsum(0),
    "repeat": lambda m, x, y, i: x.repeat(2, 1),
    "split": lambda m, x, y, i: x.split(1, 0)[0],
    "where": lambda m, x, y, i: m.where(x > 2, x, y),
    "exp": lambda m, x, y, i: x.exp(),
    "relu": lambda m, x, y, i: x.relu(),
    "remainder by a number": lambda m, x, y, i: x % 2,
    "pow": lambda m, x, y, i: x ** 2,
    "zero_ of a copy": lambda m, x, y, i: x.clone().zero_(),
    "amax": lambda m, x, y, i: x.amax(0),
}


def _twice(m, name):
    """x.grad and y.grad after two backward passes through one record, or the error."""
    x = m.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], requires_grad=True)
    y = m.tensor([[0.5, 1.5, 2.5], [3.5, 4.5, 5.5]], requires_grad=True)
    out = OPS[name](m, x, y, m.tensor([1, 0]))
    (out * out).sum().backward()
    try:
        (out.float() * 3).exp().sum().backward()
    except RuntimeError as e:
        return str(e)
    return [None if t.grad is None else t.grad.numpy() for t in (x, y)]


@pytest.mark.parametrize("name", list(OPS))
def test_a_second_backward_raises_exactly_where_torch_freed_a_saved_value(name, exec_mode):
    want = _twice(torch, name)
    got = _twice(em, name)
    if isinstance(want, str):
        assert isinstance(got, str) and SECOND_TIME in got, got
        return
    assert not isinstance(got, str), got
    for g, w in zip(got, want):
        assert (g is None) == (w is None)
        if w is not None:
            np.testing.assert_allclose(g, w, rtol=1e-5)


PROGRAMS = {
    "an empty narrow":
        "v5 = v1.narrow(0, 3, 0); (v5 * v5).mean().backward(); v5.sum().backward()",
    "a view of a reshape":
        "v4 = v1.reshape((1, 3, 1)); v5 = v4.view((3, 1)); v6 = v5 - v1;"
        "(v6 * v6).mean().backward(); v5.sum().backward()",
    "a chain of views": "v6 = v1[1, -1]; v7 = v6.transpose(0, 0); v8 = v6.squeeze(0);"
                        "(v7 ** 2).sum().backward(); v8.backward()",
    "through a freed product": "v2 = v1 * v1; v3 = v2.view(-1); v3.sum().backward();"
                               "v3.sum().backward()",
}


def _program(m, source):
    env = {"v1": m.tensor([[1.0], [0.5], [0.25]], requires_grad=True)}
    try:
        exec(source, env)
    except RuntimeError as e:
        return str(e)
    return env["v1"].grad.numpy()


@pytest.mark.parametrize("name", list(PROGRAMS))
def test_second_backward_programs_match_torch(name, exec_mode):
    want = _program(torch, PROGRAMS[name])
    got = _program(em, PROGRAMS[name])
    if isinstance(want, str):
        assert isinstance(got, str) and SECOND_TIME in got, got
    else:
        assert not isinstance(got, str), got
        np.testing.assert_allclose(got, want)


def test_a_kept_record_holds_no_memory_of_its_input():
    x = em.tensor([1.0, 2.0], requires_grad=True)
    h = x * 2
    em.realize(h)
    buf = weakref.ref(h._storage.buffer)
    loss = h.view(-1).sum()
    fn = loss.grad_fn
    loss.backward()
    x.sum().backward()  # the next pass lets go of what the usable records held
    del h, loss
    gc.collect()
    assert not fn.freed and fn.next_functions[0][0].name() == "ViewBackward0"
    assert buf() is None  # the sum and the view stay usable, but over no value


def test_a_kept_record_still_works_once_rebuilt_over_placeholders(exec_mode):
    x = em.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    w = em.tensor([1.0, 2.0], requires_grad=True)
    v = (x + w).mean(0)
    v.sum().backward()
    (w * 1).sum().backward()  # rebuilds the records of the first pass
    v.sum().backward()
    tx = torch.tensor([[1.0, 2.0], [3.0, 4.0]], requires_grad=True)
    tw = torch.tensor([1.0, 2.0], requires_grad=True)
    tv = (tx + tw).mean(0)
    tv.sum().backward()
    (tw * 1).sum().backward()
    tv.sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy())
    np.testing.assert_allclose(w.grad.numpy(), tw.grad.numpy())


def test_a_kept_record_reports_a_freed_one_below_it():
    x = em.tensor([1.0, 2.0], requires_grad=True)
    y = (x * x).view(-1)
    y.sum().backward()
    with pytest.raises(RuntimeError, match=SECOND_TIME):
        y.sum().backward()


@pytest.mark.parametrize("eager", [False, True])
def test_a_released_record_while_memory_is_shared_with_numpy(eager):
    """A third backward through a view, while some tensor shares memory with NumPy:
    the pass that gathers forward values skips records an earlier pass released."""
    import contextlib

    import numpy as np
    shared = em.from_numpy(np.ones(3, np.float32))  # noqa: F841 - keeps the sharing alive
    with em.eager() if eager else contextlib.nullcontext():
        v2 = em.tensor([[3.0, 1.5], [2.0, 0.5]], requires_grad=True)
        v4 = v2.squeeze()
        v4.backward(em.ones_like(v4))
        v2.backward(em.ones_like(v2))
        v4.sum().backward()
        assert v2.grad.tolist() == [[3.0, 3.0], [3.0, 3.0]]
