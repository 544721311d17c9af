"""em.compile over tensors the function reaches without receiving them, value reads
while tracing, output aliasing, escaping values and the recompile limit."""

import importlib
import re
import warnings

import numpy as np
import pytest

import ember as em

torch = pytest.importorskip("torch")


def same(a, b):
    np.testing.assert_array_equal(np.asarray(a.detach().numpy()), np.asarray(b.detach().numpy()))


# -- captured tensors ----------------------------------------------------------------

def test_a_closure_tensor_is_read_at_each_call():
    w = em.tensor([1.0, 2.0])

    @em.compile
    def f(x):
        return (x * w).sum()

    x = em.tensor([1.0, 1.0])
    assert f(x).item() == 3.0
    with em.no_grad():
        w.add_(10)
    assert f(x).item() == 23.0  # torch.compile gives 23 too
    assert f.traces == 1 and f.hits == 1
    assert "captures 1 tensor(s)" in em.explain(f)


class Model:
    def __init__(self):
        self.w = em.tensor([1.0, 2.0], requires_grad=True)


def issue_step(m):
    def step(x):
        loss = (x * m.w).sum()
        loss.backward()
        with em.no_grad():
            m.w.sub_(0.1 * m.w.grad)
            m.w.grad.zero_()
        return loss.detach()
    return step


def test_a_step_over_an_attribute_matches_the_uncompiled_run_step_by_step():
    m1, m2 = Model(), Model()
    compiled, plain = em.compile(issue_step(m1)), issue_step(m2)
    x = em.tensor([1.0, 1.0])
    for _ in range(5):
        same(compiled(x), plain(x))
        same(m1.w, m2.w)
        same(m1.w.grad, m2.w.grad)
    assert m1.w.tolist() != [1.0, 2.0]
    assert compiled.traces == 2 and compiled.hits == 3  # .grad appears after the first call


class SGD:
    """An optimizer holding its parameters in a list, with momentum buffers."""

    def __init__(self, params, lr, momentum=0.9):
        self.params, self.lr, self.momentum = list(params), lr, momentum
        self.bufs = [em.zeros(p.shape) for p in self.params]

    def step(self):
        with em.no_grad():
            for p, buf in zip(self.params, self.bufs):
                buf.mul_(self.momentum).add_(p.grad)
                p.sub_(self.lr * buf)

    def zero_grad(self):
        for p in self.params:
            p.grad = None


class Linear:
    def __init__(self, n_in, n_out, rng):
        self.weight = em.tensor(rng.standard_normal((n_out, n_in)).astype(np.float32) * 0.5,
                                requires_grad=True)
        self.bias = em.tensor(np.zeros(n_out, np.float32), requires_grad=True)

    def __call__(self, x):
        return x @ self.weight.T + self.bias


class Net:
    """Parameters of nested objects: a list of layers, each with its own."""

    def __init__(self, seed):
        rng = np.random.default_rng(seed)
        self.layers = [Linear(3, 8, rng), Linear(8, 2, rng)]

    def parameters(self):
        return [p for layer in self.layers for p in (layer.weight, layer.bias)]

    def __call__(self, x):
        return self.layers[1](self.layers[0](x).tanh())


def training(net, opt):
    def step(x, y):
        opt.zero_grad()
        loss = ((net(x) - y) ** 2).mean()
        loss.backward()
        opt.step()
        return loss.detach()
    return step


def test_an_optimizer_over_nested_parameters_matches_the_uncompiled_run():
    nets = [Net(0), Net(0)]
    opts = [SGD(n.parameters(), 0.05) for n in nets]
    compiled, plain = em.compile(training(nets[0], opts[0])), training(nets[1], opts[1])
    rng = np.random.default_rng(1)
    for i in range(6):
        x = em.tensor(rng.standard_normal((4, 3)).astype(np.float32))
        y = em.tensor(rng.standard_normal((4, 2)).astype(np.float32))
        np.testing.assert_allclose(compiled(x, y).item(), plain(x, y).item(), rtol=1e-6)
        for p, q in zip(nets[0].parameters(), nets[1].parameters()):
            np.testing.assert_allclose(p.detach().numpy(), q.detach().numpy(), rtol=1e-5,
                                       atol=1e-6)
            np.testing.assert_allclose(p.grad.numpy(), q.grad.numpy(), rtol=1e-5, atol=1e-6)
        for a, c in zip(opts[0].bufs, opts[1].bufs):
            np.testing.assert_allclose(a.numpy(), c.numpy(), rtol=1e-5, atol=1e-6)
    # zero_grad sets .grad to None: one program for each state, both reused
    assert compiled.traces == 2 and compiled.hits == 4
    assert "captures" in em.explain(compiled)


