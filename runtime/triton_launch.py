"""Running Triton programs: loading their modules, launching kernels on torch tensors.

torch is used here only to hand memory to Triton's kernels and launch them: a
NumPy array becomes a torch tensor over the same memory (`torch.from_numpy`, no
copy), the kernel writes into arrays the program allocated. Nothing is computed
by torch.

On a CPU the kernels run through Triton's interpreter, which needs
`TRITON_INTERPRET=1` in the environment before triton is imported; `available()`
says whether a program can run and why not.

A generated module is written to a file and imported (Triton's JIT reads a
kernel's source with `inspect.getsource` when it compiles for a GPU, which a
module exec'd from a string has not).
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import sys
import tempfile
import warnings
from typing import TYPE_CHECKING

import numpy as np

from ..ir import dtypes as dt
from ..ir.ops import Op
from . import devices, philox, special
from .buffers import host
from .interpreter import IMPL, _strided

if TYPE_CHECKING:
    from ..codegen.kernel import Kernel

__all__ = ["Launch", "available", "compile_for_target", "load_module", "resource_usage",
           "target_tag"]

_MODULES: dict[str, object] = {}
_FOLDER: list[str] = []


def available() -> str | None:
    """None when Triton programs can run here; otherwise what is missing."""
    try:
        import torch  # noqa: F401
        import triton  # noqa: F401
    except ImportError as e:
        return f"the Triton back end needs triton and torch installed ({e.name} is missing)"
    if os.environ.get("TRITON_INTERPRET") == "1":
        return None
    import torch
    if torch.cuda.is_available():
        return None
    return ("the Triton back end needs a CUDA GPU, or TRITON_INTERPRET=1 set before the "
            "first import of triton to run its kernels on the CPU through Triton's "
            "interpreter")


def target_tag() -> str:
    """What a generated Triton program's kernels run on, for the disk cache's key:
    Triton's version and "interpreter" (TRITON_INTERPRET=1) or the current GPU's compute
    capability ("sm90")."""
    import triton
    if os.environ.get("TRITON_INTERPRET") == "1":
        where = "interpreter"
    else:
        import torch
        major, minor = torch.cuda.get_device_capability()
        where = f"sm{major}{minor}"
    return f"triton{triton.__version__}-{where}"


_NUMPY_LIBDEVICE = {"exp": np.exp, "log": np.log, "sin": np.sin, "cos": np.cos,
                    "tan": np.tan, "tanh": np.tanh, "log1p": np.log1p, "expm1": np.expm1,
                    "exp2": np.exp2, "floor": np.floor, "ceil": np.ceil, "trunc": np.trunc,
                    "rint": np.rint, "sqrt": np.sqrt, "pow": np.power, "fmod": np.fmod,
                    "erf": special.erf, "erfc": special.erfc, "erfinv": special.erfinv}


class InterpretedLibdevice:
    """libdevice's functions for kernels run by Triton's interpreter, which does not
    patch `triton.language.extra.libdevice` (its functions are GPU-only stubs there):
    each computes with NumPy's function of the same name on the operands' values, as
    the interpreter does for `tl.exp` and the other `tl.math` functions."""

    def __getattr__(self, name: str):
        fn = _NUMPY_LIBDEVICE.get(name)
        if fn is None:
            raise AttributeError(f"libdevice.{name} has no interpreted form")

        def apply(*args):
            import triton.language as tl
            from triton.runtime.interpreter import TensorHandle
            first = next(a for a in args if isinstance(a, tl.core.tensor))
            data = [a.handle.data if isinstance(a, tl.core.tensor) else a for a in args]
            with np.errstate(all="ignore"):
                out = fn(*data).astype(first.handle.data.dtype, copy=False)
            return tl.core.tensor(TensorHandle(out, first.handle.dtype.scalar), first.type)
        return apply


def libdevice():
    """The libdevice namespace generated kernels call: Triton's, or on the CPU (under
    TRITON_INTERPRET=1) `InterpretedLibdevice`."""
    if os.environ.get("TRITON_INTERPRET") == "1":
        return InterpretedLibdevice()
    from triton.language.extra import libdevice as real
    return real


def _folder() -> str:
    if not _FOLDER:
        _FOLDER.append(tempfile.mkdtemp(prefix="ember-triton-"))
    return _FOLDER[0]


def load_module(source: str, interpret: bool | None = None):
    """The module of a generated program's source, written to a file and imported.

    `interpret`: whether its kernels run through Triton's interpreter (default: as
    TRITON_INTERPRET says); False gives kernels that compile for a GPU, which the
    lowering checks compile for a target without one."""
    if interpret is None:
        interpret = os.environ.get("TRITON_INTERPRET") == "1"
    digest = hashlib.sha256(source.encode()).hexdigest()[:24] + ("i" if interpret else "")
    module = _MODULES.get(digest)
    if module is not None:
        return module
    name = f"ember_triton_{digest}"
    path = os.path.join(_folder(), name + ".py")
    with open(path, "w") as f:
        f.write(source)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    # NOTE: Triton decides at each @triton.jit whether the kernel is interpreted
    saved = os.environ.get("TRITON_INTERPRET")
    os.environ["TRITON_INTERPRET"] = "1" if interpret else "0"
    try:
        spec.loader.exec_module(module)
    finally:
        if saved is None:
            del os.environ["TRITON_INTERPRET"]
        else:
            os.environ["TRITON_INTERPRET"] = saved
    _MODULES[digest] = module
    return module


def _input(a: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """A program input (a buffer's flat array) as a value of `shape`."""
    return a.reshape(shape)


def _root(a: np.ndarray) -> np.ndarray:
    """The array owning a's memory (the end of its chain of views)."""
    while isinstance(a.base, np.ndarray):
        a = a.base
    return a


def _tensor(a: np.ndarray, roots: dict):
    """(torch tensor over a's memory, a's strides in elements).

    NOTE: every array over one memory becomes a view of one torch tensor over the
    whole of it (`roots`), so that the kernels' arguments alias as the arrays do
    (Triton's interpreter copies each argument's storage in and out); a contiguous
    copy where torch cannot view the memory (negative strides, another dtype).
    """
    import torch
    root = _root(a)
    if any(s < 0 for s in a.strides) or any(s % a.itemsize for s in a.strides) \
            or root.dtype != a.dtype or not root.flags.c_contiguous:
        a = root = np.ascontiguousarray(a)
    strides = tuple(s // a.itemsize for s in a.strides)
    base = roots.get(id(root))
    if base is None:
        with warnings.catch_warnings():
            # NOTE: read-only inputs are only read by the kernels
            warnings.simplefilter("ignore", UserWarning)
            base = roots[id(root)] = torch.from_numpy(root.reshape(-1))
    offset = (a.__array_interface__["data"][0] - root.__array_interface__["data"][0]) \
        // a.itemsize
    return base.as_strided(a.shape or (1,), strides or (1,), offset), strides


def _rand_args(param) -> tuple[int, int, int]:
    """The Philox key words and sequence word of a random parameter (seed, sequence
    number), as 32-bit signed ints (the kernel reads their bits as uint32).

    NOTE: values in the int32 range keep one kernel signature for every seed (Triton
    types a larger int argument as int64)."""
    seed, seq = param
    return tuple(_i32(v) for v in (seed, seed >> 32, seq))


def _i32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v >= 1 << 31 else v


def _launch(kernel, grid, loads, stores, flat, scalars=()) -> None:
    """Launch `kernel` over `grid` with its loads (each followed by its strides in
    elements, unless read at flat offsets), its outputs, then `scalars`."""
    if any(s.size == 0 for s in stores):
        return
    args = []
    flat = set(flat)
    roots: dict = {}
    for j, a in enumerate(loads):
        a = np.asarray(a)
        if j in flat and not a.flags.c_contiguous:
            a = np.ascontiguousarray(a)  # NOTE: read at flat offsets
        t, strides = _tensor(a, roots)
        args.append(t)
        if j not in flat:
            args.extend(strides)
    args.extend(_tensor(s, roots)[0] for s in stores)
    args.extend(scalars)
    kernel[grid](*args)


class Launch:
    """One kernel's launch, prepared when its program is loaded: a call binds the
    buffers and calls the kernel, nothing else.

    Over device memory (`device=True`: the "cuda" device's programs, whose values are
    torch tensors on the GPU) the operands are handed as they are, each followed by its
    strides. Over NumPy's memory, under Triton's interpreter (TRITON_INTERPRET=1), a call
    is `_launch`: the arrays become CPU torch tensors over their memory and
    `kernel[grid]` runs them; on a GPU each operand is copied to the device and each
    output back per call (the "triton" back end on CPU tensors).

    On a GPU the compiled kernel is fixed on the first call (`kernel.warmup`, which
    compiles once: the operands' shapes, strides and alignment are part of the program's
    key); later calls go straight to the compiled kernel's launcher
    (`CompiledKernel.run`), skipping `kernel[grid]`'s binding and specialisation lookup.
    """

    __slots__ = ("args", "compiled", "device", "empty", "flat", "gpu", "grid", "kernel")

    def __init__(self, kernel, grid: tuple, flat=(), gpu: bool | None = None,
                 device: bool = False):
        self.kernel = kernel
        self.grid = tuple(grid) + (1,) * (3 - len(grid))
        self.flat = frozenset(flat)
        self.gpu = os.environ.get("TRITON_INTERPRET") != "1" if gpu is None else gpu
        self.device = device
        self.args: list | None = None  # per operand: its strides (after its pointer)
        self.compiled = None  # (launcher, function, packed metadata) on a GPU
        self.empty = False

    def __call__(self, loads, stores, scalars=()) -> None:
        if self.device:
            self._call_on_device(loads, stores, scalars)
            return
        if not self.gpu:
            _launch(self.kernel, self.grid, loads, stores, self.flat, scalars)
            return
        if self.args is None:
            self._prepare(loads, stores)
        if self.empty:
            return
        ins = [_to_device(a) for a in loads]
        outs = [_device_empty(s) for s in stores]
        args = []
        for t, strides in zip(ins, self.args):
            args.append(t)
            args.extend(strides)
        args.extend(outs)
        args.extend(scalars)  # NOTE: random numbers' seed and sequence (int32)
        self._run(args)
        for s, t in zip(stores, outs):
            s[...] = _to_host(t).reshape(s.shape)

    def _call_on_device(self, loads, stores, scalars) -> None:
        """Launch over device tensors: each load (contiguous where read at flat offsets)
        with its strides in elements, then the outputs, then `scalars`.

        NOTE: the strides are the program's (its key fixes every shape and view): read
        from the first call's operands, then only bound."""
        if self.args is None:
            self.empty = any(s.numel() == 0 for s in stores)
            self.args = [None if j in self.flat else tuple(t.stride())
                         for j, t in enumerate(loads)]
        if self.empty:
            return
        args = []
        for t, strides in zip(loads, self.args):
            if strides is None:
                args.append(t if t.is_contiguous() else t.contiguous())
            else:
                args.append(t if t.dim() else t.reshape(1))
                args.extend(strides)
        args.extend(s if s.dim() else s.reshape(1) for s in stores)
        args.extend(scalars)
        if self.gpu:
            self._run(args)
        else:
            self.kernel[self.grid](*args)

    def _run(self, args) -> None:
        """Call the compiled kernel's launcher (compiling it on the first call)."""
        if self.compiled is None:
            self._compile(args)
        run, function, meta = self.compiled
        run(self.grid[0], self.grid[1], self.grid[2], _current_stream(), function, meta,
            None, None, None, *args)

    def _prepare(self, loads, stores) -> None:
        """The launch arguments that are not buffers: each load's strides (contiguous:
        each is copied to the device as a contiguous tensor), none for flat loads."""
        self.empty = any(s.size == 0 for s in stores)
        self.args = [() if j in self.flat else _contiguous_strides(np.shape(a))
                     for j, a in enumerate(loads)]

    def _compile(self, args) -> None:
        # NOTE: no fused multiply-adds: kernels round each operation as the reference
        # interpreter does
        compiled = self.kernel.warmup(*args, grid=self.grid, enable_fp_fusion=False)
        self.compiled = (compiled.run, compiled.function, compiled.packed_metadata)


def _contiguous_strides(shape) -> tuple[int, ...]:
    out, n = [], 1
    for size in reversed(shape):
        out.append(n)
        n *= max(size, 1)
    return tuple(reversed(out))


# NOTE: the device side of a GPU launch, one function each (the tests replace them)
def _to_device(a: np.ndarray):
    import torch
    return torch.from_numpy(np.ascontiguousarray(a)).to("cuda")


def _device_empty(a: np.ndarray):
    import torch
    return torch.empty(a.shape, dtype=torch.from_numpy(a[:0].reshape(-1)).dtype, device="cuda")


def _to_host(t) -> np.ndarray:
    return t.cpu().numpy()


def _current_stream() -> int:
    import torch
    return torch.cuda.current_stream().cuda_stream


# NOTE: what a program over device memory (the "cuda" device's) calls between its
# kernels: allocation on the device it runs on, and host steps (an op the kernels do
# not compute, a view torch cannot express) on copies in host memory

def _empty(shape, np_dtype):
    """Device memory for a kernel's output, on the device the program runs on."""
    return devices.empty_here(shape, np_dtype)


_host = host  # a host step's operand: a device value copied to host memory (NumPy)


def _device_value(v):
    """A host step's result, copied to the device the program runs on."""
    return devices.upload(np.asarray(v), devices._CURRENT[0])


def _dview(op: Op, arg, x):
    """View step `op` (arg as the IR holds it) of device tensor x, as NumPy's view rule
    computes it on the host; torch's views where they say the same (no negative step),
    else on the host (the interpreter's `_strided`, NumPy's slicing)."""
    if op is Op.RESHAPE:
        return x.reshape(tuple(arg))
    if op is Op.PERMUTE:
        return x.permute(tuple(arg))
    if op is Op.EXPAND:
        return x.expand(tuple(arg))
    if op is Op.FLIP:
        return x.flip(tuple(arg))
    if op is Op.SLICE:
        if all(st > 0 for _, _, st in arg):
            return x[tuple(slice(lo, hi, st) for lo, hi, st in arg)]
        return _device_value(_host(x)[tuple(slice(lo, hi, st) for lo, hi, st in arg)])
    if op is Op.AS_STRIDED:
        if all(st >= 0 for st in arg.strides):
            flat = x.contiguous().reshape(-1)
            return flat.as_strided(tuple(arg.shape), tuple(arg.strides),
                                   flat.storage_offset() + arg.offset)
        flat = np.ascontiguousarray(_host(x)).reshape(-1)
        return _device_value(np.ascontiguousarray(_strided(flat, arg)))
    raise NotImplementedError(f"no device view rule for {op.name}")


class _HostNode:
    """A statement (or an operand) as the interpreter's rules read a node: op, arg,
    dtype, shape, and for rules that look at their operands (a power by a number)
    the operands."""

    __slots__ = ("arg", "dtype", "inputs", "op", "shape")

    def __init__(self, stmt, inputs, ref=None):
        if stmt is not None:
            self.op, self.arg, self.dtype, self.shape = stmt.op, stmt.arg, stmt.dtype, stmt.shape
        else:
            const = ref.kind == "const"
            self.op, self.arg = (Op.CONST, ref.index) if const else (Op.BUFFER, None)
            self.dtype, self.shape = ref.dtype, ref.shape
        self.inputs = inputs

    @property
    def numel(self) -> int:
        return int(np.prod(self.shape))


def _host_kernel_of(k: Kernel):
    """A function computing kernel k on the host with the reference interpreter's
    rules (a kernel the Triton generator cannot express); `params`: the run's random
    parameters, which RAND statements ("param", j, stream) draw from."""
    def run(loads, params=()):
        local = []
        for s in k.body:
            if s.op is Op.RAND:
                _, j, stream = s.arg
                seed, seq = params[j]
                value = philox.uniform(seed, seq, stream, int(np.prod(s.shape)), s.dtype.name)
                local.append(value.astype(s.dtype.np).reshape(s.shape))
                continue
            args = []
            for r in s.srcs:
                if r.kind == "local":
                    args.append(local[r.index])
                elif r.kind == "load":
                    args.append(np.asarray(loads[r.index]))
                else:
                    # NOTE: a constant operand has its statement's shape (a matmul's)
                    args.append(np.broadcast_to(np.asarray(r.index, dtype=r.dtype.np),
                                                r.shape))
            stub = _HostNode(s, [_HostNode(None, None, r) for r in s.srcs])
            value = np.asarray(IMPL[s.op](stub, *args))
            if s.dtype is dt.bfloat16:
                value = dt.round_bf16(value.astype(np.float32))
            local.append(value.astype(s.dtype.np, copy=False).reshape(s.shape))
        return [np.ascontiguousarray(np.broadcast_to(local[sid], k.body[sid].shape))
                for sid, _ in k.stores]
    return run


def compile_for_target(kernel, signature: dict[str, str], capability: int,
                       divisible: tuple[int, ...] = (), constexprs: dict | None = None,
                       compile_options: dict | None = None):
    """Compile a kernel (a `@triton.jit` function, not interpreted) for an NVIDIA GPU of
    compute `capability` (90: H100/H200, 80: A100) without one: Triton's compiled
    kernel, whose `asm` holds "ptx" and "cubin". `divisible`: positions of arguments
    the launcher would mark divisible by 16 (pointers and sizes that are);
    `constexprs`: values of the signature's "constexpr" arguments, by name;
    `compile_options`: Triton's (num_warps, num_stages).

    NOTE: call it in a process where TRITON_INTERPRET is not set: Triton's front end
    takes parts of the interpreter's semantics when it was set at triton's import."""
    import triton
    from triton.backends.compiler import GPUTarget
    attrs = {(i,): [["tt.divisibility", 16]] for i in divisible}
    src = triton.compiler.ASTSource(fn=kernel, signature=signature,
                                    constexprs=dict(constexprs or {}), attrs=attrs)
    return triton.compile(src, target=GPUTarget("cuda", capability, 32),
                          options=dict(compile_options or {}))

def resource_usage(cubin: bytes) -> dict[str, int]:
    """Registers, shared memory, local memory and stack of a cubin's kernel, read by the
    `cuobjdump` that ships inside Triton's wheel: {"REG": .., "SHARED": .., ...}."""
    import re
    import subprocess

    import triton
    tool = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin",
                        "cuobjdump")
    with tempfile.NamedTemporaryFile(suffix=".cubin", delete=False) as f:
        f.write(cubin)
    try:
        text = subprocess.run([tool, "--dump-resource-usage", f.name], capture_output=True,
                              text=True, check=True).stdout
    finally:
        os.unlink(f.name)
    line = next(ln for ln in text.splitlines() if "REG:" in ln)
    return {k: int(v) for k, v in re.findall(r"(\w+(?:\[\d+\])?):(\d+)", line)}
