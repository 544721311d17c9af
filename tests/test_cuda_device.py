"""The "cuda" device, emulated: buffers are torch tensors, kernels are Triton's.

Without a GPU, `runtime.devices.emulate()` keeps "cuda" buffers in CPU torch tensors
and runs the generated Triton kernels through Triton's interpreter (conftest.py sets
TRITON_INTERPRET=1): everything between the tracer and the kernels -- device tags,
copies between devices, programs over device memory and their cache, autograd, views,
in-place ops, em.compile -- runs as on a GPU. Every case checks the device of what it
gets and its value against the same code on the CPU.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
import test_gradcheck as tg
import test_ops as to
from helpers import flat_outputs, to_ember
from test_triton_lane import LANE_CASES, MATMULS, _agree, _grads

import ember as em
from ember.runtime import cache, devices
from ember.runtime.config import options

pytest.importorskip("triton")
torch = pytest.importorskip("torch")


@pytest.fixture
def cuda():
    """The real CUDA device where kernels are compiled for one, else the emulated one."""
    if os.environ.get("TRITON_INTERPRET") != "1":
        if not devices.available():
            pytest.skip("no CUDA device (and TRITON_INTERPRET=0: nothing to emulate with)")
        yield
    else:
        with devices.emulate():
            yield
    em.set_default_device("cpu")


@pytest.fixture
def on_cuda(cuda):
    em.set_default_device("cuda")
    yield
    em.set_default_device("cpu")


def _outputs(fn, args, device: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = flat_outputs(fn(em, *[to_ember(a) for a in args]))
    for o in out:
        if isinstance(o, em.Tensor):
            assert str(o.device) == device, (o.device, device)
    return [o.detach().cpu() if isinstance(o, em.Tensor) else o for o in out]


def _same_as_cpu(fn, args, what: str) -> None:
    """fn with every tensor made on the (default) cuda device equals fn on the CPU; an
    error must be the same error."""
    try:
        got = _outputs(fn, args, "cuda:0")
    except Exception as e:  # noqa: BLE001 - compared with the CPU run's
        em.set_default_device("cpu")
        try:
            _outputs(fn, args, "cpu")
        except type(e):
            return
        raise
    em.set_default_device("cpu")
    ref = _outputs(fn, args, "cpu")
    assert len(got) == len(ref), what
    for i, (g, r) in enumerate(zip(got, ref)):
        _agree(g, r, f"{what} output {i}")


@pytest.mark.parametrize("c", LANE_CASES, ids=[c.id for c in LANE_CASES])
def test_op_on_the_cuda_device(on_cuda, c):
    if c.api in MATMULS and any(to.dname(a) == "bfloat16" for a in c.args):
        pytest.xfail("bfloat16 tl.dot is wrong in Triton's interpreter (checked on a GPU)")
    _same_as_cpu(c.fn, c.args, c.id)


@pytest.mark.parametrize("name", list(tg.CASES))
def test_gradient_on_the_cuda_device(on_cuda, name):
    fn, shapes, domains = tg.CASES[name]
    arrays = [np.asarray(a, np.float64) for a in tg._arrays(shapes, domains)]
    _same_as_cpu(lambda m, *xs: _grads(fn, xs), arrays, name)


# ---------------------------------------------------------------- the device's API

def test_cuda_namespace_and_device_strings(cuda):
    assert em.cuda.is_available() and em.cuda.device_count() == 1
    em.cuda.synchronize()
    x = em.ones(2, device="cuda")
    assert str(x.device) == "cuda:0" and x.is_cuda and x.device.type == "cuda"
    assert em.zeros(2, device="cuda:0").device == x.device
    assert em.zeros(2, device=em.device("cuda")).device == x.device
    assert "device='cuda:0'" in repr(x)
    with pytest.raises(RuntimeError, match="invalid device ordinal"):
        em.zeros(2, device="cuda:1")


def test_cuda_is_refused_without_a_gpu():
    if devices.available():
        pytest.skip("this machine has a CUDA device")
    assert not em.cuda.is_available() and em.cuda.device_count() == 0
    with pytest.raises(RuntimeError, match="no CUDA device"):
        em.zeros(2, device="cuda")
    with pytest.raises(RuntimeError, match="no CUDA device"):
        em.ones(2).cuda()
    with pytest.raises(RuntimeError, match="no CUDA device"):
        em.set_default_device("cuda")
    assert str(em.get_default_device()) == "cpu"


@pytest.mark.parametrize("make", [
    lambda d: em.tensor([[1.5, -2.0], [3.0, 4.0]], device=d),
    lambda d: em.zeros(2, 3, device=d), lambda d: em.ones(3, dtype=em.int32, device=d),
    lambda d: em.full((2, 2), 7.0, device=d), lambda d: em.arange(5, device=d),
    lambda d: em.linspace(0, 1, 5, device=d), lambda d: em.eye(3, device=d),
    lambda d: em.empty(2, device=d).fill_(3), lambda d: em.tensor(2.5, device=d),
    lambda d: em.zeros_like(em.ones(2, device=d)), lambda d: em.as_tensor([1, 2], device=d),
])
def test_creation_functions_make_cuda_tensors(cuda, make):
    got, ref = make("cuda"), make("cpu")
    assert str(got.device) == "cuda:0" and got.dtype is ref.dtype
    np.testing.assert_array_equal(got.cpu().numpy(), ref.numpy())


def test_random_numbers_equal_the_cpus_for_the_same_seed(cuda):
    em.manual_seed(7)
    ref = [em.rand(5, 3), em.randn(4), em.randint(0, 9, (6,))]
    em.manual_seed(7)
    got = [em.rand(5, 3, device="cuda"), em.randn(4, device="cuda"),
           em.randint(0, 9, (6,), device="cuda")]
    for g, r in zip(got, ref):
        assert g.is_cuda
        np.testing.assert_array_equal(g.cpu().numpy(), r.numpy())
    em.manual_seed(3)
    x = em.ones(1000, device="cuda")
    kept = em.nn.functional.dropout(x, 0.5).cpu().numpy()
    em.manual_seed(3)
    np.testing.assert_array_equal(kept, em.nn.functional.dropout(em.ones(1000), 0.5).numpy())


def test_values_move_between_devices_with_their_gradients(cuda):
    a = em.tensor([1.0, -2.0, 3.0], requires_grad=True)
    g = a.to("cuda")
    assert g.is_cuda and g.grad_fn is not None
    h = (g * g).cuda().exp()  # NOTE: .cuda() of a cuda tensor is itself
    back = h.cpu()
    assert not back.is_cuda and back.grad_fn is not None
    back.sum().backward()
    assert not a.grad.is_cuda
    np.testing.assert_allclose(a.grad.numpy(), 2 * a.detach().numpy()
                               * np.exp(a.detach().numpy() ** 2), rtol=1e-6)
    w = em.randn(3, 2, device="cuda", requires_grad=True)
    loss = (em.ones(4, 3, device="cuda") @ w).relu().sum()
    loss.backward()
    assert w.grad.is_cuda and loss.is_cuda
    x = em.ones(2, device="cuda")
    assert x.to("cuda") is x and x.to("cuda:0") is x and x.cuda() is x
    assert x.to("cpu", em.float64).dtype is em.float64


def test_mixing_devices_raises_torchs_error(cuda):
    x, y = em.ones(2, device="cuda"), em.ones(2)
    with pytest.raises(RuntimeError, match="Expected all tensors to be on the same device"):
        x + y
    with pytest.raises(RuntimeError, match="same device"):
        em.matmul(em.ones(2, 2, device="cuda"), em.ones(2, 2))
    with pytest.raises(RuntimeError, match="same device"):
        em.where(x > 0, x, y)
    assert (x + 1).is_cuda and (x * em.tensor(2.0, device="cuda")).is_cuda


def test_host_reads_copy_and_numpy_raises(cuda):
    x = em.tensor([[1.0, 2.0], [3.0, 4.0]], device="cuda")
    with pytest.raises(TypeError, match="Use Tensor.cpu"):
        x.numpy()
    with pytest.raises(TypeError, match="Use Tensor.cpu"):
        np.asarray(x)
    assert x.tolist() == [[1.0, 2.0], [3.0, 4.0]] and x[1, 0].item() == 3.0
    assert float(x.sum()) == 10.0 and bool(x.max() > 3) and f"{x.mean():.2f}" == "2.50"
    assert x.cpu().numpy().tolist() == x.tolist()
    assert em.tensor(x).is_cuda is False and em.tensor(x, device="cuda").is_cuda


def test_views_share_device_storage_and_in_place_writes_reach_them(cuda):
    x = em.zeros(3, 4, device="cuda")
    row, col, t = x[1], x[:, 2], x.T
    assert row.data_ptr() == x.data_ptr() + 4 * 4 and t.data_ptr() == x.data_ptr()
    row.add_(1)
    col.mul_(0).add_(5)
    t[0, 0] = 9
    ref = em.zeros(3, 4)
    ref[1] += 1
    ref[:, 2] = 5
    ref[0, 0] = 9
    np.testing.assert_array_equal(x.cpu().numpy(), ref.numpy())
    np.testing.assert_array_equal(row.cpu().numpy(), ref[1].numpy())
    w = em.ones(3, device="cuda", requires_grad=True)
    y = w * 2
    y[0] = 10  # NOTE: an in-place write recorded by autograd, on the device
    y.sum().backward()
    assert w.grad.tolist() == [0.0, 2.0, 2.0] and w.grad.is_cuda


def test_programs_over_device_memory_are_cached(cuda):
    cache.clear()
    x = em.rand(64, 32, device="cuda")
    for _ in range(3):
        y = ((x * 2 + 1).relu().sum(1) / 3).cpu().numpy()
    assert cache.stats().compiles <= 3
    before = cache.stats().compiles
    for _ in range(3):
        ((x * 2 + 1).relu().sum(1) / 3).cpu().numpy()
    assert cache.stats().compiles == before
    # NOTE: the same graph on the CPU is another program (another back end, NumPy's)
    xc = x.cpu()
    np.testing.assert_allclose(y, ((xc * 2 + 1).relu().sum(1) / 3).numpy(), rtol=1e-6)
    after = cache.stats().compiles
    assert after > before
    assert ((x * 2 + 1).relu().sum(1) / 3).is_cuda and cache.stats().compiles == after


def test_em_compile_on_cuda_tensors(cuda):
    w = em.randn(8, 4, device="cuda", requires_grad=True)

    @em.compile
    def step(x, lr):
        loss = (x @ w).tanh().pow(2).mean()
        loss.backward()
        with em.no_grad():
            w.sub_(lr * w.grad)
            w.grad.zero_()
        return loss.detach()

    ref_w = em.tensor(w.detach().cpu(), requires_grad=True)
    xs = [em.randn(16, 8, device="cuda") for _ in range(4)]
    for i, x in enumerate(xs):
        loss = step(x, 0.1 * 0.9 ** i)
        assert loss.is_cuda
        ref = (x.cpu() @ ref_w).tanh().pow(2).mean()
        ref.backward()
        with em.no_grad():
            ref_w.sub_(0.1 * 0.9 ** i * ref_w.grad)
            ref_w.grad.zero_()
        np.testing.assert_allclose(loss.item(), ref.item(), rtol=1e-5)
    assert step.traces <= 2
    np.testing.assert_allclose(w.detach().cpu().numpy(), ref_w.detach().numpy(), rtol=1e-5)


def test_a_module_trains_on_the_device_as_on_the_cpu(cuda):
    em.manual_seed(0)
    ref = em.nn.Sequential(em.nn.Linear(6, 16), em.nn.GELU(), em.nn.LayerNorm(16),
                           em.nn.Linear(16, 3))
    model = em.nn.Sequential(em.nn.Linear(6, 16), em.nn.GELU(), em.nn.LayerNorm(16),
                             em.nn.Linear(16, 3))
    model.load_state_dict(ref.state_dict())
    model.to("cuda")
    assert all(p.is_cuda for p in model.parameters())
    opts = [em.optim.AdamW(m.parameters(), lr=1e-2) for m in (model, ref)]
    x, y = em.randn(10, 6), em.randint(0, 3, (10,))
    for _ in range(3):
        for m, opt, dev in ((model, opts[0], "cuda"), (ref, opts[1], "cpu")):
            opt.zero_grad()
            loss = em.nn.functional.cross_entropy(m(x.to(dev)), y.to(dev))
            loss.backward()
            opt.step()
    for p, q in zip(model.parameters(), ref.parameters()):
        assert p.is_cuda
        np.testing.assert_allclose(p.detach().cpu().numpy(), q.detach().numpy(), rtol=1e-4,
                                   atol=1e-6)


def test_backward_plans_replay_on_the_device(cuda):
    from ember.tracer import plans
    plans.clear()
    w = em.randn(5, 3, device="cuda", requires_grad=True)
    x = em.randn(7, 5, device="cuda")
    ref_w = em.tensor(w.detach().cpu(), requires_grad=True)
    for _ in range(4):
        for p, inp in ((w, x), (ref_w, x.cpu())):
            (inp @ p).sigmoid().sum().backward()
            with em.no_grad():
                p.sub_(0.1 * p.grad)
                p.grad.zero_()
    assert plans.stats()["replayed"] >= 4 and w.is_cuda and w.grad.is_cuda
    np.testing.assert_allclose(w.detach().cpu().numpy(), ref_w.detach().numpy(), rtol=1e-6)


def test_programs_of_small_kernels_replay_as_cuda_graphs_with_each_calls_inputs(cuda):
    if devices.emulated():
        pytest.skip("CUDA graphs need a real GPU (the emulated device never captures)")
    from ember.runtime.compiled import compiled_for
    from ember.runtime.cuda_graphs import WARMUP, GraphedProgram

    def three(x):  # NOTE: three kernels (two reductions over other axes, a matmul)
        return x.sum(0), x.amax(1), x @ x

    xs = [em.randn(32, 32, device="cuda") for _ in range(WARMUP + 6)]
    for x in xs + xs[:2]:
        outs = three(x)
        em.realize(*outs)
        for got, want in zip(outs, three(x.cpu())):
            np.testing.assert_allclose(got.cpu().numpy(), want.numpy(), rtol=1e-4, atol=1e-4)
    fn = compiled_for(*three(xs[0])).fn
    assert isinstance(fn, GraphedProgram) and fn.settled


def test_eager_mode_and_the_interpreter_on_cuda_tensors(cuda, monkeypatch):
    x = em.tensor([1.0, 2.0, 3.0], device="cuda")
    with em.eager():
        y = (x * 2).exp().sum()
        assert y.is_cuda
    np.testing.assert_allclose(y.item(), np.exp([2.0, 4.0, 6.0]).sum(), rtol=1e-6)
    monkeypatch.setattr(options, "backend", "interpreter")
    assert (x + 1).is_cuda and (x + 1).tolist() == [2.0, 3.0, 4.0]


def test_the_numpy_back_end_refuses_cuda_tensors(cuda, monkeypatch):
    monkeypatch.setattr(options, "backend", "numpy")
    x = em.ones(3, device="cuda")
    with pytest.raises(RuntimeError, match="NumPy back end runs on the CPU"):
        (x * 2).tolist()
    assert (em.ones(3) * 2).tolist() == [2.0, 2.0, 2.0]


def test_save_and_load_cuda_tensors(cuda, tmp_path):
    x = em.arange(6.0, device="cuda").reshape(2, 3)
    em.save({"x": x, "row": x[1], "c": em.ones(2)}, tmp_path / "x.em")
    back = em.load(tmp_path / "x.em")
    assert back["x"].is_cuda and back["row"].is_cuda and not back["c"].is_cuda
    assert back["row"].data_ptr() == back["x"].data_ptr() + 3 * 4
    np.testing.assert_array_equal(back["x"].cpu().numpy(), x.cpu().numpy())
    here = em.load(tmp_path / "x.em", map_location="cpu")
    assert not here["x"].is_cuda and here["x"].tolist() == x.tolist()
    moved = em.load(tmp_path / "x.em", map_location={"cpu": "cuda:0"})
    assert moved["x"].is_cuda and moved["c"].is_cuda


def test_pickle_and_deepcopy_keep_the_device(cuda):
    import copy
    import pickle
    x = em.tensor([1.0, 2.0], device="cuda", requires_grad=True)
    for y in (pickle.loads(pickle.dumps(x)), copy.deepcopy(x)):
        assert y.is_cuda and y.requires_grad and y.tolist() == [1.0, 2.0]


def test_dlpack_exchanges_cuda_tensors_by_copy(cuda):
    x = em.arange(6.0, device="cuda").reshape(2, 3)
    t = torch.from_dlpack(x.T)
    assert t.tolist() == x.T.tolist()
    if not devices.emulated():
        assert t.is_cuda and x.__dlpack_device__() == (2, 0)
    t[0, 0] = 100.0  # NOTE: a copy: ember's buffer is not written
    assert x[0, 0].item() == 0.0
    source = torch.arange(4.0, device=devices.torch_device("cuda:0"))
    back = em.from_dlpack(source) if not devices.emulated() else em.tensor(source.tolist(),
                                                                           device="cuda")
    assert back.is_cuda and back.tolist() == [0.0, 1.0, 2.0, 3.0]


def test_a_dynamic_batch_dimension_on_the_device(cuda):
    w = em.randn(6, 3, device="cuda", requires_grad=True)

    @em.compile(dynamic=True)
    def step(x):
        loss = (x @ w).relu().sum()
        loss.backward()
        return loss.detach()

    for n in (2, 3, 5, 7):
        x = em.randn(n, 6, device="cuda")
        w.grad = None
        got = step(x)
        assert got.is_cuda and w.grad.is_cuda
        ref_w = em.tensor(w.detach().cpu(), requires_grad=True)
        ref = (x.cpu() @ ref_w).relu().sum()
        ref.backward()
        np.testing.assert_allclose(got.item(), ref.item(), rtol=1e-5)
        np.testing.assert_allclose(w.grad.cpu().numpy(), ref_w.grad.numpy(), rtol=1e-5)
    assert step.traces <= 2
