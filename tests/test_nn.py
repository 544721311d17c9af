"""em.nn against torch.nn: Module behaviour, every layer's forward and gradients, state
dicts, repr and errors."""

import re
from collections import OrderedDict

import numpy as np
import pytest
from nn_helpers import compare_module, state_to_ember, torch

import ember as em
from ember import nn

tnn = torch.nn
RNG = np.random.default_rng(0)


def _x(*shape, dtype=np.float32):
    return RNG.standard_normal(shape).astype(dtype)


# -- Module and Parameter ---------------------------------------------------------------

def _net_class(mod):
    class Net(mod.Module):
        def __init__(self):
            super().__init__()
            self.fc1 = mod.Linear(3, 4)
            self.act = mod.ReLU()
            self.block = mod.Sequential(mod.Linear(4, 4), mod.GELU(), mod.Dropout(0.1))
            self.norm = mod.BatchNorm1d(4)
            self.layers = mod.ModuleList([mod.Linear(4, 4), mod.Linear(4, 4), mod.Tanh()])
            self.heads = mod.ModuleDict({"a": mod.Linear(4, 2), "b": mod.LayerNorm(4)})

        def forward(self, x):
            x = self.norm(self.block(self.act(self.fc1(x))))
            for layer in self.layers:
                x = layer(x)
            return self.heads["a"](self.heads["b"](x))
    return Net


_Net = _net_class(nn)
_TNet = _net_class(tnn)


def test_parameter_is_a_leaf_tensor():
    p = nn.Parameter(em.tensor([1.0, 2.0]))
    assert isinstance(p, em.Tensor) and p.requires_grad and p.is_leaf
    assert repr(p) == "Parameter containing:\ntensor([1., 2.], requires_grad=True)"
    assert not nn.Parameter(em.zeros(2), requires_grad=False).requires_grad
    (p * p).sum().backward()
    np.testing.assert_array_equal(p.grad.numpy(), [2.0, 4.0])
    with em.no_grad():
        p.sub_(0.5 * p.grad)
    np.testing.assert_array_equal(p.detach().numpy(), [0.0, 0.0])
    assert isinstance(p, nn.Parameter) and p.is_leaf


def test_registration_and_traversal_match_torch():
    t, e = _TNet(), _Net()
    assert [n for n, _ in e.named_parameters()] == [n for n, _ in t.named_parameters()]
    assert [n for n, _ in e.named_buffers()] == [n for n, _ in t.named_buffers()]
    assert list(e.state_dict()) == list(t.state_dict())
    assert [n for n, _ in e.named_modules()] == [n for n, _ in t.named_modules()]
    assert [n for n, _ in e.named_children()] == [n for n, _ in t.named_children()]
    assert len(list(e.parameters(recurse=False))) == 0
    assert len(list(e.fc1.parameters(recurse=False))) == 2
    assert e.get_submodule("block.0") is e.block[0]
    assert repr(e) == repr(t)


def test_setattr_getattr_delattr():
    m = nn.Module()
    m.w = nn.Parameter(em.zeros(2))
    m.register_buffer("b", em.ones(2))
    m.register_buffer("tmp", em.ones(1), persistent=False)
    m.sub = nn.Linear(1, 1)
    assert list(m._parameters) == ["w"] and list(m._buffers) == ["b", "tmp"]
    assert list(m.state_dict()) == ["w", "b", "sub.weight", "sub.bias"]
    with pytest.raises(TypeError, match="cannot assign 'Tensor' as parameter 'w'"):
        m.w = em.zeros(2)
    m.w = None
    assert m.w is None and "w" not in m.state_dict()
    del m.sub
    assert not hasattr(m, "sub")
    m.register_parameter("q", None)
    with pytest.raises(KeyError, match="attribute 'b' already exists"):
        m.register_parameter("b", nn.Parameter(em.zeros(1)))
    with pytest.raises(AttributeError, match="has no attribute 'nope'"):
        m.nope


def test_train_eval_zero_grad_requires_grad_apply():
    e = _Net()
    assert e.training and e.block[2].training
    e.eval()
    assert not e.training and not e.block[2].training and not e.heads["a"].training
    e.train()
    assert e.norm.training
    e(em.randn(5, 3)).sum().backward()
    assert all(p.grad is not None for p in e.parameters())
    e.zero_grad(set_to_none=False)
    assert all(not np.any(p.grad.numpy()) for p in e.parameters())
    e.zero_grad()
    assert all(p.grad is None for p in e.parameters())
    e.requires_grad_(False)
    assert not any(p.requires_grad for p in e.parameters())
    seen = []
    e.apply(lambda m: seen.append(type(m).__name__))
    assert seen[-1] == "Net" and seen[0] == "Linear"


