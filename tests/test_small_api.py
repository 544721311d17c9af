"""finfo/iinfo, is_tensor, is_floating_point, Tensor.type, the legacy em.Tensor(...)
constructor, the default device and randint(high, size), against torch."""

import pytest

import ember as em

torch = pytest.importorskip("torch")

PAIRS = [(em.float32, torch.float32), (em.float64, torch.float64),
         (em.float16, torch.float16), (em.bfloat16, torch.bfloat16)]
INTS = [(em.int64, torch.int64), (em.int32, torch.int32), (em.int16, torch.int16),
        (em.int8, torch.int8), (em.uint8, torch.uint8)]


@pytest.mark.parametrize("d,td", PAIRS)
def test_finfo_matches_torch(d, td):
    a, b = em.finfo(d), torch.finfo(td)
    for k in ("bits", "eps", "max", "min", "tiny", "smallest_normal", "resolution", "dtype"):
        assert getattr(a, k) == getattr(b, k), k
    assert repr(a) == repr(b)


@pytest.mark.parametrize("d,td", INTS)
def test_iinfo_matches_torch(d, td):
    a, b = em.iinfo(d), torch.iinfo(td)
    assert (a.bits, a.max, a.min, a.dtype) == (b.bits, b.max, b.min, b.dtype)


def test_info_errors_and_default():
    assert em.finfo().dtype == "float32"
    with pytest.raises(TypeError, match="requires a floating point input type"):
        em.finfo(em.int32)
    with pytest.raises(TypeError, match="requires an integer input type"):
        em.iinfo(em.float32)


def test_is_tensor_and_is_floating_point():
    assert em.is_tensor(em.ones(1)) and not em.is_tensor(1.0)
    assert em.is_floating_point(em.ones(1, dtype=em.bfloat16))
    assert not em.is_floating_point(em.ones(1, dtype=em.int8))
    with pytest.raises(TypeError, match="must be Tensor"):
        em.is_floating_point([1.0])


@pytest.mark.parametrize("d,td", PAIRS + INTS + [(em.bool, torch.bool)])
def test_type_strings_match_torch(d, td):
    t, tt = em.zeros(2, dtype=d), torch.zeros(2, dtype=td)
    assert t.type() == tt.type()
    for target in ("torch.LongTensor", "torch.DoubleTensor", em.float16):
        r = t.type(target)
        assert r.dtype is (target if isinstance(target, em.dtype) else
                           {"torch.LongTensor": em.int64, "torch.DoubleTensor": em.float64}[target])
    assert t.type(d) is t
    assert t.type("ember.IntTensor").dtype is em.int32


def test_type_errors():
    with pytest.raises(ValueError, match="invalid type: 'torch.NoSuchTensor'"):
        em.ones(1).type("torch.NoSuchTensor")
    if not em.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA"):
            em.ones(1).type("torch.cuda.FloatTensor")


def test_legacy_constructor_matches_torch():
    for args in [([1, 2, 3],), ([[1.5, 2], [3, 4]],), (2, 3), (), (em.Size([2, 1]),)]:
        targs = tuple(torch.Size(a) if isinstance(a, em.Size) else a for a in args)
        t, tt = em.Tensor(*args), torch.Tensor(*targs)
        assert t.dtype is em.float32 and tuple(t.shape) == tuple(tt.shape)
        assert isinstance(t, em.Tensor)
        if args and not isinstance(args[0], (int, em.Size)):
            assert t.tolist() == tt.tolist()
    x = em.ones(2)
    assert em.Tensor(x).data_ptr() == x.data_ptr()
    with pytest.raises(TypeError, match="expected Float"):
        em.Tensor(em.arange(2))


def test_default_device():
    assert em.get_default_device() == em.device("cpu")
    em.set_default_device("cpu")
    assert em.ones(1).device == em.device("cpu")
    if not em.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA device is available"):
            em.set_default_device("cuda")
    assert em.get_default_device() == em.device("cpu")


def test_randint_high_size_form():
    em.manual_seed(0)
    t = em.randint(5, (200,))
    assert t.dtype is em.int64 and t.shape == (200,)
    assert 0 <= t.min().item() and t.max().item() <= 4 and len(set(t.tolist())) == 5
    u = em.randint(3, 6, (50,))
    assert 3 <= u.min().item() and u.max().item() <= 5
