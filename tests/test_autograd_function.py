"""em.autograd.Function (custom forward/backward), Tensor.register_hook, against torch."""

import numpy as np
import pytest

import ember as em

torch = pytest.importorskip("torch")


def _pair(name):
    """The same custom function written for ember and for torch."""
    def make(lib):
        def forward(ctx, x, k):
            ctx.save_for_backward(x)
            ctx.k = k
            return x.exp() * k

        def backward(ctx, g):
            x, = ctx.saved_tensors
            return g * x.exp() * ctx.k, None
        return type(name, (lib.autograd.Function,), {
            "forward": staticmethod(forward), "backward": staticmethod(backward)})
    return make(em), make(torch)


DATA = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]], dtype=np.float32)


def test_function_matches_torch(exec_mode):
    EmExp, TorchExp = _pair("ScaledExp")
    x = em.tensor(DATA, requires_grad=True)
    tx = torch.tensor(DATA, requires_grad=True)
    y, ty = EmExp.apply(x, 3.0), TorchExp.apply(tx, 3.0)
    assert y.grad_fn.name() == type(ty.grad_fn).__name__ == "ScaledExpBackward"
    assert repr(y).endswith("grad_fn=<ScaledExpBackward>)")
    assert [e is None for e, _ in y.grad_fn.next_functions] == \
        [e is None for e, _ in ty.grad_fn.next_functions]
    np.testing.assert_allclose(y.detach().numpy(), ty.detach().numpy(), rtol=1e-6)
    (y * y).sum().backward()
    (ty * ty).sum().backward()
    np.testing.assert_allclose(x.grad.numpy(), tx.grad.numpy(), rtol=1e-5)


def test_double_backward(exec_mode):
    EmExp, TorchExp = _pair("ScaledExp")
    x = em.tensor(DATA, requires_grad=True)
    tx = torch.tensor(DATA, requires_grad=True)
    g, = em.autograd.grad(EmExp.apply(x, 2.0).pow(2).sum(), x, create_graph=True)
    tg, = torch.autograd.grad(TorchExp.apply(tx, 2.0).pow(2).sum(), tx, create_graph=True)
    gg, = em.autograd.grad(g.sum(), x)
    tgg, = torch.autograd.grad(tg.sum(), tx)
    np.testing.assert_allclose(g.detach().numpy(), tg.detach().numpy(), rtol=1e-5)
    np.testing.assert_allclose(gg.numpy(), tgg.numpy(), rtol=1e-5)


def _two(lib):
    class Two(lib.autograd.Function):
        @staticmethod
        def forward(ctx, a, b, scale=1.0):
            ctx.save_for_backward(a, b)
            ctx.scale = scale
            assert not lib.is_grad_enabled()  # forward runs under no_grad
            return a * b * scale, (a + b).argmax()

        @staticmethod
        def backward(ctx, gp, gi):
            a, b = ctx.saved_tensors
            ga = gp * b * ctx.scale if ctx.needs_input_grad[0] else None
            gb = gp * a * ctx.scale if ctx.needs_input_grad[1] else None
            return ga, gb, None
    return Two


def test_multiple_outputs_non_tensor_args_and_none_grads(exec_mode):
    a, b = em.tensor([1.0, 2.0], requires_grad=True), em.tensor([3.0, -4.0])
    ta, tb = torch.tensor([1.0, 2.0], requires_grad=True), torch.tensor([3.0, -4.0])
    p, i = _two(em).apply(a, b, scale=2.0)
    tp, ti = _two(torch).apply(ta, tb, scale=2.0)
    assert not i.requires_grad and int(i) == int(ti)
    (p.sum() * 3).backward()
    (tp.sum() * 3).backward()
    np.testing.assert_allclose(a.grad.numpy(), ta.grad.numpy())
    assert b.grad is None