def test_to_dtype_casts_parameters_in_place():
    e = _Net()
    params = list(e.parameters())
    e.double()
    assert [p is q for p, q in zip(params, e.parameters())] == [True] * len(params)
    assert all(p.dtype is em.float64 for p in e.parameters())
    assert e.norm.running_mean.dtype is em.float64
    assert e.norm.num_batches_tracked.dtype is em.int64
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in e.parameters())
    e.to(em.float32)
    assert e.fc1.weight.dtype is em.float32
    e.to("cpu")
    e(em.randn(2, 3)).sum().backward()
    with pytest.raises(TypeError, match="only accepts floating point"):
        e.to(em.int64)


def test_hooks():
    m = nn.Linear(2, 2)
    calls = []
    h1 = m.register_forward_pre_hook(lambda mod, args: calls.append("pre"))
    h2 = m.register_forward_hook(lambda mod, args, out: out * 0)
    out = m(em.ones(1, 2))
    assert calls == ["pre"] and not np.any(out.detach().numpy())
    h1.remove()
    h2.remove()
    assert np.any(m(em.ones(1, 2)).detach().numpy())


# -- state dicts -----------------------------------------------------------------------

def test_load_state_dict_from_torch_and_back():
    t, e = _TNet(), _Net()
    result = e.load_state_dict(state_to_ember(t))
    assert result.missing_keys == [] and result.unexpected_keys == []
    assert repr(result) == repr(t.load_state_dict(t.state_dict()))
    for k, v in e.state_dict().items():
        np.testing.assert_array_equal(v.numpy(), t.state_dict()[k].numpy())
    e.load_state_dict(e.state_dict())
    sd = e.state_dict()
    assert not any(v.requires_grad for v in sd.values())
    assert e.state_dict(keep_vars=True)["fc1.weight"] is e.fc1.weight


def _torch_error(fn):
    with pytest.raises(RuntimeError) as info:
        fn()
    return str(info.value)


def test_load_state_dict_errors_match_torch():
    t, e = _TNet(), _Net()
    good = state_to_ember(t)
    bad = dict(good)
    del bad["fc1.bias"]
    bad["extra"] = np.zeros(1, np.float32)
    bad["block.0.weight"] = np.zeros((2, 2), np.float32)
    tbad = {k: torch.tensor(v) for k, v in bad.items()}
    before = e.fc1.weight.detach().numpy().copy()
    msg = _torch_error(lambda: e.load_state_dict(bad))
    assert msg == _torch_error(lambda: t.load_state_dict(tbad))
    np.testing.assert_array_equal(e.fc1.weight.detach().numpy(), before)  # nothing copied
    del bad["block.0.weight"]
    del tbad["block.0.weight"]
    r = e.load_state_dict(bad, strict=False)
    tr = t.load_state_dict(tbad, strict=False)
    assert (r.missing_keys, r.unexpected_keys) == (tr.missing_keys, tr.unexpected_keys)


# -- layers against torch --------------------------------------------------------------

