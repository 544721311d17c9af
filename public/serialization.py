"""`em.save` / `em.load`: tensors and containers of them in a file that runs no code.

The format (version 1) is a NumPy `.npz`, i.e. a zip archive, holding:

- `manifest.json`: `{"format": "ember", "version": 1, "storages": [...], "root": ...}`.
  Each storage is `{"key": "s0", "dtype": "float32", "numel": 6, "device": "cpu"}` (the
  device it was saved from; a file without one was saved from the CPU); `root` is the saved
  object, encoded as tagged JSON values:
  `{"t": "none"}`, `{"t": "bool" | "int" | "str", "v": ...}`, `{"t": "float", "v":
  repr(x)}` (so inf and nan survive), `{"t": "list" | "tuple", "items": [...]}`,
  `{"t": "dict" | "odict", "items": [[key, value], ...]}` (keys encoded as values),
  `{"t": "dtype", "v": "float32"}`, `{"t": "size", "items": [...]}`, and a tensor
  `{"t": "tensor", "storage": 0, "dtype": "float32", "shape": [...], "stride": [...],
  "offset": 0, "requires_grad": false}` (`"cls": "Parameter"` for an
  `em.nn.Parameter`).
- `s0.npy`, `s1.npy`, ...: each storage's flat values, written with NumPy's `.npy`
  format and read with `allow_pickle=False`. bfloat16 is stored as its 16 bits
  (`uint16`, the upper half of the float32 bit pattern).

Tensors that are views of one storage are saved as one storage, so after `load`
they are views of one storage again (a write through one is seen by the other), as
PyTorch preserves.
"""

from __future__ import annotations

import io
import json
import os
import zipfile
from collections import OrderedDict

import numpy as np

from .ir import dtypes as dt
from .ir.view import View
from .nn.parameter import Parameter
from .tracer.device import check_device
from .tracer.storage import Storage, realize_storages
from .tracer.tensor import Size, Tensor, _new

__all__ = ["load", "save"]

FORMAT = "ember"
VERSION = 1
_MANIFEST = "manifest.json"


class _Writer:
    """Encodes an object into the manifest's tagged JSON, collecting storages."""

    def __init__(self):
        self.storages: list[Storage] = []
        self.index: dict[int, int] = {}

    def encode(self, obj, where: str):
        if obj is None:
            return {"t": "none"}
        if isinstance(obj, bool):
            return {"t": "bool", "v": obj}
        if isinstance(obj, (int, np.integer)):
            return {"t": "int", "v": int(obj)}
        if isinstance(obj, (float, np.floating)):
            return {"t": "float", "v": repr(float(obj))}
        if isinstance(obj, str):
            return {"t": "str", "v": obj}
        if isinstance(obj, Tensor):
            return self.tensor(obj)
        if isinstance(obj, dt.DType):
            return {"t": "dtype", "v": obj.name}
        if isinstance(obj, Size):
            return {"t": "size", "items": [int(s) for s in obj]}
        if isinstance(obj, (list, tuple)) and type(obj) in (list, tuple):
            items = [self.encode(x, f"{where}[{i}]") for i, x in enumerate(obj)]
            return {"t": type(obj).__name__, "items": items}
        if isinstance(obj, dict) and type(obj) in (dict, OrderedDict):
            items = [[self.encode(k, f"{where} key {k!r}"), self.encode(v, f"{where}[{k!r}]")]
                     for k, v in obj.items()]
            return {"t": "odict" if type(obj) is OrderedDict else "dict", "items": items}
        raise TypeError(f"em.save cannot save an object of type {type(obj).__name__} "
                        f"(at {where}): it saves tensors, dtypes, None, bools, ints, floats, "
                        "strings, and lists, tuples and dicts of them")

    def tensor(self, t: Tensor) -> dict:
        st = t._storage
        k = self.index.get(id(st))
        if k is None:
            k = self.index[id(st)] = len(self.storages)
            self.storages.append(st)
        v = t._view
        out = {"t": "tensor", "storage": k, "dtype": t.dtype.name, "shape": list(v.shape),
               "stride": list(v.strides), "offset": v.offset,
               "requires_grad": bool(t._requires_grad)}
        if isinstance(t, Parameter):
            out["cls"] = "Parameter"
        return out


