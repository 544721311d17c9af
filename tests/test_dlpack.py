"""DLPack exchange with NumPy and torch (zero-copy, both directions), torch.tensor(t),
and Tensor.__format__."""

import numpy as np
import pytest

import ember as em

torch = pytest.importorskip("torch")


def test_torch_from_ember_shares_memory_both_ways(exec_mode):
    t = em.arange(6.0).reshape(2, 3) * 2  # pending: realised when handed out
    tt = torch.from_dlpack(t)
    assert tt.data_ptr() == t.data_ptr() and tt.shape == (2, 3)
    y = t + 1  # built before the write, computed after it
    tt[0, 0] = 100.0
    assert t[0, 0].item() == 100.0
    if exec_mode == "lazy":
        assert y[0, 0].item() == 101.0
    t.add_(1)  # ember's in-place update is written into the shared memory
    assert tt.tolist() == [[101.0, 3.0, 5.0], [7.0, 9.0, 11.0]]


def test_ember_from_torch_shares_memory_both_ways():
    src = torch.arange(4.0)
    e = em.from_dlpack(src)
    assert e.data_ptr() == src.data_ptr() and e.dtype is em.float32
    src[1] = 50.0
    assert (e * 2).tolist() == [0.0, 100.0, 4.0, 6.0]
    e.mul_(2)
    assert src.tolist() == [0.0, 100.0, 4.0, 6.0]
    # a bare capsule (torch.utils.dlpack.to_dlpack) too
    cap = em.from_dlpack(torch.utils.dlpack.to_dlpack(src))
    assert cap.data_ptr() == src.data_ptr()


def test_numpy_both_ways():
    t = em.tensor([1, 2, 3])
    a = np.from_dlpack(t)
    assert a.dtype == np.int64 and a.ctypes.data == t.data_ptr()
    a[0] = 9
    assert t.tolist() == [9, 2, 3]
    b = np.arange(3.0)
    e = em.from_dlpack(b)
    b[2] = -1
    assert e.tolist() == [0.0, 1.0, -1.0] and e.data_ptr() == b.ctypes.data
    assert t.__dlpack_device__() == (1, 0)


def test_views_keep_their_strides():
    x = em.arange(12.0).reshape(3, 4)
    col = x[:, 1]
    tc = torch.from_dlpack(col)
    assert tc.stride() == (4,) and tc.tolist() == [1.0, 5.0, 9.0]
    tc[0] = -1.0
    assert x[0, 1].item() == -1.0


@pytest.mark.parametrize("dtype,tdtype", [(em.bool, torch.bool), (em.int64, torch.int64),
                                          (em.int32, torch.int32), (em.uint8, torch.uint8),
                                          (em.float16, torch.float16),
                                          (em.float64, torch.float64)])
def test_torch_tensor_and_as_tensor_of_ember(dtype, tdtype):
    t = em.tensor([[1, 0], [2, 3]], dtype=dtype)
    for f in (torch.tensor, torch.as_tensor):
        r = f(t)
        assert r.dtype == tdtype and r.tolist() == t.tolist()
    assert torch.tensor(t).data_ptr() != t.data_ptr()  # torch.tensor copies
    assert torch.as_tensor(t).data_ptr() == t.data_ptr()  # as_tensor shares


def test_torch_tensor_of_parameter_and_scalar():
    w = em.tensor([1.0, 2.0], requires_grad=True)
    assert torch.tensor(w).tolist() == [1.0, 2.0]
    assert torch.tensor(em.tensor(3.5)).item() == 3.5


def test_unsupported_exchanges_raise_clearly():
    with pytest.raises(BufferError, match="bfloat16"):
        torch.from_dlpack(em.ones(2, dtype=em.bfloat16))
    with pytest.raises(BufferError, match="em.from_dlpack cannot share"):
        em.from_dlpack(torch.ones(2, dtype=torch.bfloat16))
    with pytest.raises(TypeError, match="expects an object with __dlpack__"):
        em.from_dlpack([1, 2])
    x = em.ones(2)
    assert em.from_dlpack(x) is x


def test_format_like_torch():
    loss = em.tensor(1.234567)
    assert f"{loss:.4f}" == f"{torch.tensor(1.234567):.4f}" == "1.2346"
    assert f"{em.tensor(3):>4}" == "   3"
    assert f"{em.tensor([1.0, 2.0])}" == str(em.tensor([1.0, 2.0]))
    with pytest.raises(TypeError):
        f"{em.tensor([1.0]):.2f}"
    with pytest.raises(TypeError):
        f"{torch.tensor([1.0]):.2f}"
