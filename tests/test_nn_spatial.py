"""nn.functional's spatial operations and em.einsum against torch: values and gradients."""

import itertools
import warnings

import numpy as np
import pytest

import ember as em
import ember.nn.functional as F

torch = pytest.importorskip("torch")
TF = torch.nn.functional

pytestmark = pytest.mark.filterwarnings("ignore:Using padding=.same. with even kernel")

DTYPES = [(np.float32, 2e-5), (np.float64, 1e-10)]


def _pair(arrays, requires_grad):
    ems = [em.tensor(a, requires_grad=requires_grad) for a in arrays]
    ts = [torch.tensor(a, requires_grad=requires_grad) for a in arrays]
    return ems, ts


def _close(e, t, tol):
    assert tuple(e.shape) == tuple(t.shape)
    np.testing.assert_allclose(e.detach().numpy(), t.detach().numpy(), rtol=tol, atol=tol,
                               equal_nan=True)


def _check(fe, ft, arrays, tol, seed=0, grads=True):
    """fe(*ember tensors) against ft(*torch tensors): the value and every input's gradient."""
    (ems, ts) = _pair(arrays, grads)
    out_e, out_t = fe(*ems), ft(*ts)
    _close(out_e, out_t, tol)
    if not grads:
        return
    cot = np.random.default_rng(seed).standard_normal(tuple(out_t.shape)).astype(arrays[0].dtype)
    (out_e * em.tensor(cot)).sum().backward()
    (out_t * torch.tensor(cot)).sum().backward()
    for e, t in zip(ems, ts):
        _close(e.grad, t.grad, tol * 10)


def _data(rng, dtype, *shapes):
    return [rng.standard_normal(s).astype(dtype) for s in shapes]


CONV2D = [  # (N, C, H, W), (O, kH, kW), stride, padding, dilation, groups, bias
    ((2, 3, 7, 8), (4, 3, 3), 1, 1, 1, 1, True),
    ((2, 4, 9, 7), (6, 3, 3), 2, 0, 1, 2, True),
    ((1, 4, 8, 8), (4, 2, 3), 1, "same", 2, 4, False),
    ((2, 3, 6, 6), (2, 2, 3), (1, 2), (1, 0), (2, 1), 1, True),
    ((1, 2, 5, 5), (3, 5, 5), 1, "valid", 1, 1, True),
    ((2, 6, 5, 6), (3, 1, 1), 1, 0, 1, 3, True),
    ((1, 3, 11, 9), (2, 3, 2), 3, 2, 1, 1, False),
    ((2, 2, 6, 6), (2, 4, 4), 1, "same", 1, 1, True),
]