LAYERS = [
    ("Linear", lambda m: m.Linear(5, 3), [(4, 5)]),
    ("Linear3d", lambda m: m.Linear(5, 3, bias=False), [(2, 4, 5)]),
    ("Bilinear", lambda m: m.Bilinear(3, 4, 2), [(5, 3), (5, 4)]),
    ("ReLU", lambda m: m.ReLU(), [(3, 4)]),
    ("ReLU6", lambda m: m.ReLU6(), [(3, 4)]),
    ("GELU", lambda m: m.GELU(), [(3, 4)]),
    ("GELUtanh", lambda m: m.GELU(approximate="tanh"), [(3, 4)]),
    ("SiLU", lambda m: m.SiLU(), [(3, 4)]),
    ("Mish", lambda m: m.Mish(), [(3, 4)]),
    ("Tanh", lambda m: m.Tanh(), [(3, 4)]),
    ("Sigmoid", lambda m: m.Sigmoid(), [(3, 4)]),
    ("Softmax", lambda m: m.Softmax(dim=1), [(3, 4)]),
    ("LogSoftmax", lambda m: m.LogSoftmax(dim=-1), [(3, 4)]),
    ("LeakyReLU", lambda m: m.LeakyReLU(0.2), [(3, 4)]),
    ("ELU", lambda m: m.ELU(alpha=0.7), [(3, 4)]),
    ("Hardsigmoid", lambda m: m.Hardsigmoid(), [(3, 4)]),
    ("Hardtanh", lambda m: m.Hardtanh(-0.5, 0.5), [(3, 4)]),
    ("Softplus", lambda m: m.Softplus(beta=2.0, threshold=1.0), [(3, 4)]),
    ("Softsign", lambda m: m.Softsign(), [(3, 4)]),
    ("LogSigmoid", lambda m: m.LogSigmoid(), [(3, 4)]),
    ("Flatten", lambda m: m.Flatten(), [(2, 3, 4)]),
    ("Unflatten", lambda m: m.Unflatten(1, (2, 2)), [(3, 4)]),
    ("Identity", lambda m: m.Identity(7, k=1), [(3, 4)]),
    ("LayerNorm", lambda m: m.LayerNorm(4), [(3, 4)]),
    ("LayerNorm2", lambda m: m.LayerNorm((3, 4), elementwise_affine=False), [(2, 3, 4)]),
    ("BatchNorm1d", lambda m: m.BatchNorm1d(4), [(6, 4)]),
    ("BatchNorm1d3", lambda m: m.BatchNorm1d(3, momentum=None), [(4, 3, 5)]),
    ("BatchNorm1dNoStats", lambda m: m.BatchNorm1d(3, track_running_stats=False), [(4, 3)]),
    ("BatchNorm2d", lambda m: m.BatchNorm2d(3, affine=False), [(2, 3, 4, 4)]),
    ("Dropout0", lambda m: m.Dropout(0.0), [(3, 4)]),
    ("Sequential", lambda m: m.Sequential(m.Linear(4, 6), m.ReLU(), m.Linear(6, 2)),
     [(5, 4)]),
]


@pytest.mark.parametrize("name,make,shapes", LAYERS, ids=[c[0] for c in LAYERS])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_layer_matches_torch(name, make, shapes, dtype):
    tmod, emod = make(tnn), make(nn)
    if dtype is np.float64:
        tmod, emod = tmod.double(), emod.double()
    if name == "LayerNorm":  # non-trivial affine values
        with torch.no_grad():
            tmod.weight.uniform_(0.5, 1.5)
            tmod.bias.uniform_(-1, 1)
    for mode in (True, False):
        tmod.train(mode)
        emod.train(mode)
        if name == "BatchNorm1dNoStats" and not mode:
            continue
        inputs = [_x(*s, dtype=dtype) for s in shapes]
        compare_module(tmod, emod, inputs, dtype, scale=10.0)
        tmod.zero_grad()
        emod.zero_grad()
    assert repr(emod) == repr(tmod)


def test_batchnorm_running_statistics_over_steps():
    t, e = tnn.BatchNorm2d(3), nn.BatchNorm2d(3)
    for _ in range(3):
        x = _x(4, 3, 2, 2)
        t(torch.tensor(x))
        e(em.tensor(x))
    for k, v in t.state_dict().items():
        np.testing.assert_allclose(e.state_dict()[k].numpy(), v.numpy(), rtol=1e-5, atol=1e-6)
    assert e.num_batches_tracked.item() == 3
    with pytest.raises(ValueError, match="Expected more than 1 value per channel"):
        nn.BatchNorm1d(3)(em.randn(1, 3))
    with pytest.raises(ValueError, match=re.escape("expected 4D input (got 3D input)")):
        e(em.randn(3, 3, 3))


def test_embedding_matches_torch_with_padding():
    t = tnn.Embedding(6, 3, padding_idx=1)
    e = nn.Embedding(6, 3, padding_idx=1)
    assert not np.any(e.weight.detach().numpy()[1])
    with torch.no_grad():
        t.weight[1] = 0.5  # a non-zero padding row is read, but gets no gradient
    idx = np.array([[0, 1, 2], [1, 5, 5]])
    compare_module(t, e, [idx], grad_inputs=False)
    assert repr(e) == repr(t) == "Embedding(6, 3, padding_idx=1)"


