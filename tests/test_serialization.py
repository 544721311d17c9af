"""em.save / em.load: round trips, shared storages, the format, and its errors."""

import io
import json
import math
import zipfile
from collections import OrderedDict

import numpy as np
import pytest

import ember as em


def _round_trip(obj):
    buf = io.BytesIO()
    em.save(obj, buf)
    buf.seek(0)
    return em.load(buf)


def _same(a, b):
    assert type(a) is type(b)
    if isinstance(a, em.Tensor):
        assert a.dtype is b.dtype and a.shape == b.shape and a.requires_grad == b.requires_grad
        assert a.stride() == b.stride()
        np.testing.assert_array_equal(np.asarray(a.detach().float() if a.dtype is em.bfloat16
                                                 else a.detach()),
                                      np.asarray(b.detach().float() if b.dtype is em.bfloat16
                                                 else b.detach()))
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _same(x, y)
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for k in a:
            _same(a[k], b[k])
    elif isinstance(a, float) and math.isnan(a):
        assert math.isnan(b)
    else:
        assert a == b


@pytest.mark.parametrize("dtype", [em.float32, em.float64, em.float16, em.bfloat16, em.int64,
                                   em.int32, em.int16, em.int8, em.uint8, em.bool])
def test_every_dtype_round_trips(dtype):
    t = (em.arange(12) % 5 - 1).reshape(3, 4).to(dtype)
    _same(t, _round_trip(t))


def test_nested_containers_and_scalars():
    obj = {"model": OrderedDict(w=em.randn(3, 2), b=em.zeros(2)), "step": 7, "lr": 1e-3,
           "name": "adam", "nan": float("nan"), "inf": -math.inf, "flag": True, "none": None,
           "betas": (0.9, 0.999), "groups": [{"params": [0, 1], "lr": 0.1}],
           "state": {0: {"exp_avg": em.ones(3, 2)}, 1: {}}, "dtype": em.float16,
           "size": em.Size([2, 3]), "scalar": em.tensor(2.5)}
    _same(obj, _round_trip(obj))


def test_lazy_pending_and_requires_grad_tensors():
    w = em.ones(3, requires_grad=True)
    y = w * 2 + 1  # pending, with a record: saved as its value, a leaf requiring grad
    out = _round_trip({"w": w, "y": y})
    assert out["w"].requires_grad and out["w"].is_leaf
    assert out["y"].requires_grad and out["y"].is_leaf
    assert out["y"].tolist() == [3.0, 3.0, 3.0]


def test_views_of_one_storage_stay_one_storage():
    x = em.arange(12.0).reshape(3, 4)
    col, row = x[:, 1], x[2]
    out = _round_trip([x, col, row, x.t()])
    lx, lcol, lrow, lt = out
    assert lcol.stride() == (4,) and lcol.storage_offset() == 1
    assert lt.stride() == (1, 4)
    lx[2, 1] = -5.0
    assert lcol.tolist() == [1.0, 5.0, -5.0] and lrow[1].item() == -5.0
    assert lt[1, 2].item() == -5.0
    assert lcol.data_ptr() == lx.data_ptr() + 4


def test_path_and_file_object(tmp_path):
    p = tmp_path / "state.npz"
    em.save({"a": em.arange(3)}, p)
    assert em.load(p)["a"].tolist() == [0, 1, 2]
    assert em.load(str(p), map_location="cpu", weights_only=True)["a"].tolist() == [0, 1, 2]
    with open(p, "rb") as fh:
        assert em.load(fh, map_location=em.device("cpu"))["a"].tolist() == [0, 1, 2]
    # it is a NumPy .npz: NumPy reads the storages without pickle
    with np.load(p, allow_pickle=False) as z:
        assert z["s0"].tolist() == [0, 1, 2]


def test_format_is_documented_json():
    buf = io.BytesIO()
    em.save({"w": em.tensor([1.0, 2.0], dtype=em.bfloat16)}, buf)
    with zipfile.ZipFile(buf) as z:
        manifest = json.loads(z.read("manifest.json"))
        assert manifest["format"] == "ember" and manifest["version"] == 1
        assert manifest["storages"] == [{"key": "s0", "dtype": "bfloat16", "numel": 2,
                                         "device": "cpu"}]
        (k, v), = manifest["root"]["items"]
        assert k == {"t": "str", "v": "w"} and v["t"] == "tensor" and v["shape"] == [2]
        assert np.lib.format.read_array(io.BytesIO(z.read("s0.npy"))).dtype == np.uint16


def test_state_dicts_load_like_torch():
    torch = pytest.importorskip("torch")
    t = torch.nn.Linear(3, 2)
    sd = {k: em.tensor(v.detach().numpy()) for k, v in t.state_dict().items()}
    out = _round_trip(sd)
    for k, v in t.state_dict().items():
        np.testing.assert_array_equal(out[k].numpy(), v.numpy())


def test_unsavable_object_names_it_and_writes_nothing(tmp_path):
    p = tmp_path / "x.npz"
    with pytest.raises(TypeError, match=r"cannot save an object of type object "
                       r"\(at the object\['b'\]\[1\]\)"):
        em.save({"a": em.ones(1), "b": [1, object()]}, p)
    assert not p.exists()
    with pytest.raises(TypeError, match="type set"):
        em.save({1, 2}, io.BytesIO())


def test_foreign_corrupt_and_newer_files(tmp_path):
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"not a zip at all")
    with pytest.raises(RuntimeError, match="is not a file em.save wrote"):
        em.load(bad)
    np.savez(tmp_path / "plain.npz", a=np.ones(2))
    with pytest.raises(RuntimeError, match="no manifest.json"):
        em.load(tmp_path / "plain.npz")
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("manifest.json", json.dumps({"format": "ember", "version": 99,
                                                "storages": [], "root": {"t": "none"}}))
    buf.seek(0)
    with pytest.raises(RuntimeError, match="format version 99; this ember reads versions 1"):
        em.load(buf)
    # a truncated archive
    good = io.BytesIO()
    em.save(em.ones(100), good)
    with pytest.raises(RuntimeError, match="em.load"):
        em.load(io.BytesIO(good.getvalue()[:200]))


def test_pickled_objects_are_never_loaded():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("manifest.json", json.dumps({
            "format": "ember", "version": 1, "storages": [{"key": "s0", "dtype": "float32",
                                                           "numel": 1}],
            "root": {"t": "tensor", "storage": 0, "dtype": "float32", "shape": [1],
                     "stride": [1], "offset": 0}}))
        arr = io.BytesIO()
        np.lib.format.write_array(arr, np.array([object()], dtype=object), allow_pickle=True)
        z.writestr("s0.npy", arr.getvalue())
    buf.seek(0)
    with pytest.raises(RuntimeError, match="damaged"):
        em.load(buf)


def test_map_location_cuda_is_refused_clearly():
    buf = io.BytesIO()
    em.save(em.ones(1), buf)
    buf.seek(0)
    if not em.cuda.is_available():
        with pytest.raises(RuntimeError, match="no CUDA device"):
            em.load(buf, map_location="cuda")