def test_two_outputs_each_get_their_gradient():
    class Split(em.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2, x * 3

        @staticmethod
        def backward(ctx, g1, g2):
            return g1 * 2 + g2 * 3

    x = em.tensor([1.0, 2.0], requires_grad=True)
    u, v = Split.apply(x)
    assert u.grad_fn.name() == "SplitBackward"
    (u * 10 + v).sum().backward()
    assert x.grad.tolist() == [23.0, 23.0]
    # an output without a gradient gets zeros (materialised) by default
    x.grad = None
    u, v = Split.apply(x)
    u.sum().backward()
    assert x.grad.tolist() == [2.0, 2.0]


def test_set_materialize_grads_false_gives_none():
    seen = []

    class F(em.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            ctx.set_materialize_grads(False)
            return x + 1, x + 2

        @staticmethod
        def backward(ctx, g1, g2):
            seen.append(g2)
            return g1

    x = em.tensor([1.0], requires_grad=True)
    F.apply(x)[0].sum().backward()
    assert seen == [None] and x.grad.tolist() == [1.0]


def test_mark_non_differentiable():
    class F(em.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            s = x.sort()[0]
            ctx.mark_non_differentiable(s)
            return x * 2, s

        @staticmethod
        def backward(ctx, g, gs):
            return g * 2

    x = em.tensor([2.0, 1.0], requires_grad=True)
    y, s = F.apply(x)
    assert y.requires_grad and not s.requires_grad
    y.sum().backward()
    assert x.grad.tolist() == [2.0, 2.0]


def test_input_returned_as_is_keeps_its_own_record():
    class Ident(em.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x

        @staticmethod
        def backward(ctx, g):
            return g * 5

    x = em.tensor([1.0, 2.0], requires_grad=True)
    y = Ident.apply(x)
    assert y is not x and x.is_leaf and y.grad_fn.name() == "IdentBackward"
    y.sum().backward()
    assert x.grad.tolist() == [5.0, 5.0]


def test_errors_as_torch():
    class Wrong(em.autograd.Function):
        @staticmethod
        def forward(ctx, x, y):
            return x * y

        @staticmethod
        def backward(ctx, g):
            return g

    x = em.ones(2, 3, requires_grad=True)
    with pytest.raises(RuntimeError, match=r"function WrongBackward returned an incorrect "
                       r"number of gradients \(expected 2, got 1\)"):
        Wrong.apply(x, 2.0).sum().backward()

    class GradForNumber(em.autograd.Function):
        @staticmethod
        def forward(ctx, x, k):
            return x * k

        @staticmethod
        def backward(ctx, g):
            return g, g

    with pytest.raises(RuntimeError, match="returned a gradient different than None at "
                       "position 2, but the corresponding forward input was not a Variable"):
        GradForNumber.apply(x, 2.0).sum().backward()

    class BadShape(em.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x * 2

        @staticmethod
        def backward(ctx, g):
            return em.ones(4)

    with pytest.raises(RuntimeError, match=r"Function BadShapeBackward returned an invalid "
                       r"gradient at index 0 - got \[4\] but expected shape compatible with "
                       r"\[2, 3\]"):
        BadShape.apply(x).sum().backward()


def test_broadcastable_gradient_is_summed():
    class F(em.autograd.Function):
        @staticmethod
        def forward(ctx, x):
            return x.sum()

        @staticmethod
        def backward(ctx, g):
            return g * em.ones(4, 3)  # sums to x's shape (1, 3), as torch's sum_to

    x = em.ones(1, 3, requires_grad=True)
    F.apply(x).backward()
    assert x.grad.tolist() == [[4.0, 4.0, 4.0]]


def test_saved_tensor_modified_in_place_raises():
    EmExp, _ = _pair("E")
    x = em.tensor([1.0, 2.0], requires_grad=True)
    h = x * 1
    y = EmExp.apply(h, 1.0)
    h.add_(1)
    with pytest.raises(RuntimeError, match="modified by an inplace operation"):
        y.sum().backward()


def test_second_backward_without_retain_graph_raises():
    EmExp, _ = _pair("E")
    x = em.tensor([1.0, 2.0], requires_grad=True)
    y = EmExp.apply(x, 1.0).sum()
    y.backward(retain_graph=True)
    y.backward()
    np.testing.assert_allclose(x.grad.numpy(), 2 * np.exp([1.0, 2.0]), rtol=1e-6)
    with pytest.raises(RuntimeError, match="backward through the graph a second time"):
        y.backward()


def test_no_grad_inputs_give_plain_result():
    EmExp, _ = _pair("E")
    y = EmExp.apply(em.tensor([1.0]), 1.0)
    assert not y.requires_grad and y.grad_fn is None


def test_function_inside_compile_traces():
    EmExp, _ = _pair("E")

    @em.compile(fullgraph=True)
    def step(x):
        loss = EmExp.apply(x, 2.0).sum()
        loss.backward()
        return loss.detach()

    for v in (1.0, 2.0, 3.0):
        x = em.tensor([v, 0.5], requires_grad=True)
        step(x)
        np.testing.assert_allclose(x.grad.numpy(), 2 * np.exp([v, 0.5]), rtol=1e-6)
    assert step.traces == 1  # traced once: the replays run the recorded backward


# ---------------------------------------------------------------------------
# hooks

def _hook_run(lib):
    x = lib.tensor([1.0, -2.0, 3.0], requires_grad=True)
    calls = []
    y = x * 2
    y.register_hook(lambda g: calls.append(("y", g.tolist())) or g * 10)
    y.retain_grad()
    hx = x.register_hook(lambda g: calls.append(("x", g.tolist())) or g + 1)
    (y * y).sum().backward()
    first = (x.grad.tolist(), y.grad.tolist())
    hx.remove()
    x.grad = None
    (x * 3).sum().backward()
    return calls, first, x.grad.tolist()


def test_hooks_match_torch(exec_mode):
    assert _hook_run(em) == _hook_run(torch)


def test_hook_returning_none_observes_only():
    x = em.tensor([1.0, 2.0], requires_grad=True)
    seen = []
    x.register_hook(seen.append)
    (x * 4).sum().backward()
    assert seen[0].tolist() == [4.0, 4.0] and x.grad.tolist() == [4.0, 4.0]


def test_hook_errors():
    with pytest.raises(RuntimeError, match="doesn't require gradient"):
        em.ones(2).register_hook(lambda g: g)
    x = em.ones(2, requires_grad=True)
    x.register_hook(lambda g: em.ones(3))
    with pytest.raises(RuntimeError, match="changed the size"):
        (x * 2).sum().backward()


def test_hooks_in_a_training_loop_run_every_step():
    # backward plans replay a pass without Python: a hooked pass must not take one
    w = em.tensor([1.0, 2.0], requires_grad=True)
    count = []
    w.register_hook(lambda g: count.append(1) or g * 0.5)
    for _ in range(4):
        w.grad = None
        (w * w).sum().backward()
    assert len(count) == 4 and w.grad.tolist() == [1.0, 2.0]


def test_autograd_is_a_module():
    import importlib
    mod = importlib.import_module("ember.autograd")
    assert mod is em.autograd
    assert em.autograd.grad is not None and em.autograd.backward is not None
    x = em.tensor([2.0], requires_grad=True)
    assert em.autograd.grad((x * x).sum(), x)[0].tolist() == [4.0]


def test_hooks_run_in_autograd_grad_as_torch():
    def run(lib):
        x = lib.tensor([1.0, 2.0], requires_grad=True)
        x.register_hook(lambda g: g * 10)
        y = x * 1
        y.register_hook(lambda g: g + 1)
        return [g.tolist() for g in lib.autograd.grad((y * 2).sum(), (x, y))]
    assert run(em) == run(torch)


def test_setup_context_style_matches_torch():
    def make(lib):
        class Cube(lib.autograd.Function):
            @staticmethod
            def forward(x):
                return x ** 3

            @staticmethod
            def setup_context(ctx, inputs, output):
                ctx.save_for_backward(inputs[0])

            @staticmethod
            def backward(ctx, g):
                x, = ctx.saved_tensors
                return 3 * x * x * g
        return Cube
    x, tx = em.tensor([1.0, -2.0], requires_grad=True), torch.tensor([1.0, -2.0],
                                                                      requires_grad=True)
    make(em).apply(x).sum().backward()
    make(torch).apply(tx).sum().backward()
    assert x.grad.tolist() == tx.grad.tolist()


def test_hook_inside_compile_is_part_of_the_program():
    w = em.tensor([1.0, 2.0], requires_grad=True)
    w.register_hook(lambda g: g * 3)

    @em.compile(fullgraph=True)
    def step(x):
        (w * x).sum().backward()

    for i in range(3):
        w.grad = None
        step(em.tensor([1.0, float(i)]))
        assert w.grad.tolist() == [3.0, 3.0 * i]


def test_second_backward_without_saved_tensors_works_as_torch():
    def make(lib):
        class Double(lib.autograd.Function):
            @staticmethod
            def forward(ctx, x):
                return x * 2

            @staticmethod
            def backward(ctx, g):
                return g * 2
        return Double
    for lib in (em, torch):
        x = lib.tensor([1.0, 2.0], requires_grad=True)
        y = make(lib).apply(x).sum()
        for _ in range(3):
            y.backward()
        assert x.grad.tolist() == [6.0, 6.0]
