"""Helpers of the em.nn tests: run one computation in torch and in ember and compare
values and gradients."""

import numpy as np

import ember as em

torch = __import__("pytest").importorskip("torch")

TOL = {np.float32: {"rtol": 1e-5, "atol": 1e-6}, np.float64: {"rtol": 1e-10, "atol": 1e-12}}
EM_DTYPE = {np.float32: em.float32, np.float64: em.float64}


def state_to_ember(tmod) -> dict:
    """torch's state dict as NumPy arrays (what load_state_dict takes)."""
    return {k: v.detach().numpy().copy() for k, v in tmod.state_dict().items()}


def close(a, b, dtype, scale=1.0, what=""):
    tol = TOL[dtype]
    a = a.detach().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
    np.testing.assert_allclose(np.asarray(b), a, rtol=tol["rtol"] * scale,
                               atol=tol["atol"] * scale, err_msg=what)


def compare_module(tmod, emod, inputs, dtype=np.float32, scale=1.0, grad_inputs=True,
                   seed=0):
    """Load torch's state into ember's module, run both on `inputs` (NumPy arrays; float
    ones require grad), compare the outputs, the input gradients and the parameter
    gradients of sum(out * c) for a fixed random cotangent c."""
    emod.load_state_dict(state_to_ember(tmod))
    t_in = [torch.tensor(a, requires_grad=grad_inputs and a.dtype.kind == "f") for a in inputs]
    e_in = [em.tensor(a, requires_grad=grad_inputs and a.dtype.kind == "f") for a in inputs]
    t_out = tmod(*t_in)
    e_out = emod(*e_in)
    t_out = t_out[0] if isinstance(t_out, tuple) else t_out
    e_out = e_out[0] if isinstance(e_out, tuple) else e_out
    close(t_out, e_out.detach().numpy(), dtype, scale, "forward")
    rng = np.random.default_rng(seed)
    c = rng.standard_normal(tuple(t_out.shape)).astype(t_out.detach().numpy().dtype)
    (t_out * torch.tensor(c)).sum().backward()
    (e_out * em.tensor(c)).sum().backward()
    for i, (t, e) in enumerate(zip(t_in, e_in)):
        if t.requires_grad:
            close(t.grad, e.grad.numpy(), dtype, scale, f"grad of input {i}")
    t_params = dict(tmod.named_parameters())
    for name, p in emod.named_parameters():
        tg = t_params[name].grad
        if tg is None:
            assert p.grad is None or not np.any(p.grad.numpy()), name
        else:
            close(tg, p.grad.numpy(), dtype, scale, f"grad of {name}")
    t_bufs = dict(tmod.named_buffers())
    for name, b in emod.named_buffers():
        close(t_bufs[name], b.numpy(), dtype, scale, f"buffer {name}")
    return t_out, e_out