def test_embedding_max_norm_matches_torch():
    t = tnn.Embedding(5, 3, max_norm=1.0)
    e = nn.Embedding(5, 3, max_norm=1.0)
    compare_module(t, e, [np.array([0, 2, 2])], grad_inputs=False)
    np.testing.assert_allclose(e.weight.detach().numpy(), t.weight.detach().numpy(), atol=1e-6)


def test_dropout_layer_train_and_eval():
    _ = em.manual_seed(0)
    m = nn.Dropout(0.25)
    x = em.ones(200, 100)
    y = m(x).numpy()
    kept = y != 0
    assert abs(kept.mean() - 0.75) < 0.02
    np.testing.assert_allclose(y[kept], 1 / 0.75, rtol=1e-6)
    assert m.eval()(x) is x
    assert repr(m) == repr(tnn.Dropout(0.25))
    with pytest.raises(ValueError, match="dropout probability has to be between 0 and 1"):
        nn.Dropout(1.5)


@pytest.mark.parametrize("batch_first", [True, False])
@pytest.mark.parametrize("need_weights", [True, False])
def test_multihead_attention_matches_torch(batch_first, need_weights):
    t = tnn.MultiheadAttention(8, 2, batch_first=batch_first)
    e = nn.MultiheadAttention(8, 2, batch_first=batch_first)
    assert list(e.state_dict()) == list(t.state_dict())
    assert repr(e) == repr(t)
    shape = (3, 5, 8) if batch_first else (5, 3, 8)
    q, k = _x(*shape), _x(*shape)
    mask = np.triu(np.ones((5, 5), bool), 1)
    kpm = np.zeros((3, 5), bool)
    kpm[1, 3:] = True
    e.load_state_dict(state_to_ember(t))
    tq, tk = torch.tensor(q, requires_grad=True), torch.tensor(k, requires_grad=True)
    eq, ek = em.tensor(q, requires_grad=True), em.tensor(k, requires_grad=True)
    to, tw = t(tq, tk, tk, key_padding_mask=torch.tensor(kpm), need_weights=need_weights,
               attn_mask=torch.tensor(mask))
    eo, ew = e(eq, ek, ek, key_padding_mask=em.tensor(kpm), need_weights=need_weights,
               attn_mask=em.tensor(mask))
    np.testing.assert_allclose(eo.detach().numpy(), to.detach().numpy(), rtol=1e-5, atol=1e-5)
    if need_weights:
        np.testing.assert_allclose(ew.detach().numpy(), tw.detach().numpy(), rtol=1e-5,
                                   atol=1e-6)
    else:
        assert ew is None and tw is None
    to.square().sum().backward()
    eo.square().sum().backward()
    for tg, eg in ((tq.grad, eq.grad), (tk.grad, ek.grad)):
        np.testing.assert_allclose(eg.numpy(), tg.numpy(), rtol=1e-4, atol=1e-5)
    tp = dict(t.named_parameters())
    for name, p in e.named_parameters():
        np.testing.assert_allclose(p.grad.numpy(), tp[name].grad.numpy(), rtol=1e-4,
                                   atol=1e-5, err_msg=name)


# -- containers --------------------------------------------------------------------------

def test_sequential_indexing_slicing_append():
    s = nn.Sequential(nn.Linear(2, 3), nn.ReLU(), nn.Linear(3, 1))
    assert len(s) == 3 and isinstance(s[-1], nn.Linear)
    sub = s[1:]
    assert isinstance(sub, nn.Sequential) and len(sub) == 2 and sub[1] is s[2]
    s.append(nn.Sigmoid())
    assert list(s._modules) == ["0", "1", "2", "3"]
    named = nn.Sequential(OrderedDict([("fc", nn.Linear(2, 2)), ("act", nn.ReLU())]))
    assert list(named.state_dict()) == ["fc.weight", "fc.bias"]
    del s[0]
    assert list(s._modules) == ["0", "1", "2"] and isinstance(s[0], nn.ReLU)
    with pytest.raises(IndexError):
        s[5]