def test_the_same_loop_in_torch_agrees():
    net = Net(0)
    opt = SGD(net.parameters(), 0.05)
    step = em.compile(training(net, opt))
    tp = [torch.tensor(p.detach().numpy().copy(), requires_grad=True) for p in net.parameters()]
    tbufs = [torch.zeros_like(p) for p in tp]
    rng = np.random.default_rng(1)
    for _ in range(4):
        xa = rng.standard_normal((4, 3)).astype(np.float32)
        ya = rng.standard_normal((4, 2)).astype(np.float32)
        got = step(em.tensor(xa), em.tensor(ya)).item()
        x, y = torch.tensor(xa), torch.tensor(ya)
        h = (x @ tp[0].T + tp[1]).tanh()
        loss = ((h @ tp[2].T + tp[3] - y) ** 2).mean()
        loss.backward()
        with torch.no_grad():
            for p, buf in zip(tp, tbufs):
                buf.mul_(0.9).add_(p.grad)
                p.sub_(0.05 * buf)
                p.grad = None
        np.testing.assert_allclose(got, loss.item(), rtol=1e-5)
    for p, q in zip(net.parameters(), tp):
        np.testing.assert_allclose(p.detach().numpy(), q.detach().numpy(), rtol=1e-4, atol=1e-6)


def test_accumulated_grads_and_partial_writes_of_captured_tensors_match():
    def make():
        w = em.tensor([1.0, 2.0], requires_grad=True)
        buf = em.zeros(3)

        def step(x, k):
            loss = (x * w).sum() * k
            loss.backward()  # accumulates into .grad: no zero_grad
            with em.no_grad():
                buf[1] = buf[1] + loss.detach()
            return w.grad, buf[0:2]
        return w, buf, step

    (w1, b1, s1), (_, b2, s2) = make(), make()
    compiled = em.compile(s1)
    for i in range(4):
        x = em.tensor([1.0, float(i)])
        (g1, v1), (g2, v2) = compiled(x, 2.0), s2(x, 2.0)
        assert g1 is w1.grad and g1.tolist() == g2.tolist()
        assert v1.tolist() == v2.tolist() and b1.tolist() == b2.tolist()
        v1.add_(100)
        v2.add_(100)  # the returned view is buf's memory in both
        assert b1.tolist() == b2.tolist()
    assert compiled.traces == 2 and compiled.hits == 2


def test_guards_of_a_captured_tensor_retrace():
    w = em.tensor([1.0, 2.0])
    f = em.compile(lambda x: x * w)
    x = em.ones(2)
    f(x)
    w.requires_grad_(True)
    with pytest.warns(UserWarning, match="requires grad and no backward"):
        f(x)
    assert "captured tensor 0: requires_grad changed False -> True" in em.explain(f)


def test_a_captured_tensor_that_was_freed_is_traced_again():
    m = Model()
    f = em.compile(lambda x: (x * m.w).detach())
    x = em.ones(2)
    assert f(x).tolist() == [1.0, 2.0]
    m.w = em.tensor([5.0, 6.0], requires_grad=True)  # the old parameter dies
    assert f(x).tolist() == [5.0, 6.0]
    assert f.traces == 2
    assert "a captured tensor was freed" in em.explain(f)


def test_rebinding_a_closure_tensor_is_seen_while_the_old_one_lives():
    w = em.tensor([1.0, 2.0])
    f = em.compile(lambda x: x * w)
    assert f(em.ones(2)).tolist() == [1.0, 2.0]
    old = w  # noqa: F841 - kept alive
    w = em.tensor([3.0, 4.0])
    assert f(em.ones(2)).tolist() == [3.0, 4.0]
    assert "the tensor bound to 'w' changed" in em.explain(f)


def test_a_captured_tensor_passed_as_an_argument_too_runs_correctly():
    w = em.tensor([1.0, 2.0])

    def f(x):
        x.add_(1)
        return w * 1

    cf = em.compile(f)
    other = em.zeros(2)
    assert cf(other).tolist() == [1.0, 2.0] and other.tolist() == [1.0, 1.0]
    for _ in range(2):
        assert cf(w).tolist() == w.tolist()  # x is w: the write shows through w
    assert w.tolist() == [3.0, 4.0] and cf.traces == 1


def test_python_numbers_stay_constants_guarded_by_value():
    f = em.compile(lambda x, k: x * k)
    assert f(em.ones(2), 2.0).tolist() == [2.0, 2.0]
    assert f(em.ones(2), 3.0).tolist() == [3.0, 3.0]
    assert f.traces == 2