def _bits(st: Storage) -> np.ndarray:
    """A storage's flat values as saved (bfloat16 as its 16 bits)."""
    a = np.ascontiguousarray(st.array().reshape(-1))
    if st.dtype is dt.bfloat16:
        return (a.astype(np.float32).view(np.uint32) >> 16).astype(np.uint16)
    return a


def save(obj, f) -> None:
    """Save `obj` (tensors, and dicts, lists and tuples of them, numbers, strings, None:
    a model's or an optimizer's state dict) to `f`, a path or a writable binary file.

    The file is a NumPy `.npz` (zip) archive with a JSON manifest; loading it runs no
    code (see the module docstring of ember.tracer.serialization for the format). Views
    of one storage stay views of one storage after `em.load`. Any other object raises
    TypeError naming it, before anything is written.

    >>> import io
    >>> buf = io.BytesIO()
    >>> em.save({"w": em.tensor([1.0, 2.0]), "step": 3}, buf)
    >>> _ = buf.seek(0)
    >>> em.load(buf)
    {'w': tensor([1., 2.]), 'step': 3}
    """
    w = _Writer()
    root = w.encode(obj, "the object")
    realize_storages([st for st in w.storages if not st.is_realized])
    arrays = [_bits(st) for st in w.storages]
    manifest = {"format": FORMAT, "version": VERSION,
                "storages": [{"key": f"s{i}", "dtype": st.dtype.name, "numel": st.numel,
                              "device": st.device} for i, st in enumerate(w.storages)],
                "root": root}
    if isinstance(f, (str, os.PathLike)):
        with open(f, "wb") as fh:
            _write(fh, manifest, arrays)
    else:
        _write(f, manifest, arrays)


def _write(fh, manifest: dict, arrays) -> None:
    with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_STORED) as z:
        z.writestr(_MANIFEST, json.dumps(manifest))
        for i, a in enumerate(arrays):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, a, allow_pickle=False)
            z.writestr(f"s{i}.npy", buf.getvalue())


def load(f, map_location=None, weights_only: bool = True, **kwargs):
    """Load what `em.save` wrote to `f` (a path or a readable binary file).

    Nothing in the file is executed (`weights_only` is accepted for PyTorch's API and
    always holds). Tensors come back on the device they were saved from, or as
    `map_location` says: a device ("cpu", "cuda:0"), or a dict from saved device to
    device ({"cuda:0": "cpu"}). A tensor saved from a GPU on a machine without one
    needs `map_location="cpu"`, as in torch.
    A file that is not one `em.save` wrote, a damaged one, or one of a newer format
    version raises RuntimeError saying so.
    """
    if callable(map_location):
        raise TypeError("em.load: map_location may be a device or a dict of devices, not a "
                        "function")
    if map_location is not None and not isinstance(map_location, dict):
        check_device(map_location)
    name = f if isinstance(f, (str, os.PathLike)) else getattr(f, "name", "the file")
    try:
        z = zipfile.ZipFile(f, "r")
    except (zipfile.BadZipFile, OSError, EOFError) as e:
        if isinstance(e, FileNotFoundError):
            raise
        raise RuntimeError(f"em.load: {name} is not a file em.save wrote (not a zip "
                           f"archive: {e})") from None
    with z:
        manifest = _manifest(z, name)
        arrays = [_storage_array(z, s, name) for s in manifest["storages"]]
        storages = [Storage.from_array(a, dt.to_dtype(s["dtype"]),
                                       _device(s.get("device", "cpu"), map_location))
                    for a, s in zip(arrays, manifest["storages"])]
        try:
            return _Reader(storages, name).decode(manifest["root"])
        except (KeyError, TypeError, ValueError, IndexError) as e:
            raise RuntimeError(f"em.load: {name} has a damaged manifest ({type(e).__name__}: "
                               f"{e})") from None


def _device(saved: str, map_location) -> str:
    """Where a storage saved from device `saved` is loaded (see `load`)."""
    if isinstance(map_location, dict):
        target = map_location.get(saved, saved)
    else:
        target = saved if map_location is None else map_location
    try:
        return check_device(target)
    except RuntimeError as e:
        raise RuntimeError(f"em.load: a tensor was saved from {saved}, which cannot be used "
                           f"here ({e}); pass map_location='cpu'") from None