def test_module_list_and_dict():
    ml = nn.ModuleList([nn.Linear(2, 2)])
    ml.append(nn.ReLU())
    ml += [nn.Tanh()]
    assert len(ml) == 3 and isinstance(ml[-1], nn.Tanh)
    md = nn.ModuleDict({"a": nn.Linear(1, 1)})
    md["b"] = nn.ReLU()
    assert list(md.keys()) == ["a", "b"] and "a" in md and len(md) == 2
    assert repr(md) == repr(tnn.ModuleDict({"a": tnn.Linear(1, 1), "b": tnn.ReLU()}))
    tl = tnn.ModuleList([tnn.Linear(2, 2), tnn.Linear(2, 2), tnn.ReLU()])
    el = nn.ModuleList([nn.Linear(2, 2), nn.Linear(2, 2), nn.ReLU()])
    assert repr(el) == repr(tl)


# -- errors ------------------------------------------------------------------------------

def test_linear_wrong_input_shape_message_matches_torch():
    t, e = tnn.Linear(4, 3), nn.Linear(4, 3)
    with pytest.raises(RuntimeError) as ti:
        t(torch.zeros(2, 5))
    with pytest.raises(RuntimeError) as ei:
        e(em.zeros(2, 5))
    assert str(ei.value) == str(ti.value)
    with pytest.raises(RuntimeError) as ti:
        t(torch.zeros(2, 6, 5))
    with pytest.raises(RuntimeError) as ei:
        e(em.zeros(2, 6, 5))
    assert str(ei.value) == str(ti.value)


# -- compiled training ----------------------------------------------------------------

def test_compiled_training_step_matches_uncompiled():
    def make():
        _ = em.manual_seed(3)
        return nn.Sequential(nn.Linear(4, 8), nn.GELU(approximate="tanh"), nn.Linear(8, 3))

    x = em.tensor(_x(6, 4))
    y = em.tensor(np.array([0, 1, 2, 0, 1, 2]))
    loss_fn = nn.CrossEntropyLoss()

    def step(model, x, y):
        loss = loss_fn(model(x), y)
        loss.backward()
        with em.no_grad():
            for p in model.parameters():
                p.sub_(0.1 * p.grad)
                p.grad = None
        return loss.detach()

    plain, compiled = make(), make()
    fast = em.compile(lambda x, y: step(compiled, x, y))
    for _ in range(3):
        a = step(plain, x, y).item()
        b = fast(x, y).item()
        assert abs(a - b) < 1e-6
    for p, q in zip(plain.parameters(), compiled.parameters()):
        np.testing.assert_allclose(q.detach().numpy(), p.detach().numpy(), rtol=1e-5,
                                   atol=1e-6)


def test_parameter_data_assignment_keeps_the_object():
    lin = nn.Linear(2, 2)
    w = lin.weight
    lin.weight.data = em.ones(2, 2, dtype=em.float64)
    assert lin.weight is w and w.dtype is em.float64 and w.requires_grad
    np.testing.assert_array_equal(w.detach().numpy(), 1.0)
    w.data.mul_(3)  # .data shares the storage
    np.testing.assert_array_equal(w.detach().numpy(), 3.0)


def test_deepcopy_and_pickle_keep_parameters():
    import copy
    import pickle
    m = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3))
    for clone in (copy.deepcopy(m), pickle.loads(pickle.dumps(m))):
        assert isinstance(clone[0].weight, nn.Parameter) and clone[0].weight.requires_grad
        assert clone[0].weight is not m[0].weight
        for (k, a), (_, b) in zip(m.state_dict().items(), clone.state_dict().items()):
            np.testing.assert_array_equal(a.numpy(), b.numpy(), err_msg=k)


def test_training_loop_in_eager_mode_matches_lazy(exec_mode):
    _ = em.manual_seed(5)
    model = nn.Sequential(nn.Linear(3, 5), nn.LayerNorm(5), nn.SiLU(), nn.Linear(5, 2))
    ref = tnn.Sequential(tnn.Linear(3, 5), tnn.LayerNorm(5), tnn.SiLU(), tnn.Linear(5, 2))
    model.load_state_dict(state_to_ember(ref))
    x, y = _x(4, 3), np.array([0, 1, 1, 0])
    for _ in range(3):
        loss = nn.CrossEntropyLoss()(model(em.tensor(x)), em.tensor(y))
        loss.backward()
        tloss = tnn.CrossEntropyLoss()(ref(torch.tensor(x)), torch.tensor(y))
        tloss.backward()
        with em.no_grad(), torch.no_grad():
            for p, q in zip(model.parameters(), ref.parameters()):
                p.sub_(0.5 * p.grad)
                q.sub_(0.5 * q.grad)
        model.zero_grad()
        ref.zero_grad()
        assert abs(loss.item() - tloss.item()) < 1e-5