# -- reading a value while tracing ----------------------------------------------------

@pytest.mark.parametrize("fn", [
    lambda v: v * v[0].item(),
    lambda v: v * v.tolist()[0],
    lambda v: v * float(v.numpy()[0]),
    lambda v: v * (2.0 if bool(v[0] > 1) else 5.0),
    lambda v: v * float(v[0]),
    lambda v: v * int(v[1]),
    lambda v: v[v > 2.5] * 1,
    lambda v: v[(v > 2.5).nonzero()] * 1,
    lambda v: em.tensor(v.tolist()) * 2,
    lambda v: v * v.T[0:1].sum().item(),
    lambda v: v * v.detach()[0].item(),
    lambda v: v * v.view(2, 1)[1, 0].item(),
    lambda v: v * (v * 2)[0].item(),
    lambda v: v * (print(v) or 1),
], ids=["item", "tolist", "numpy", "bool", "float", "int", "mask", "index", "retensor",
        "view-sum", "detach", "view-item", "computed", "print"])
def test_every_value_read_of_an_argument_is_a_graph_break(fn, capsys):
    want = fn(em.tensor([2.0, 3.0]))
    cf = em.compile(fn)
    with pytest.warns(UserWarning, match="graph break at"):
        got = cf(em.tensor([2.0, 3.0]))
    assert got.tolist() == want.tolist()
    assert "tensor([0., 0.])" not in capsys.readouterr().out
    with pytest.raises(em.GraphBreak):
        em.compile(fn, fullgraph=True)(em.tensor([2.0, 3.0]))


@pytest.mark.parametrize("fn", [lambda x, i: x[i] * 2,
                                lambda x, i: x.gather(0, i) * 2,
                                lambda x, i: x.index_select(0, i) * 2])
def test_indexing_with_an_argument_needs_no_value_and_gives_the_uncompiled_values(fn):
    f = em.compile(fn)
    x = em.tensor([5.0, 6.0, 7.0])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an index is a graph input: no graph break
        assert f(x, em.tensor([2, 0])).tolist() == [14.0, 10.0]
        assert f(x, em.tensor([1, 1])).tolist() == [12.0, 12.0]
    assert f.traces == 1


def test_the_issue_example_gives_the_uncompiled_values():
    with pytest.warns(UserWarning, match="graph break"):
        assert em.compile(lambda v: v * v[0].item())(em.tensor([2.0, 3.0])).tolist() == [4., 6.]


def test_a_value_read_of_a_captured_tensor_is_a_graph_break():
    w = em.tensor([2.0, 3.0])
    f = em.compile(lambda x: x * w[1].item())
    with pytest.warns(UserWarning, match="graph break"):
        assert f(em.ones(2)).tolist() == [3.0, 3.0]
    w.mul_(2)
    assert f(em.ones(2)).tolist() == [6.0, 6.0]


def test_values_made_inside_from_constants_can_be_read():
    f = em.compile(lambda x: x * em.tensor([4.0]).item())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert f(em.ones(2)).tolist() == [4.0, 4.0]


# -- outputs alias as uncompiled ------------------------------------------------------

def test_a_returned_view_of_an_argument_shares_its_memory():
    x = em.tensor([1.0, 2.0, 3.0])
    f = em.compile(lambda x: x[0:1])
    for _ in range(2):
        f(x).mul_(10)
    assert x.tolist() == [100.0, 2.0, 3.0]
    tx = torch.tensor([1.0, 2.0, 3.0])
    tf = torch.compile(lambda x: x[0:1], backend="eager")
    for _ in range(2):
        tf(tx).mul_(10)
    assert tx.tolist() == x.tolist()


def test_a_view_of_a_strided_argument_shares_its_memory():
    base = em.arange(12, dtype=em.float32).view(3, 4)
    col = base[:, 1]
    f = em.compile(lambda c: c[1:])
    for _ in range(2):
        out = f(col)
    out.mul_(-1)
    assert base[:, 1].tolist() == [1.0, -5.0, -9.0]


@pytest.mark.parametrize("fn", [lambda x: x, lambda x: x.to(em.float32),
                                lambda x: x.contiguous(), lambda x: x.detach()])
def test_no_op_conversions_return_the_argument_or_its_memory(fn):
    x = em.tensor([1.0, 2.0])
    f = em.compile(fn)
    for _ in range(2):
        out = f(x)
    assert out.data_ptr() == x.data_ptr()
    assert (out is x) == (fn(x) is x)