def _manifest(z: zipfile.ZipFile, name) -> dict:
    try:
        manifest = json.loads(z.read(_MANIFEST))
    except KeyError:
        raise RuntimeError(f"em.load: {name} is not a file em.save wrote (no {_MANIFEST}; "
                           "a file torch.save wrote is read by torch.load)") from None
    except (ValueError, zipfile.BadZipFile, OSError) as e:
        raise RuntimeError(f"em.load: {name} is damaged ({e})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise RuntimeError(f"em.load: {name} is not a file em.save wrote (its manifest "
                           "names another format)")
    version = manifest.get("version")
    if not isinstance(version, int) or version > VERSION or version < 1:
        raise RuntimeError(f"em.load: {name} was written in format version {version}; this "
                           f"ember reads versions 1 to {VERSION} (upgrade ember to load it)")
    return manifest


def _storage_array(z: zipfile.ZipFile, spec: dict, name) -> np.ndarray:
    try:
        with z.open(spec["key"] + ".npy") as fh:
            a = np.lib.format.read_array(fh, allow_pickle=False)
        dtype = dt.to_dtype(spec["dtype"])
    except (KeyError, ValueError, TypeError, zipfile.BadZipFile, OSError, EOFError) as e:
        raise RuntimeError(f"em.load: {name} is damaged (storage {spec.get('key')!r}: "
                           f"{e})") from None
    if dtype is dt.bfloat16:
        if a.dtype != np.uint16:
            raise RuntimeError(f"em.load: {name} is damaged (a bfloat16 storage holds {a.dtype})")
        a = (a.astype(np.uint32) << 16).view(np.float32)
    elif a.dtype != dtype.np:
        raise RuntimeError(f"em.load: {name} is damaged (storage {spec['key']!r} holds "
                           f"{a.dtype}, its manifest says {spec['dtype']})")
    if a.ndim != 1 or a.size != spec["numel"]:
        raise RuntimeError(f"em.load: {name} is damaged (storage {spec['key']!r} has "
                           f"{a.size} elements, its manifest says {spec['numel']})")
    return np.array(a)  # NOTE: owned and writable, never a view of the archive's bytes


class _Reader:
    def __init__(self, storages, name):
        self.storages = storages
        self.name = name
        self.bases: dict[int, Tensor] = {}

    def decode(self, e):
        t = e["t"]
        if t == "none":
            return None
        if t in ("bool", "int", "str"):
            return {"bool": bool, "int": int, "str": str}[t](e["v"])
        if t == "float":
            return float(e["v"])
        if t == "list":
            return [self.decode(x) for x in e["items"]]
        if t == "tuple":
            return tuple(self.decode(x) for x in e["items"])
        if t == "size":
            return Size(int(x) for x in e["items"])
        if t in ("dict", "odict"):
            pairs = [(self.decode(k), self.decode(v)) for k, v in e["items"]]
            return OrderedDict(pairs) if t == "odict" else dict(pairs)
        if t == "dtype":
            return dt.to_dtype(e["v"])
        if t == "tensor":
            return self.tensor(e)
        raise ValueError(f"unknown entry type {t!r}")

    def tensor(self, e) -> Tensor:
        st = self.storages[e["storage"]]
        dtype = dt.to_dtype(e["dtype"])
        if dtype is not st.dtype:
            raise ValueError(f"a {dtype.name} tensor on a {st.dtype.name} storage")
        view = View(tuple(e["shape"]), tuple(e["stride"]), int(e["offset"]))
        if view.numel and (view.offset < 0 or view.offset + sum(
                (n - 1) * s for n, s in zip(view.shape, view.strides)) >= st.numel):
            raise ValueError("a tensor reads outside its storage")
        t = _new(st, view, dtype, None)
        if e.get("requires_grad") and dtype.is_floating_point:
            t._requires_grad = True
        if e.get("cls") == "Parameter":
            t = Parameter(t, requires_grad=bool(e.get("requires_grad")))
        return t