def test_multihead_attention_unbatched_float_and_3d_masks():
    t = tnn.MultiheadAttention(6, 3, dropout=0.0, bias=False)
    e = nn.MultiheadAttention(6, 3, bias=False)
    e.load_state_dict(state_to_ember(t))
    x = _x(4, 6)
    fmask = _x(4, 4)
    to, tw = t(*(torch.tensor(x),) * 3, attn_mask=torch.tensor(fmask),
               average_attn_weights=False)
    eo, ew = e(*(em.tensor(x),) * 3, attn_mask=em.tensor(fmask), average_attn_weights=False)
    np.testing.assert_allclose(eo.detach().numpy(), to.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ew.detach().numpy(), tw.detach().numpy(), rtol=1e-5, atol=1e-6)
    m3 = _x(2 * 3, 4, 4)
    xb = _x(4, 2, 6)
    to, _ = t(*(torch.tensor(xb),) * 3, attn_mask=torch.tensor(m3), need_weights=False)
    eo, _ = e(*(em.tensor(xb),) * 3, attn_mask=em.tensor(m3), need_weights=False)
    np.testing.assert_allclose(eo.detach().numpy(), to.detach().numpy(), rtol=1e-5, atol=1e-6)
    with pytest.raises(RuntimeError, match="The shape of the 2D attn_mask"):
        e(*(em.tensor(xb),) * 3, attn_mask=em.zeros(3, 3))


def test_batchnorm_cumulative_average_compiles_without_a_graph_break():
    t, e = tnn.BatchNorm1d(3, momentum=None), nn.BatchNorm1d(3, momentum=None)
    fwd = em.compile(lambda x: e(x).detach(), fullgraph=True)
    for _ in range(3):
        x = _x(5, 3)
        t(torch.tensor(x))
        fwd(em.tensor(x))
    for k, v in t.state_dict().items():
        np.testing.assert_allclose(e.state_dict()[k].numpy(), v.numpy(), rtol=1e-5, atol=1e-6)