def test_a_pending_tensor_returned_unread_is_computed_and_returned():
    w = em.tensor([1.0, 2.0])
    v = w * 3  # pending when the trace starts
    f = em.compile(lambda x: (x + 1, v))
    for _ in range(2):
        out, same_v = f(em.ones(2))
    assert same_v is v and v.tolist() == [3.0, 6.0] and out.tolist() == [2.0, 2.0]
    assert importlib.import_module("ember.runtime.context").current().trace is None


def test_a_returned_captured_tensor_is_that_tensor():
    w = em.tensor([1.0, 2.0])
    f = em.compile(lambda: (w, w.detach()[1:]))
    for _ in range(2):
        whole, part = f()
    assert whole is w
    part.mul_(3)
    assert w.tolist() == [1.0, 6.0]


def test_distinct_outputs_never_share_a_buffer():
    def f(x):
        a = x.to(em.int32)
        return a, a.round()

    cf = em.compile(f)
    x = em.tensor([1.0, 2.0])
    for _ in range(2):
        a, b = cf(x)
    assert a.data_ptr() != b.data_ptr()
    a.add_(5)
    assert b.tolist() == [1, 2]


def test_outputs_sharing_a_storage_uncompiled_share_it_compiled():
    def f(x):
        y = x * 2
        return y, y.T

    cf = em.compile(f)
    for _ in range(2):
        y, yt = cf(em.ones(2, 3))
    y.add_(1)
    assert yt.tolist() == [[3.0, 3.0]] * 3


# -- values kept outside the call ----------------------------------------------------

def test_a_value_stored_outside_the_function_is_a_graph_break():
    class Cache:
        value = None

    cache = Cache()

    def f(x):
        y = x * 2
        cache.value = y  # kept outside the call
        return y + 1

    cf = em.compile(f)
    with pytest.warns(UserWarning, match=r"test_compile_capture.py:\d+: y = x \* 2.*kept "
                                         r"outside"):
        cf(em.tensor([1.0, 2.0]))
    assert cache.value.tolist() == [2.0, 4.0]
    cf(em.tensor([3.0, 4.0]))
    assert cache.value.tolist() == [6.0, 8.0]


def test_state_made_on_the_first_call_and_kept_is_traced_once_more():
    class Adamish:
        def __init__(self, params):
            self.params, self.state = params, {}

        def step(self):
            with em.no_grad():
                for p in self.params:
                    if id(p) not in self.state:  # made lazily, as torch's optimizers do
                        self.state[id(p)] = em.zeros_like(p)
                    m = self.state[id(p)]
                    m.mul_(0.9).add_(p.grad)
                    p.sub_(0.1 * m)

    def run(compiled):
        w = em.tensor([1.0, -2.0], requires_grad=True)
        opt = Adamish([w])

        def step(x):
            loss = (x * w).pow(2).sum()
            loss.backward()
            opt.step()
            w.grad = None
            return loss.detach()

        f = em.compile(step) if compiled else step
        losses = [f(em.tensor([1.0, 0.5])).item() for _ in range(5)]
        return losses, w.detach().tolist(), f

    with pytest.warns(UserWarning, match="kept outside"):
        got, w_got, f = run(True)
    want, w_want, _ = run(False)
    assert got == want and w_got == w_want
    assert f.traces == 2 and f.hits == 3


# -- the recompile limit --------------------------------------------------------------

def test_the_recompile_limit_runs_uncompiled_with_one_warning():
    f = em.compile(lambda x: x * 2, recompile_limit=3, dynamic=False)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        for n in (64, 32, 16, 8, 4):
            assert f(em.ones(n, 32)).shape == (n, 32)
    limit = [w for w in seen if "recompile limit" in str(w.message)]
    assert len(limit) == 1 and f.traces == 3
    assert "argument 0: shape changed (16, 32) -> (8, 32)" in str(limit[0].message)
    assert f(em.ones(64, 32)).shape == (64, 32) and f.hits == 1
    assert "recompile limit (3)" in em.explain(f)


def test_the_default_recompile_limit_is_eight():
    f = em.compile(lambda x: x + 1, dynamic=False)
    with pytest.warns(UserWarning, match=re.escape("argument 0: shape changed (8,) -> (9,)")):
        for n in range(1, 11):
            f(em.ones(n))
    assert f.traces == 8


def test_a_bad_recompile_limit_is_refused():
    with pytest.raises(ValueError, match="recompile_limit must be a positive int"):
        em.compile(lambda x: x, recompile_limit=0)
