"""em.nn.functional and em.nn.init against torch: values and gradients of every
function and loss, the initialisers' distributions and fan rules, and the examples in
em.nn's docstrings."""

import doctest
import importlib
import math
import pkgutil

import numpy as np
import pytest
from nn_helpers import close, torch

import ember as em
import ember.nn
from ember import nn
from ember.nn import functional as F

TF = torch.nn.functional
RNG = np.random.default_rng(1)


def _x(*shape, dtype=np.float32, lo=None, hi=None):
    if lo is not None:
        return RNG.uniform(lo, hi, shape).astype(dtype)
    return RNG.standard_normal(shape).astype(dtype)


def _run(fn_t, fn_e, arrays, dtype, grad_mask, kwargs_t=None, kwargs_e=None, scale=10.0):
    """Call both functions on the arrays (those marked in grad_mask require grad), compare
    the results and the gradients of sum(out * c)."""
    t_in = [torch.tensor(a, requires_grad=g) if isinstance(a, np.ndarray) else a
            for a, g in zip(arrays, grad_mask)]
    e_in = [em.tensor(a, requires_grad=g) if isinstance(a, np.ndarray) else a
            for a, g in zip(arrays, grad_mask)]
    t_out = fn_t(*t_in, **(kwargs_t or {}))
    e_out = fn_e(*e_in, **(kwargs_e if kwargs_e is not None else kwargs_t or {}))
    close(t_out, e_out.detach().numpy(), dtype, scale, "forward")
    assert tuple(e_out.shape) == tuple(t_out.shape)
    if not any(grad_mask):
        return
    c = RNG.standard_normal(tuple(t_out.shape)).astype(dtype)
    (t_out * torch.tensor(c)).sum().backward()
    (e_out * em.tensor(c)).sum().backward()
    for i, (t, e, g) in enumerate(zip(t_in, e_in, grad_mask)):
        if g:
            close(t.grad, e.grad.numpy(), dtype, scale, f"grad {i}")


ACTIVATIONS = [
    ("relu", {}), ("relu6", {}), ("gelu", {}), ("gelu", {"approximate": "tanh"}),
    ("silu", {}), ("leaky_relu", {"negative_slope": 0.3}), ("elu", {"alpha": 1.5}),
    ("softplus", {}), ("softplus", {"beta": 3.0, "threshold": 2.0}), ("hardsigmoid", {}),
    ("softsign", {}), ("sigmoid", {}), ("tanh", {}), ("softmax", {"dim": 1}),
    ("log_softmax", {"dim": 0}), ("hardtanh", {}), ("mish", {}), ("logsigmoid", {}),
]


@pytest.mark.parametrize("name,kw", ACTIVATIONS, ids=[f"{n}{i}" for i, (n, _) in
                                                       enumerate(ACTIVATIONS)])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_activation_matches_torch(name, kw, dtype):
    x = _x(4, 5, dtype=dtype) * 4
    x[0, :3] = [0.0, 3.0, -3.0]  # the kinks: gradients there follow torch
    _run(getattr(TF, name), getattr(F, name), [x], dtype, [True], kw)


def test_inplace_activations_write_into_the_input():
    x = em.tensor([-1.0, 2.0])
    assert F.relu(x, inplace=True) is x
    np.testing.assert_array_equal(x.numpy(), [0.0, 2.0])
    y = em.tensor([-1.0, 2.0])
    F.leaky_relu(y, 0.5, inplace=True)
    np.testing.assert_array_equal(y.numpy(), [-0.5, 2.0])


def test_softplus_and_elu_have_finite_gradients_far_out():
    x = em.tensor([-200.0, 0.0, 200.0], requires_grad=True)
    (F.softplus(x) + F.elu(x)).sum().backward()
    assert np.all(np.isfinite(x.grad.numpy()))


def test_softmax_without_dim_warns_and_picks_torchs_dim():
    x = _x(2, 3)
    with pytest.warns(UserWarning, match="Implicit dimension choice"):
        out = F.softmax(em.tensor(x))
    np.testing.assert_allclose(out.numpy(), TF.softmax(torch.tensor(x), dim=1).numpy(),
                               rtol=1e-6)


LOSS_REDUCTIONS = ["mean", "sum", "none"]