@pytest.mark.parametrize("dtype,tol", DTYPES)
@pytest.mark.parametrize("case", CONV2D)
def test_conv2d_matches_torch_values_and_gradients(case, dtype, tol):
    (n, c, h, w), (o, kh, kw), stride, padding, dilation, groups, bias = case
    rng = np.random.default_rng(1)
    arrays = _data(rng, dtype, (n, c, h, w), (o, c // groups, kh, kw), (o,))
    if not bias:
        arrays = arrays[:2]
    kw_ = dict(stride=stride, padding=padding, dilation=dilation, groups=groups)
    _check(lambda *a: F.conv2d(*a, **kw_), lambda *a: TF.conv2d(*a, **kw_), arrays, tol)


def test_conv2d_unbatched_and_conv1d():
    rng = np.random.default_rng(2)
    x, w, b = _data(rng, np.float64, (3, 6, 5), (4, 3, 2, 2), (4,))
    _check(lambda *a: F.conv2d(*a, padding=1), lambda *a: TF.conv2d(*a, padding=1),
           [x, w, b], 1e-10)
    for shapes, kw_ in [(((2, 4, 9), (6, 2, 3), (6,)), dict(stride=2, padding=1, groups=2)),
                        (((4, 9), (2, 4, 3), (2,)), dict(padding="same", dilation=2)),
                        (((2, 3, 7), (5, 3, 1), (5,)), dict())]:
        arrays = _data(rng, np.float64, *shapes)
        _check(lambda *a: F.conv1d(*a, **kw_), lambda *a: TF.conv1d(*a, **kw_), arrays, 1e-10)


CONV_T = [  # (N, C_in, H, W), (C_out/groups, kH, kW), stride, padding, output_padding, groups, dil
    ((2, 4, 5, 5), (3, 3, 3), 2, 1, 1, 1, 1),
    ((1, 4, 4, 6), (2, 2, 3), (2, 1), 0, 0, 2, 1),
    ((2, 2, 3, 3), (3, 3, 3), 1, 2, 0, 1, 2),
    ((1, 3, 4, 4), (2, 4, 4), 3, 1, (2, 0), 1, 1),
]


@pytest.mark.parametrize("case", CONV_T)
def test_conv_transpose2d_matches_torch(case):
    (n, c, h, w), (og, kh, kw), stride, padding, extra, groups, dilation = case
    arrays = _data(np.random.default_rng(3), np.float64, (n, c, h, w), (c, og, kh, kw),
                   (og * groups,))
    kw_ = dict(stride=stride, padding=padding, output_padding=extra, groups=groups,
               dilation=dilation)
    _check(lambda *a: F.conv_transpose2d(*a, **kw_), lambda *a: TF.conv_transpose2d(*a, **kw_),
           arrays, 1e-10)


POOLS = [  # kernel, stride, padding, dilation, ceil_mode
    (2, None, 0, 1, False),
    (3, 2, 1, 1, True),
    (3, 1, 1, 2, False),
    ((2, 3), (1, 2), (1, 0), 1, True),
    (3, 3, 0, 1, True),
]


@pytest.mark.parametrize("dtype,tol", DTYPES)
@pytest.mark.parametrize("kernel,stride,padding,dilation,ceil_mode", POOLS)
def test_max_pool2d_matches_torch_values_gradients_and_indices(kernel, stride, padding,
                                                               dilation, ceil_mode, dtype, tol):
    x = np.random.default_rng(4).standard_normal((2, 3, 9, 8)).astype(dtype)
    x[0, 0, :5, :5] = 0.0  # ties: the first maximum takes the gradient, as in torch
    kw_ = dict(kernel_size=kernel, stride=stride, padding=padding, dilation=dilation,
               ceil_mode=ceil_mode)
    _check(lambda a: F.max_pool2d(a, **kw_), lambda a: TF.max_pool2d(a, **kw_), [x], tol)
    out, idx = F.max_pool2d(em.tensor(x), return_indices=True, **kw_)
    tout, tidx = TF.max_pool2d(torch.tensor(x), return_indices=True, **kw_)
    assert idx.dtype == em.int64 and idx.tolist() == tidx.tolist()


@pytest.mark.parametrize("dtype,tol", DTYPES)
@pytest.mark.parametrize("kernel,stride,padding,_,ceil_mode", POOLS)
@pytest.mark.parametrize("count_include_pad,divisor", [(True, None), (False, None), (True, 5)])
def test_avg_pool2d_matches_torch(kernel, stride, padding, _, ceil_mode, count_include_pad,
                                  divisor, dtype, tol):
    x = np.random.default_rng(5).standard_normal((2, 3, 9, 8)).astype(dtype)
    kw_ = dict(kernel_size=kernel, stride=stride, padding=padding, ceil_mode=ceil_mode,
               count_include_pad=count_include_pad, divisor_override=divisor)
    _check(lambda a: F.avg_pool2d(a, **kw_), lambda a: TF.avg_pool2d(a, **kw_), [x], tol)


@pytest.mark.parametrize("kernel,ceil_mode", [(2, False), ((2, 4), True), (3, False)])
def test_pools_over_whole_tiles_match_torch(kernel, ceil_mode):
    x = np.random.default_rng(16).standard_normal((2, 3, 8, 8))
    x[0, :, :4] = 0.0  # all-zero windows: the first one takes the gradient
    x[1, 0, 0, 0] = np.nan
    for fe, ft in [(F.max_pool2d, TF.max_pool2d), (F.avg_pool2d, TF.avg_pool2d)]:
        _check(lambda a: fe(a, kernel, ceil_mode=ceil_mode),
               lambda a: ft(a, kernel, ceil_mode=ceil_mode), [x], 1e-12)
    _, idx = F.max_pool2d(em.tensor(x), kernel, return_indices=True)
    assert idx.tolist() == TF.max_pool2d(torch.tensor(x), kernel, return_indices=True)[1].tolist()


def test_pools_take_unbatched_input_and_adaptive_average_pooling_matches_torch():
    x = np.random.default_rng(6).standard_normal((3, 7, 10))
    _check(lambda a: F.max_pool2d(a, 2), lambda a: TF.max_pool2d(a, 2), [x], 1e-10)
    _check(lambda a: F.avg_pool2d(a, 3, 2, 1), lambda a: TF.avg_pool2d(a, 3, 2, 1), [x], 1e-10)
    for size in [1, (3, 5), (7, 10), (4, None), (5, 3)]:
        _check(lambda a: F.adaptive_avg_pool2d(a, size),
               lambda a: TF.adaptive_avg_pool2d(a, size), [x[None]], 1e-10)


PADS = [((1, 2), "constant"), ((1, 0, 2, 3), "constant"), ((-1, 2, 0, 1), "constant"),
        ((1, 1, 1, 1, 1, 1), "constant"), ((2, 1), "reflect"), ((1, 2, 2, 0), "reflect"),
        ((2, 3), "replicate"), ((1, 0, 0, 2), "replicate"), ((2, 1, 1, 3), "circular")]


@pytest.mark.parametrize("pads,mode", PADS)
def test_pad_matches_torch(pads, mode):
    x = np.random.default_rng(7).standard_normal((2, 3, 4, 5))
    if mode != "constant" and len(pads) == 2:
        x = x[0]  # torch pads one dim of 2-d or 3-d input only
    _check(lambda a: F.pad(a, pads, mode), lambda a: TF.pad(a, pads, mode), [x], 1e-12)
    if mode == "constant":
        _check(lambda a: F.pad(a, pads, value=2.5), lambda a: TF.pad(a, pads, value=2.5),
               [x], 1e-12)


INTERP = [dict(size=(5, 7)), dict(scale_factor=2), dict(scale_factor=(0.5, 1.5)),
          dict(size=(5, 7), mode="bilinear"), dict(size=(3, 2), mode="bilinear"),
          dict(scale_factor=1.7, mode="bilinear", align_corners=True),
          dict(size=(6, 9), mode="bilinear", align_corners=True),
          dict(scale_factor=2.5, mode="bilinear")]


@pytest.mark.parametrize("kw_", INTERP)
def test_interpolate_matches_torch(kw_):
    x = np.random.default_rng(8).standard_normal((2, 3, 4, 6))
    _check(lambda a: F.interpolate(a, **kw_), lambda a: TF.interpolate(a, **kw_), [x], 1e-10)


def test_interpolate_nearest_1d():
    x = np.random.default_rng(9).standard_normal((2, 3, 5))
    _check(lambda a: F.interpolate(a, size=8), lambda a: TF.interpolate(a, size=8), [x], 1e-12)


def test_unfold_is_a_view_with_torch_semantics():
    base = np.arange(60.0).reshape(3, 4, 5)
    x, t = em.tensor(base, requires_grad=True), torch.tensor(base, requires_grad=True)
    for dim, size, step in [(2, 2, 1), (1, 3, 2), (0, 1, 1), (-1, 5, 3)]:
        u, tu = x.unfold(dim, size, step), t.unfold(dim, size, step)
        assert u.shape == tu.shape and u.stride() == tu.stride()
        assert u.tolist() == tu.tolist()
    _check(lambda a: a.unfold(2, 3, 1) ** 2, lambda a: a.unfold(2, 3, 1) ** 2, [base], 1e-12)
    y = em.zeros(6)
    assert y.unfold(0, 2, 2).data_ptr() == y.data_ptr()
    with pytest.raises(RuntimeError, match="maximum size for tensor at dimension 0 is 6 but "
                                           "size is 7"):
        y.unfold(0, 7, 1)
    with pytest.raises(RuntimeError, match="step is 0 but must be > 0"):
        y.unfold(0, 2, 0)


def _same_error(fe, ft):
    with pytest.raises(Exception) as te:
        ft()
    with pytest.raises(type(te.value)) as ee:
        fe()
    assert str(ee.value) == str(te.value).replace("torch.Size", "ember.Size")


BAD = [
    ("conv2d", lambda m, x: m.conv2d(x((2, 3)), x((16, 3, 3, 3)))),
    ("conv2d", lambda m, x: m.conv2d(x((2, 4, 8, 8)), x((16, 3, 3, 3)))),
    ("conv2d", lambda m, x: m.conv2d(x((2, 4, 8, 8)), x((3, 2, 3, 3)), groups=2)),
    ("conv2d", lambda m, x: m.conv2d(x((2, 6, 8, 8)), x((16, 3, 3, 3)), groups=4)),
    ("conv2d", lambda m, x: m.conv2d(x((2, 3, 2, 2)), x((16, 3, 3, 3)))),
    ("conv2d", lambda m, x: m.conv2d(x((2, 3, 8, 8)), x((16, 3, 3, 3)), stride=2,
                                     padding="same")),
    ("conv2d", lambda m, x: m.conv2d(x((2, 3, 8, 8)), x((16, 3, 3, 3)), padding="foo")),
    ("conv2d", lambda m, x: m.conv2d(x((2, 3, 8, 8)), x((16, 3, 3, 3)), x((3,)))),
    ("conv2d", lambda m, x: m.conv2d(x((2, 3, 8, 8)), x((16, 3, 3, 3)), stride=0)),
    ("conv2d", lambda m, x: m.conv2d(x((2, 3, 8, 8)), x((16, 3, 3, 3)), padding=-1)),
    ("conv1d", lambda m, x: m.conv1d(x((2, 3, 8, 8)), x((16, 3, 3)))),
    ("conv_t", lambda m, x: m.conv_transpose2d(x((2, 3, 5, 5)), x((4, 2, 3, 3)))),
    ("conv_t", lambda m, x: m.conv_transpose2d(x((2, 4, 5, 5)), x((4, 2, 3, 3)), stride=2,
                                               output_padding=2)),
    ("max_pool", lambda m, x: m.max_pool2d(x((2, 3)), 2)),
    ("max_pool", lambda m, x: m.max_pool2d(x((2, 3, 8, 8)), 3, padding=2)),
    ("max_pool", lambda m, x: m.max_pool2d(x((2, 3, 2, 2)), 3)),
    ("avg_pool", lambda m, x: m.avg_pool2d(x((2, 3, 2, 2)), 3)),
    ("adaptive", lambda m, x: m.adaptive_avg_pool2d(x((2, 3)), 2)),
    ("pad", lambda m, x: m.pad(x((2, 3)), (1, 2, 3))),
    ("pad", lambda m, x: m.pad(x((2, 3)), (1, 1, 1, 1, 1, 1))),
    ("pad", lambda m, x: m.pad(x((2, 3, 4)), (1, 1), mode="foo")),
    ("pad", lambda m, x: m.pad(x((4,)), (1, 1), mode="reflect")),
    ("pad", lambda m, x: m.pad(x((2, 3, 4, 5)), (1, 1), mode="replicate")),
    ("interp", lambda m, x: m.interpolate(x((2, 3, 4, 4)), size=3, scale_factor=2)),
    ("interp", lambda m, x: m.interpolate(x((2, 3, 4, 4)))),
    ("interp", lambda m, x: m.interpolate(x((2, 3, 4)), size=3, mode="bilinear")),
    ("interp", lambda m, x: m.interpolate(x((2, 3, 4, 4)), size=3, align_corners=True)),
]


@pytest.mark.parametrize("what,call", BAD, ids=[f"{w}{i}" for i, (w, _) in enumerate(BAD)])
def test_bad_input_raises_torchs_error(what, call):
    _same_error(lambda: call(F, lambda s: em.zeros(s)), lambda: call(TF, lambda s: torch.zeros(s)))


def test_a_compiled_step_through_conv2d_and_max_pool2d_matches_uncompiled():
    rng = np.random.default_rng(10)
    x = em.tensor(rng.standard_normal((4, 3, 10, 10)).astype(np.float32))
    init = [rng.standard_normal(s).astype(np.float32) * 0.3 for s in
            [(6, 3, 3, 3), (6,), (4, 6, 3, 3)]]

    def step(w1, b1, w2):
        h = F.max_pool2d(F.conv2d(x, w1, b1, padding=1).relu(), 2)
        loss = F.conv2d(h, w2, stride=2).square().mean()
        loss.backward()
        with em.no_grad():
            for p in (w1, b1, w2):
                p.sub_(0.1 * p.grad)
                p.grad = None
        return loss.detach()

    cstep = em.compile(step)
    ps1 = [em.tensor(a, requires_grad=True) for a in init]
    ps2 = [em.tensor(a, requires_grad=True) for a in init]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no graph break
        for _ in range(3):
            l1, l2 = cstep(*ps1), step(*ps2)
            np.testing.assert_allclose(l1.item(), l2.item(), rtol=1e-5)
    for a, c in zip(ps1, ps2):
        np.testing.assert_allclose(a.detach().numpy(), c.detach().numpy(), rtol=1e-5, atol=1e-6)
    assert cstep.traces == 1 and cstep.hits == 2


def test_kernel_offsets_cover_every_window():
    # every combination of small sizes, against torch, in float64 (values only)
    rng = np.random.default_rng(11)
    for h, k, s, p, d in itertools.product((4, 5), (1, 2, 3), (1, 2), (0, 1), (1, 2)):
        if d * (k - 1) + 1 > h + 2 * p:
            continue
        x, w = _data(rng, np.float64, (1, 2, h, h + 1), (2, 2, k, k))
        _close(F.conv2d(em.tensor(x), em.tensor(w), None, s, p, d),
               TF.conv2d(torch.tensor(x), torch.tensor(w), None, s, p, d), 1e-10)


def test_writes_into_a_value_read_elsewhere_leave_it_unchanged():
    # a chain of writes fills one array in place only where nothing else reads it
    x = em.arange(6.0).reshape(2, 3)
    base = em.zeros(2, 5)
    padded = F.pad(x, (1, 1))
    base2 = base.clone()
    base2[:, 1:4] = x
    stacked = em.stack([x, x * 2, x * 3])
    out = em.realize(padded, base, base2, stacked, base + 1)
    assert out[0].tolist() == out[2].tolist() == [[0, 0, 1, 2, 0], [0, 3, 4, 5, 0]]
    assert out[1].tolist() == [[0.0] * 5] * 2 and out[4].tolist() == [[1.0] * 5] * 2
    assert out[3].tolist() == torch.stack([torch.arange(6.0).reshape(2, 3) * k
                                           for k in (1, 2, 3)]).tolist()


EINSUM = [
    ("ij,jk->ik", [(2, 3), (3, 4)]),
    ("ij,jk", [(2, 3), (3, 4)]),
    ("bij,bjk->bik", [(2, 3, 4), (2, 4, 5)]),
    ("ii", [(3, 3)]),
    ("ii->i", [(3, 3)]),
    ("iij->ji", [(3, 3, 2)]),
    ("ij->ji", [(2, 3)]),
    ("ij->", [(2, 3)]),
    ("ij->j", [(2, 3)]),
    ("i,i->", [(4,), (4,)]),
    ("i,j->ij", [(3,), (4,)]),
    ("i,i", [(3,), (1,)]),
    ("ij,ij->ij", [(2, 3), (1, 3)]),
    ("...ij,...jk", [(2, 1, 2, 3), (5, 3, 4)]),
    ("...ij,...jk->...ik", [(4, 2, 3), (4, 3, 2)]),
    ("b...,b...->b", [(2, 3, 4), (2, 3, 4)]),
    ("...->...", [(2, 3)]),
    ("i...->...", [(2, 3, 4)]),
    ("bhqd,bhkd->bhqk", [(2, 3, 4, 5), (2, 3, 6, 5)]),
    ("bhqk,bhkd->bhqd", [(2, 3, 4, 6), (2, 3, 6, 5)]),
    ("ij,jk,kl->il", [(2, 3), (3, 4), (4, 5)]),
    ("abc,cd,ad->b", [(2, 3, 4), (4, 5), (2, 5)]),
    ("Ab,bA", [(2, 3), (3, 2)]),
    ("i j , j k -> i k", [(2, 3), (3, 4)]),
    ("", [()]),
    (",ij->ij", [(), (2, 3)]),
    ("ijk,ikj->", [(2, 3, 3), (2, 3, 3)]),
]


@pytest.mark.parametrize("eq,shapes", EINSUM, ids=[e or "scalar" for e, _ in EINSUM])
def test_einsum_matches_torch(eq, shapes):
    arrays = _data(np.random.default_rng(12), np.float64, *shapes)
    _check(lambda *a: em.einsum(eq, *a), lambda *a: torch.einsum(eq, *a), arrays, 1e-10)


def test_einsum_takes_a_list_and_returns_a_new_tensor():
    a, b = em.ones(2, 3), em.ones(3)
    assert em.einsum("ij,j->i", [a, b]).tolist() == [3.0, 3.0]
    same = em.einsum("ij", a)
    assert same is not a and same.data_ptr() == a.data_ptr()


BAD_EINSUM = [
    ("ij,jk->ik", [(2, 3)]),
    ("ij->ij", [(2, 3), (3, 4)]),
    ("ij", [(3,)]),
    ("i", [(2, 3)]),
    ("i1,jk", [(2, 3), (3, 4)]),
    ("ij,jk->ikk", [(2, 3), (3, 4)]),
    ("ij,jk->iz", [(2, 3), (3, 4)]),
    ("ij,kj->ik", [(2, 3), (3, 4)]),
    ("...i.j", [(2, 3)]),
    ("ij->j.", [(2, 3)]),
    ("i..j", [(2, 3)]),
    ("ii", [(2, 3)]),
    ("ij->i->j", [(2, 3)]),
    ("ijk...", [(2, 3)]),
]


@pytest.mark.parametrize("eq,shapes", BAD_EINSUM)
def test_einsum_bad_equations_raise_torchs_errors(eq, shapes):
    _same_error(lambda: em.einsum(eq, *[em.zeros(s) for s in shapes]),
                lambda: torch.einsum(eq, *[torch.zeros(s) for s in shapes]))


def test_docstring_examples_run():
    import doctest

    from ember import nn
    from ember.nn import conv, pooling, spatial
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    failures = []
    for module in (spatial, conv, pooling):
        for test in doctest.DocTestFinder().find(module, globs={"em": em, "np": np, "nn": nn}):
            assert runner.run(test, out=failures.append).failed == 0, "".join(failures)


LAYERS = [
    ("Conv2d(3, 16, 3)", (2, 3, 9, 9)),
    ("Conv2d(3, 16, (3, 5), stride=2, padding=1, dilation=2, bias=False, "
     "padding_mode='reflect')", (2, 3, 12, 14)),
    ("Conv2d(4, 8, 3, padding='same', groups=2)", (2, 4, 7, 7)),
    ("Conv2d(2, 4, 4, padding='same', padding_mode='circular')", (2, 2, 7, 6)),
    ("Conv2d(2, 4, 3, padding=2, padding_mode='replicate')", (2, 7, 6)),
    ("Conv1d(3, 6, 3, stride=2)", (2, 3, 11)),
    ("Conv1d(4, 4, 5, padding='same', groups=4, padding_mode='reflect')", (2, 4, 11)),
    ("ConvTranspose2d(4, 8, 3, stride=2, output_padding=1, padding=1)", (2, 4, 5, 5)),
    ("ConvTranspose2d(4, 6, (2, 3), stride=(1, 2), groups=2, dilation=2, bias=False)",
     (1, 4, 3, 4)),
    ("MaxPool2d(2)", (2, 3, 8, 8)),
    ("MaxPool2d((2, 3), stride=1, padding=1, ceil_mode=True)", (2, 3, 7, 8)),
    ("AvgPool2d(3, 2)", (2, 3, 9, 8)),
    ("AvgPool2d(3, 2, 1, ceil_mode=True, count_include_pad=False)", (3, 9, 8)),
    ("AdaptiveAvgPool2d(1)", (2, 3, 5, 6)),
    ("AdaptiveAvgPool2d((2, None))", (2, 3, 5, 6)),
]


@pytest.mark.parametrize("spec,shape", LAYERS, ids=[s for s, _ in LAYERS])
def test_layers_match_torch_modules(spec, shape):
    from ember import nn
    tm = eval("torch.nn." + spec).double()
    m = eval("nn." + spec, {"nn": nn})
    assert repr(m) == repr(tm)
    assert [n for n, _ in m.named_parameters()] == [n for n, _ in tm.named_parameters()]
    for (_, p), (_, tp) in zip(m.named_parameters(), tm.named_parameters()):
        assert p.shape == tp.shape and p.dtype == em.float32
    m.load_state_dict(tm.state_dict())
    m.double()
    x = np.random.default_rng(13).standard_normal(shape)
    ex, tx = em.tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)
    out, tout = m(ex), tm(tx)
    _close(out, tout, 1e-10)
    cot = np.random.default_rng(14).standard_normal(tuple(tout.shape))
    (out * em.tensor(cot)).sum().backward()
    (tout * torch.tensor(cot)).sum().backward()
    _close(ex.grad, tx.grad, 1e-9)
    for (_, p), (_, tp) in zip(m.named_parameters(), tm.named_parameters()):
        _close(p.grad, tp.grad, 1e-9)


def test_conv_layers_initialise_as_torch():
    from ember import nn
    em.manual_seed(0)
    for m, fan_in in [(nn.Conv2d(16, 32, 3), 16 * 9), (nn.Conv1d(8, 8, 5, groups=2), 4 * 5),
                      (nn.ConvTranspose2d(16, 8, 4), 8 * 16)]:
        bound = 1 / np.sqrt(fan_in)  # kaiming_uniform_(a=sqrt(5)): U(-1/sqrt(fan_in), ...)
        w, b = m.weight.detach().numpy(), m.bias.detach().numpy()
        assert np.abs(w).max() <= bound and np.abs(b).max() <= bound
        assert abs(w.std() - bound / np.sqrt(3)) < 0.1 * bound
        assert abs(w.mean()) < 0.1 * bound


def test_conv_transpose2d_output_size_and_layer_errors():
    from ember import nn
    m, tm = nn.ConvTranspose2d(2, 3, 3, stride=2, padding=1), \
        torch.nn.ConvTranspose2d(2, 3, 3, stride=2, padding=1)
    m.load_state_dict(tm.state_dict())
    x = np.random.default_rng(15).standard_normal((1, 2, 4, 4)).astype(np.float32)
    for size in [(7, 7), (8, 7), [1, 3, 8, 8]]:
        _close(m(em.tensor(x), output_size=size), tm(torch.tensor(x), output_size=size), 1e-5)
    _same_error(lambda: m(em.tensor(x), output_size=(9, 9)),
                lambda: tm(torch.tensor(x), output_size=(9, 9)))
    for args, kw_ in [((3, 16, 3), dict(groups=2)), ((4, 6, 3), dict(groups=4)),
                      ((3, 6, 3), dict(groups=0)), ((3, 6, 3), dict(stride=2, padding="same"))]:
        _same_error(lambda: nn.Conv2d(*args, **kw_), lambda: torch.nn.Conv2d(*args, **kw_))
    _same_error(lambda: nn.ConvTranspose2d(3, 6, 3, padding_mode="reflect"),
                lambda: torch.nn.ConvTranspose2d(3, 6, 3, padding_mode="reflect"))
    with pytest.raises(ValueError, match="Invalid padding string 'foo'"):
        nn.Conv2d(3, 6, 3, padding="foo")
    with pytest.raises(ValueError, match="padding_mode must be one of"):
        nn.Conv2d(3, 6, 3, padding_mode="x")


def test_a_small_cnn_step_compiles_and_matches_the_uncompiled_step():
    from ember import nn

    def make():
        return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                             nn.Conv2d(4, 8, 3), nn.AvgPool2d(2, ceil_mode=True),
                             nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 2))

    em.manual_seed(0)
    m1, m2 = make(), make()
    m2.load_state_dict(m1.state_dict())
    x = em.randn(16, 1, 8, 8)
    y = (x.mean((1, 2, 3)) > 0).long()

    def step(model):
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        with em.no_grad():
            for p in model.parameters():
                p.sub_(0.5 * p.grad)
                p.grad = None
        return loss.detach()

    cstep = em.compile(step)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(5):
            l1, l2 = cstep(m1).item(), step(m2).item()
            np.testing.assert_allclose(l1, l2, rtol=1e-5)
    assert cstep.traces == 1
    for (_, a), (_, c) in zip(m1.named_parameters(), m2.named_parameters()):
        np.testing.assert_allclose(a.detach().numpy(), c.detach().numpy(), rtol=1e-4, atol=1e-5)