def test_multihead_attention_with_other_key_and_value_widths():
    t = tnn.MultiheadAttention(4, 2, kdim=3, vdim=5, batch_first=True)
    e = nn.MultiheadAttention(4, 2, kdim=3, vdim=5, batch_first=True)
    assert list(e.state_dict()) == list(t.state_dict())
    e.load_state_dict(state_to_ember(t))
    q, k, v = _x(2, 3, 4), _x(2, 6, 3), _x(2, 6, 5)
    to, tw = t(torch.tensor(q), torch.tensor(k), torch.tensor(v))
    eo, ew = e(em.tensor(q), em.tensor(k), em.tensor(v))
    np.testing.assert_allclose(eo.detach().numpy(), to.detach().numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ew.detach().numpy(), tw.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_parameter_list_and_dict_match_torch():
    tl = tnn.ParameterList([tnn.Parameter(torch.zeros(2)), torch.ones(2, 3)])
    el = nn.ParameterList([nn.Parameter(em.zeros(2)), em.ones(2, 3)])
    assert isinstance(el[1], nn.Parameter) and el[1].requires_grad and len(el) == 2
    assert repr(el) == repr(tl).replace("torch.", "ember.")
    assert list(el.state_dict()) == list(tl.state_dict())
    el.append(em.zeros(1))
    assert [n for n, _ in el.named_parameters()] == ["0", "1", "2"]
    td = tnn.ParameterDict({"a": tnn.Parameter(torch.zeros(2)), "b": torch.zeros(1)})
    ed = nn.ParameterDict({"a": nn.Parameter(em.zeros(2)), "b": em.zeros(1)})
    assert list(ed.state_dict()) == list(td.state_dict()) and list(ed) == ["a", "b"]
    assert isinstance(ed["b"], nn.Parameter) and "a" in ed
    del ed["a"]
    assert list(ed.keys()) == ["b"] and [n for n, _ in ed.named_parameters()] == ["b"]


def test_compiled_forward_follows_train_and_eval():
    m = nn.Dropout(0.5)
    f = em.compile(lambda x: m(x))
    x = em.ones(4, 8)
    f(x)
    m.eval()
    np.testing.assert_array_equal(f(x).numpy(), 1.0)


def test_linear_dtype_mismatch_message_matches_torch():
    for dtype, tdtype in ((em.float64, torch.float64), (em.int64, torch.int64)):
        with pytest.raises(RuntimeError) as ti:
            tnn.Linear(3, 2)(torch.zeros(2, 3, dtype=tdtype))
        with pytest.raises(RuntimeError) as ei:
            nn.Linear(3, 2)(em.zeros(2, 3, dtype=dtype))
        assert str(ei.value) == str(ti.value)
    with pytest.raises(RuntimeError) as ti:
        tnn.Linear(3, 2, bias=False)(torch.zeros(2, 3, dtype=torch.float64))
    with pytest.raises(RuntimeError) as ei:
        nn.Linear(3, 2, bias=False)(em.zeros(2, 3, dtype=em.float64))
    assert str(ei.value) == str(ti.value)


@pytest.mark.parametrize("need_weights", [True, False])
def test_multihead_attention_bias_kv_and_zero_attn_match_torch(need_weights):
    t = tnn.MultiheadAttention(4, 2, add_bias_kv=True, add_zero_attn=True)
    e = nn.MultiheadAttention(4, 2, add_bias_kv=True, add_zero_attn=True)
    assert list(e.state_dict()) == list(t.state_dict())
    e.load_state_dict(state_to_ember(t))
    x = _x(3, 2, 4)
    kpm = np.array([[False, False, True], [False, False, False]])
    mask = np.triu(np.ones((3, 3), bool), 1)
    tx, ex = torch.tensor(x, requires_grad=True), em.tensor(x, requires_grad=True)
    to, _ = t(tx, tx, tx, key_padding_mask=torch.tensor(kpm), attn_mask=torch.tensor(mask),
              need_weights=need_weights)
    eo, _ = e(ex, ex, ex, key_padding_mask=em.tensor(kpm), attn_mask=em.tensor(mask),
              need_weights=need_weights)
    np.testing.assert_allclose(eo.detach().numpy(), to.detach().numpy(), rtol=1e-5, atol=1e-6)
    to.sum().backward()
    eo.sum().backward()
    np.testing.assert_allclose(ex.grad.numpy(), tx.grad.numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(e.bias_k.grad.numpy(), t.bias_k.grad.numpy(), rtol=1e-4,
                               atol=1e-6)


class _TinyTransformer(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(11, 8)
        self.attn = nn.MultiheadAttention(8, 2, batch_first=True)
        self.norm = nn.LayerNorm(8)
        self.head = nn.Linear(8, 11)

    def forward(self, idx):
        x = self.emb(idx)
        n = idx.shape[1]
        causal = em.arange(n).unsqueeze(0) > em.arange(n).unsqueeze(1)  # True: masked
        h, _ = self.attn(x, x, x, attn_mask=causal, need_weights=False)
        return self.head(nn.functional.gelu(self.norm(x + h)))


def test_compiled_transformer_step_matches_uncompiled():
    def make():
        _ = em.manual_seed(0)
        return _TinyTransformer()

    idx = em.tensor(RNG.integers(0, 11, (3, 6)))
    tgt = em.tensor(RNG.integers(0, 11, (3, 6)))

    def step(model):
        loss = nn.functional.cross_entropy(model(idx).reshape(-1, 11), tgt.reshape(-1))
        loss.backward()
        with em.no_grad():
            for p in model.parameters():
                p.sub_(0.1 * p.grad)
                p.grad = None
        return loss.detach()

    plain, compiled = make(), make()
    fast = em.compile(lambda: step(compiled), fullgraph=True)
    for _ in range(3):
        assert abs(step(plain).item() - fast().item()) < 1e-6
    for p, q in zip(plain.parameters(), compiled.parameters()):
        np.testing.assert_allclose(q.detach().numpy(), p.detach().numpy(), rtol=1e-5,
                                   atol=1e-6)


def test_deleting_from_sequential_and_module_list_renumbers_as_torch():
    got = []
    for lib in (em, torch):
        s = lib.nn.Sequential(lib.nn.ReLU(), lib.nn.Tanh(), lib.nn.Sigmoid(), lib.nn.ReLU())
        del s[1]
        del s[1:2]
        m = lib.nn.ModuleList([lib.nn.ReLU(), lib.nn.Tanh(), lib.nn.Sigmoid()])
        del m[-1]
        got.append((list(s._modules), [type(x).__name__ for x in s],
                    list(m._modules), [type(x).__name__ for x in m]))
    assert got[0] == got[1]
