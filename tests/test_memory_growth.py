"""A training loop that updates its weights in place holds a bounded amount of memory.

The loop of PyTorch's "learning PyTorch with examples" (NumPy style): every step reads
the loss (`item()`, which realises the last step's pending weight updates) and writes
the weights in place again. Each new update is built from values computed from the
last one; without care the graphs held one another, a chain one step longer each step.
"""

import gc

import numpy as np
import pytest

import ember as em
from ember.ir.node import live_nodes
from ember.ir.ops import Op
from ember.runtime import buffers as rb

N, D_IN, H, D_OUT = 8, 12, 10, 3
LR = 1e-3


def _data(seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(np.float32)
            for s in ((N, D_IN), (N, D_OUT), (D_IN, H), (H, D_OUT))]


def _update(w, g, how):
    if how == "sub_":
        w.sub_(LR * g)
    elif how == "isub":
        w -= LR * g
    else:  # a view: only the first five columns learn
        w[:, :5].sub_(LR * g[:, :5])


def _update_np(w, g, how):
    if how == "view":
        w[:, :5] -= np.float32(LR) * g[:, :5]
    else:
        w -= np.float32(LR) * g


def _step(x, y, w1, w2, how):
    h = x @ w1
    h_relu = h.clamp(min=0)
    y_pred = h_relu @ w2
    loss = (y_pred - y).pow(2).sum().item()
    grad_y_pred = 2.0 * (y_pred - y)
    grad_w2 = h_relu.t() @ grad_y_pred
    grad_h = (grad_y_pred @ w2.t()).clone()
    grad_h[h < 0] = 0
    grad_w1 = x.t() @ grad_h
    _update(w1, grad_w1, how)
    _update(w2, grad_w2, how)
    return loss


def _step_np(x, y, w1, w2, how):
    h = x @ w1
    h_relu = np.maximum(h, 0)
    y_pred = h_relu @ w2
    loss = float(((y_pred - y) ** 2).sum())
    grad_y_pred = np.float32(2.0) * (y_pred - y)
    grad_w2 = h_relu.T @ grad_y_pred
    grad_h = grad_y_pred @ w2.T
    grad_h[h < 0] = 0
    grad_w1 = x.T @ grad_h
    _update_np(w1, grad_w1, how)
    _update_np(w2, grad_w2, how)
    return loss


def _sizes():
    gc.collect()
    return len(rb.realized), live_nodes(), len(rb._registry)


@pytest.mark.parametrize("how", ["sub_", "isub", "view"])
def test_inplace_training_loop_memory_is_bounded(how):
    arrays = _data()
    x, y, w1, w2 = (em.tensor(a) for a in arrays)
    xn, yn, w1n, w2n = (a.copy() for a in arrays)
    sizes = {}
    for k in range(60):
        loss = _step(x, y, w1, w2, how)
        np.testing.assert_allclose(loss, _step_np(xn, yn, w1n, w2n, how), rtol=1e-4)
        if k in (19, 59):
            sizes[k] = _sizes()
    assert sizes[59] == sizes[19], f"kept values, nodes, buffers grew: {sizes}"
    np.testing.assert_allclose(w1.numpy(), w1n, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(w2.numpy(), w2n, rtol=1e-4, atol=1e-6)


def test_write_reads_kept_values_from_their_buffers():
    """A pending write no longer holds the computation of a value realised since."""
    w = em.tensor(np.arange(6, dtype=np.float32))
    w.mul_(2.0)
    s = w.sum()  # pending: reads w's pending product
    assert w.max().item() == 10.0  # realises w's product: a kept value, w's buffer
    w.add_(s)
    seen, stack = set(), [w._storage.node]
    while stack:
        n = stack.pop()
        if id(n) not in seen:
            seen.add(id(n))
            assert n.op is not Op.MUL, "the realised product is still computed"
            stack.extend(n.inputs)
    np.testing.assert_array_equal(w.numpy(), np.arange(6) * 2 + 30)


def test_shared_memory_is_not_read_as_a_kept_value():
    """Memory NumPy shares may change behind ember's back: a pending value computed
    before it changed keeps the value it had."""
    u = em.tensor(np.ones(4, dtype=np.float32))
    u.mul_(2.0)
    s = u.sum()  # pending: 8
    assert u.max().item() == 2.0
    a = u.numpy()  # shares u's buffer, the realised product
    a[:] = 100.0
    u.add_(s)
    np.testing.assert_array_equal(u.numpy(), np.full(4, 108.0))


def _matmuls_run(step) -> int:
    """How many products the program of the realisation inside `step()` computes."""
    from ember.runtime import compiled
    found = []
    lookup = compiled._lookup_keeping

    def spy(outputs):
        entry, inputs, params, products = lookup(outputs)
        found.append(entry.source.count("np.matmul("))
        return entry, inputs, params, products

    compiled._lookup_keeping = spy
    try:
        step()
    finally:
        compiled._lookup_keeping = lookup
    return sum(found)


def test_a_loop_that_reads_its_loss_computes_each_product_once():
    """The forward's products (`h = x @ w1`), computed for `loss.item()`, are kept: the
    next step's realisation, which computes this step's update from them, reads them
    instead of computing them again (five products a step, as NumPy computes)."""
    arrays = _data()
    x, y, w1, w2 = (em.tensor(a) for a in arrays)
    xn, yn, w1n, w2n = (a.copy() for a in arrays)
    for _ in range(3):
        _step(x, y, w1, w2, "isub")
        _step_np(xn, yn, w1n, w2n, "isub")
    loss = []
    assert _matmuls_run(lambda: loss.append(_step(x, y, w1, w2, "isub"))) == 5
    np.testing.assert_allclose(loss[0], _step_np(xn, yn, w1n, w2n, "isub"), rtol=1e-4)
    np.testing.assert_allclose(w1.numpy(), w1n, rtol=1e-4, atol=1e-6)


def test_a_product_of_shared_memory_is_not_kept():
    """A product read from memory NumPy shares is computed again from that memory."""
    a = np.ones((3, 3), dtype=np.float32)
    x = em.from_numpy(a)
    w = em.tensor(np.eye(3, dtype=np.float32))
    p = x @ w
    assert p.sum().item() == 9.0
    a[:] = 2.0
    assert p.sum().item() == 18.0
    q = em.tensor(np.ones((3, 3), dtype=np.float32)) @ w
    assert q.sum().item() == 9.0
    assert q.node in rb.realized, "a product of ember's own memory is kept"