@pytest.mark.parametrize("reduction", LOSS_REDUCTIONS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_regression_losses_match_torch(reduction, dtype):
    a, b = _x(3, 4, dtype=dtype), _x(3, 4, dtype=dtype)
    for name, kw in (("mse_loss", {}), ("l1_loss", {}), ("huber_loss", {"delta": 0.7}),
                     ("smooth_l1_loss", {"beta": 0.5})):
        _run(getattr(TF, name), getattr(F, name), [a, b], dtype, [True, True],
             {"reduction": reduction, **kw})


@pytest.mark.parametrize("reduction", LOSS_REDUCTIONS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_cross_entropy_and_nll_match_torch(reduction, dtype):
    logits = _x(6, 4, dtype=dtype)
    target = np.array([0, 3, 1, -100, 2, 3])
    weight = _x(4, dtype=dtype, lo=0.5, hi=2.0)
    cases = [{}, {"weight": weight}, {"label_smoothing": 0.2},
             {"weight": weight, "label_smoothing": 0.1, "ignore_index": 3}]
    for kw in cases:
        if "ignore_index" in kw:
            target = np.array([0, 3, 1, 3, 2, 1])
        kw_t = {k: torch.tensor(v) if isinstance(v, np.ndarray) else v for k, v in kw.items()}
        kw_e = {k: em.tensor(v) if isinstance(v, np.ndarray) else v for k, v in kw.items()}
        _run(TF.cross_entropy, F.cross_entropy, [logits, target], dtype, [True, False],
             {"reduction": reduction, **kw_t}, {"reduction": reduction, **kw_e})
        if "label_smoothing" not in kw:
            logp = np.log(np.exp(logits) / np.exp(logits).sum(1, keepdims=True))
            _run(TF.nll_loss, F.nll_loss, [logp.astype(dtype), target], dtype, [True, False],
                 {"reduction": reduction, **kw_t}, {"reduction": reduction, **kw_e})


@pytest.mark.parametrize("reduction", LOSS_REDUCTIONS)
def test_cross_entropy_spatial_and_unbatched_and_probabilities(reduction):
    dtype = np.float32
    x = _x(2, 3, 4, 5)
    t = RNG.integers(0, 3, (2, 4, 5))
    _run(TF.cross_entropy, F.cross_entropy, [x, t], dtype, [True, False],
         {"reduction": reduction, "label_smoothing": 0.1})
    _run(TF.cross_entropy, F.cross_entropy, [_x(5), np.array(2)], dtype, [True, False],
         {"reduction": reduction})
    probs = np.abs(_x(4, 5))
    probs /= probs.sum(1, keepdims=True)
    w = _x(5, lo=0.5, hi=1.5)
    _run(TF.cross_entropy, F.cross_entropy, [_x(4, 5), probs], dtype, [True, True],
         {"reduction": reduction, "label_smoothing": 0.3, "weight": torch.tensor(w)},
         {"reduction": reduction, "label_smoothing": 0.3, "weight": em.tensor(w)})


@pytest.mark.parametrize("reduction", LOSS_REDUCTIONS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_binary_cross_entropy_losses_match_torch(reduction, dtype):
    p = _x(3, 4, dtype=dtype, lo=0.05, hi=0.95)
    t = _x(3, 4, dtype=dtype, lo=0.0, hi=1.0)
    w = _x(3, 4, dtype=dtype, lo=0.5, hi=1.5)
    pw = _x(4, dtype=dtype, lo=0.5, hi=3.0)
    _run(TF.binary_cross_entropy, F.binary_cross_entropy, [p, t, w], dtype,
         [True, True, False], {"reduction": reduction})
    logits = _x(3, 4, dtype=dtype) * 5
    _run(TF.binary_cross_entropy_with_logits, F.binary_cross_entropy_with_logits,
         [logits, t], dtype, [True, True],
         {"reduction": reduction, "pos_weight": torch.tensor(pw)},
         {"reduction": reduction, "pos_weight": em.tensor(pw)})


def test_loss_modules_match_torch():
    x, t = _x(5, 3), RNG.integers(0, 3, 5)
    w = _x(3, lo=0.5, hi=1.5)
    pairs = [
        (torch.nn.CrossEntropyLoss(weight=torch.tensor(w), label_smoothing=0.1),
         nn.CrossEntropyLoss(weight=em.tensor(w), label_smoothing=0.1), [x, t]),
        (torch.nn.NLLLoss(reduction="sum"), nn.NLLLoss(reduction="sum"), [x, t]),
        (torch.nn.MSELoss(), nn.MSELoss(), [x, _x(5, 3)]),
        (torch.nn.L1Loss(), nn.L1Loss(), [x, _x(5, 3)]),
        (torch.nn.HuberLoss(delta=0.5), nn.HuberLoss(delta=0.5), [x, _x(5, 3)]),
        (torch.nn.BCELoss(), nn.BCELoss(), [_x(5, 3, lo=0.1, hi=0.9), _x(5, 3, lo=0, hi=1)]),
        (torch.nn.BCEWithLogitsLoss(pos_weight=torch.tensor(w)),
         nn.BCEWithLogitsLoss(pos_weight=em.tensor(w)), [x, _x(5, 3, lo=0, hi=1)]),
    ]
    for tmod, emod, arrays in pairs:
        grad = [a.dtype.kind == "f" for a in arrays]
        _run(tmod, emod, arrays, np.float32, grad)
        assert repr(emod) == repr(tmod)
        assert list(emod.state_dict()) == list(tmod.state_dict())


def test_loss_errors():
    with pytest.raises(ValueError, match="foo is not a valid value for reduction"):
        F.mse_loss(em.zeros(2), em.zeros(2), reduction="foo")
    with pytest.raises(ValueError, match=r"Expected input batch_size \(3\) to match target "
                                         r"batch_size \(2\)"):
        F.cross_entropy(em.zeros(3, 4), em.tensor([0, 1]))
    with pytest.raises(ValueError, match="Using a target size"):
        F.binary_cross_entropy(em.full((2,), 0.5), em.zeros(3))
    with pytest.warns(UserWarning, match="Using a target size"):
        F.mse_loss(em.zeros(2, 1), em.zeros(2))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_layer_functions_match_torch(dtype):
    x = _x(4, 3, 5, dtype=dtype)
    w, b = _x(6, 5, dtype=dtype), _x(6, dtype=dtype)
    _run(TF.linear, F.linear, [x, w, b], dtype, [True, True, True])
    _run(TF.linear, F.linear, [x, _x(5, dtype=dtype)], dtype, [True, True])
    lw, lb = _x(3, 5, dtype=dtype), _x(3, 5, dtype=dtype)
    _run(lambda a, g, h: TF.layer_norm(a, (3, 5), g, h, 1e-3),
         lambda a, g, h: F.layer_norm(a, (3, 5), g, h, 1e-3), [x, lw, lb], dtype,
         [True, True, True])
    _run(lambda a, p: TF.normalize(a, p, dim=-1), lambda a, p: F.normalize(a, p, dim=-1),
         [x, 3.0], dtype, [True, False])
    rm, rv = _x(3, dtype=dtype), _x(3, dtype=dtype, lo=0.5, hi=2.0)
    _run(lambda a: TF.batch_norm(a, torch.tensor(rm), torch.tensor(rv), training=False),
         lambda a: F.batch_norm(a, em.tensor(rm), em.tensor(rv), training=False),
         [x], dtype, [True])
    trm, erm = torch.tensor(rm), em.tensor(rm)
    trv, erv = torch.tensor(rv), em.tensor(rv)
    _run(lambda a, g, h: TF.batch_norm(a, trm, trv, g, h, training=True, momentum=0.3),
         lambda a, g, h: F.batch_norm(a, erm, erv, g, h, training=True, momentum=0.3),
         [x, _x(3, dtype=dtype), _x(3, dtype=dtype)], dtype, [True, True, True])
    close(trm, erm.numpy(), dtype, 10.0)
    close(trv, erv.numpy(), dtype, 10.0)
    idx = np.array([[1, 0], [2, 2]])
    _run(lambda i, wt: TF.embedding(i, wt, padding_idx=2),
         lambda i, wt: F.embedding(i, wt, padding_idx=2), [idx, _x(4, 3, dtype=dtype)],
         dtype, [False, True])


def test_layer_norm_and_linear_errors_match_torch():
    with pytest.raises(RuntimeError) as ti:
        TF.layer_norm(torch.zeros(2, 3), (4,))
    with pytest.raises(RuntimeError) as ei:
        F.layer_norm(em.zeros(2, 3), (4,))
    assert str(ei.value) == str(ti.value)


def test_one_hot_and_dropout():
    t = np.array([[0, 3], [2, 1]])
    np.testing.assert_array_equal(F.one_hot(em.tensor(t)).numpy(),
                                  TF.one_hot(torch.tensor(t)).numpy())
    np.testing.assert_array_equal(F.one_hot(em.tensor(t), 6).numpy(),
                                  TF.one_hot(torch.tensor(t), 6).numpy())
    assert F.one_hot(em.tensor(t)).dtype is em.int64
    with pytest.raises(RuntimeError, match="LongTensor"):
        F.one_hot(em.tensor([1], dtype=em.int32))
    x = em.ones(10, 10, requires_grad=True)
    y = F.dropout(x, 0.5)
    y.sum().backward()
    np.testing.assert_array_equal(x.grad.numpy(), y.detach().numpy())  # grad = mask / (1-p)
    assert F.dropout(x, 0.5, training=False) is x
    np.testing.assert_array_equal(F.dropout(em.ones(3), 1.0).numpy(), 0.0)
    with pytest.raises(ValueError, match="dropout probability"):
        F.dropout(x, -0.1)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_scaled_dot_product_attention_matches_torch(dtype):
    q, k, v = _x(2, 3, 4, 8, dtype=dtype), _x(2, 3, 6, 8, dtype=dtype), _x(2, 3, 6, 5,
                                                                          dtype=dtype)
    bool_mask = RNG.random((4, 6)) > 0.3
    bool_mask[:, 0] = True  # no row fully masked
    float_mask = _x(2, 1, 4, 6, dtype=dtype)
    for kw_t, kw_e in (({}, {}),
                       ({"is_causal": True}, {"is_causal": True}),
                       ({"scale": 0.3}, {"scale": 0.3}),
                       ({"attn_mask": torch.tensor(bool_mask)},
                        {"attn_mask": em.tensor(bool_mask)}),
                       ({"attn_mask": torch.tensor(float_mask)},
                        {"attn_mask": em.tensor(float_mask)})):
        _run(TF.scaled_dot_product_attention, F.scaled_dot_product_attention, [q, k, v],
             dtype, [True, True, True], kw_t, kw_e, scale=100.0)


def test_scaled_dot_product_attention_dropout_keeps_the_expectation():
    _ = em.manual_seed(0)
    q = em.zeros(1, 1, 200, 4)
    v = em.ones(1, 1, 50, 3)
    out = F.scaled_dot_product_attention(q, em.zeros(1, 1, 50, 4), v, dropout_p=0.5)
    assert abs(out.mean().item() - 1.0) < 0.05


# -- init -------------------------------------------------------------------------------

def test_fan_rules_and_gain_match_torch():
    from torch.nn.init import _calculate_fan_in_and_fan_out as torch_fans

    from ember.nn.init import _calculate_fan_in_and_fan_out
    for shape in ((3, 4), (5, 2, 3, 3), (7, 1, 4)):
        assert _calculate_fan_in_and_fan_out(em.zeros(shape)) == torch_fans(torch.zeros(shape))
    with pytest.raises(ValueError, match="fewer than 2 dimensions"):
        _calculate_fan_in_and_fan_out(em.zeros(3))
    for name, param in (("linear", None), ("tanh", None), ("relu", None),
                        ("leaky_relu", None), ("leaky_relu", 0.2), ("selu", None),
                        ("sigmoid", None), ("conv2d", None)):
        assert nn.init.calculate_gain(name, param) == torch.nn.init.calculate_gain(name, param)
    with pytest.raises(ValueError, match="Unsupported nonlinearity foo"):
        nn.init.calculate_gain("foo")
    with pytest.raises(ValueError, match="Mode fan_mid not supported"):
        nn.init.kaiming_uniform_(em.zeros(2, 2), mode="fan_mid")


def _stats(t):
    a = t.detach().numpy().ravel().astype(np.float64)
    return a.mean(), a.std(), a.min(), a.max()


def test_initialisers_have_torchs_distributions():
    _ = em.manual_seed(0)
    shape = (100, 120)  # fan_in 120, fan_out 100, 12000 samples
    fan_in, fan_out = 120, 100
    cases = [
        (lambda t: nn.init.uniform_(t, -2, 3), 0.5, 5 / math.sqrt(12), -2, 3),
        (lambda t: nn.init.normal_(t, 1.0, 2.0), 1.0, 2.0, None, None),
        (lambda t: nn.init.xavier_uniform_(t, gain=2.0), 0.0,
         2.0 * math.sqrt(2 / (fan_in + fan_out)), -2.0 * math.sqrt(6 / (fan_in + fan_out)),
         2.0 * math.sqrt(6 / (fan_in + fan_out))),
        (nn.init.xavier_normal_, 0.0, math.sqrt(2 / (fan_in + fan_out)), None, None),
        (lambda t: nn.init.kaiming_uniform_(t, a=math.sqrt(5)), 0.0,
         math.sqrt(2 / 6) / math.sqrt(fan_in), -1 / math.sqrt(fan_in), 1 / math.sqrt(fan_in)),
        (lambda t: nn.init.kaiming_normal_(t, mode="fan_out", nonlinearity="relu"), 0.0,
         math.sqrt(2 / fan_out), None, None),
    ]
    for fill, mean, std, lo, hi in cases:
        t = em.empty(shape)
        assert fill(t) is t
        m, s, mn, mx = _stats(t)
        assert abs(m - mean) < 4 * std / math.sqrt(t.numel())
        assert abs(s / std - 1) < 0.03
        if lo is not None:
            assert lo <= mn and mx <= hi and mn < lo + 0.01 * (hi - lo) and \
                mx > hi - 0.01 * (hi - lo)
    t = nn.init.trunc_normal_(em.empty(shape), mean=0.5, std=1.0, a=-1.0, b=1.5)
    m, s, mn, mx = _stats(t)
    ref = torch.nn.init.trunc_normal_(torch.empty(400, 400), 0.5, 1.0, -1.0, 1.5).numpy()
    assert -1.0 <= mn and mx <= 1.5
    assert abs(m - ref.mean()) < 0.02 and abs(s - ref.std()) < 0.02
    p = nn.Parameter(em.empty(3, 3))
    nn.init.ones_(p)
    assert p.requires_grad and p.is_leaf and p.grad_fn is None
    np.testing.assert_array_equal(nn.init.zeros_(em.ones(2)).numpy(), 0.0)
    np.testing.assert_array_equal(nn.init.constant_(em.ones(2), 0.25).numpy(), 0.25)


def test_layers_initialise_as_torch():
    _ = em.manual_seed(1)
    lin = nn.Linear(200, 60)
    bound = 1 / math.sqrt(200)
    for p in (lin.weight, lin.bias):
        m, s, mn, mx = _stats(p)
        assert -bound <= mn and mx <= bound
    assert abs(_stats(lin.weight)[1] / (bound / math.sqrt(3)) - 1) < 0.03
    emb = nn.Embedding(300, 40)
    assert abs(_stats(emb.weight)[1] - 1) < 0.03
    mha = nn.MultiheadAttention(16, 4)
    a = math.sqrt(6 / (16 + 48))
    m, s, mn, mx = _stats(mha.in_proj_weight)
    assert -a <= mn and mx <= a and abs(s / (a / math.sqrt(3)) - 1) < 0.1
    assert not np.any(mha.in_proj_bias.detach().numpy())
    bn = nn.BatchNorm1d(3)
    np.testing.assert_array_equal(bn.weight.detach().numpy(), 1.0)
    ln = nn.LayerNorm(3)
    np.testing.assert_array_equal(ln.bias.detach().numpy(), 0.0)


# -- docstrings ---------------------------------------------------------------------------

NN_MODULES = sorted(m.name for m in pkgutil.iter_modules(ember.nn.__path__))


@pytest.mark.parametrize("name", NN_MODULES)
def test_nn_docstring_examples_run(name):
    module = importlib.import_module(f"ember.nn.{name}")
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    failures = []
    globs = {**vars(module), "em": em, "np": np, "nn": nn, "F": F}
    for test in doctest.DocTestFinder().find(module, globs=globs):
        result = runner.run(test, out=failures.append, clear_globs=True)
        assert result.failed == 0, "".join(failures)


def test_every_public_nn_name_has_a_docstring():
    missing = [n for n in nn.__all__ if not (getattr(nn, n).__doc__ or "").strip()]
    missing += [f"F.{n}" for n in F.__all__ if not (getattr(F, n).__doc__ or "").strip()]
    missing += [f"init.{n}" for n in nn.init.__all__
                if not (getattr(nn.init, n).__doc__ or "").strip()]
    assert not missing
