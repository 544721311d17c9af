"""The registry of benchmark cases: one table, `CASES`, at the end of this file.

A case is a computation at several sizes (smallest first; ``--quick`` runs only the
first). It names a builder that returns the inputs as NumPy arrays, the natural
hand-written NumPy code, and the PyTorch-style code that torch, torch.compile and
every ember contender run (the same text for all of them: ember follows PyTorch's
API, so a user ports torch code by changing the import). Where torch has a native
op the natural torch code would use (`F.layer_norm`), the case gives a `torch`
override; `ember` overrides likewise. Tensor-style functions take the library
(`torch` or `ember`) as their first argument.

To add a case, write its functions and add one `Case(...)` line to `CASES`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import loops, model_cases, nn_cases, optim_step, steps

__all__ = ["CASES", "Case", "case_names", "select", "size_label"]

Size = Any  # an int (vector length) or a tuple of dimensions
Inputs = dict[str, np.ndarray]


@dataclass(frozen=True)
class Case:
    """One benchmark case; see the module docstring."""

    name: str
    group: str  # elementwise | reduction | normalisation | matmul | training | overhead
    sizes: tuple[Size, ...]  # smallest first; --quick uses sizes[0]
    build: Callable[[Size, np.random.Generator], Inputs]
    numpy: Callable[..., Any]  # numpy(*arrays): the natural NumPy code
    tensor: Callable[..., Any] | None = None  # tensor(lib, *tensors): torch and ember
    torch: Callable[..., Any] | None = None  # overrides `tensor` for torch contenders
    ember: Callable[..., Any] | None = None  # overrides `tensor` for ember contenders
    work: Callable[[Size], tuple[str, float]] | None = None  # ("bytes" | "flops", amount)
    tol: float = 1e-5  # max |out - numpy| / max(1, max |numpy|)
    loop: bool = False  # functions are training steps updating `trainable` in place
    trainable: tuple[str, ...] = ()  # inputs that are leaves with requires_grad
    per_call: int = 1  # steps (loop) or ops a call performs; times are per step/op
    realize: bool = True  # the ember lazy contender forces its result in the timed call
    only: tuple[str, ...] | None = None  # standard contenders that apply (None: all)
    custom: dict[str, Callable[..., Any]] = field(default_factory=dict)  # extra contenders
    unit: str = "call"  # what a time is per: call, step, op
    note: str = ""


def size_label(size: Size) -> str:
    """'64K', '16M', '4096x1024'."""
    if isinstance(size, tuple):
        return "x".join(str(d) for d in size)
    for shift, suffix in ((20, "M"), (10, "K")):
        if size >= 1 << shift and size % (1 << shift) == 0:
            return f"{size >> shift}{suffix}"
    return str(size)


# ---- builders ---------------------------------------------------------------------

def vector(n: int, rng: np.random.Generator) -> Inputs:
    return {"x": rng.standard_normal(n, dtype=np.float32)}


def matrix(shape: tuple[int, int], rng: np.random.Generator) -> Inputs:
    return {"x": rng.standard_normal(shape, dtype=np.float32)}


def transposed(shape: tuple[int, int], rng: np.random.Generator) -> Inputs:
    """Stored as (cols, rows); the case reads it through `.T`, a non-contiguous view."""
    return {"x": rng.standard_normal(shape[::-1], dtype=np.float32)}


def row_col(shape: tuple[int, int], rng: np.random.Generator) -> Inputs:
    rows, cols = shape
    return {"x": rng.standard_normal(shape, dtype=np.float32),
            "row": rng.standard_normal(cols, dtype=np.float32),
            "col": rng.standard_normal((rows, 1), dtype=np.float32)}


def norm_inputs(shape: tuple[int, int], rng: np.random.Generator) -> Inputs:
    cols = shape[1]
    return {"x": rng.standard_normal(shape, dtype=np.float32),
            "weight": (1 + 0.1 * rng.standard_normal(cols)).astype(np.float32),
            "bias": (0.1 * rng.standard_normal(cols)).astype(np.float32)}


def matmul_inputs(mkn: tuple[int, int, int], rng: np.random.Generator) -> Inputs:
    m, k, n = mkn
    return {"a": rng.standard_normal((m, k), dtype=np.float32),
            "b": (rng.standard_normal((k, n)) / np.sqrt(k)).astype(np.float32)}


def linear_inputs(mkn: tuple[int, int, int], rng: np.random.Generator) -> Inputs:
    return {**matmul_inputs(mkn, rng), "bias": rng.standard_normal(mkn[2], dtype=np.float32)}


# ---- work: what a kernel must at least move (bytes) or compute (flops) --------------

def elems(size: Size) -> int:
    return int(np.prod(size))


def rw_bytes(reads: int = 1, writes: int = 1) -> Callable[[Size], tuple[str, float]]:
    """Read `reads` and write `writes` float32 arrays of the case's size."""
    return lambda size: ("bytes", 4.0 * elems(size) * (reads + writes))


def reduce_bytes(out_axis: int | None) -> Callable[[Size], tuple[str, float]]:
    """Read the matrix, write one value (None) or one per entry of dimension `out_axis`."""
    return lambda size: ("bytes", 4.0 * (elems(size) + (1 if out_axis is None else size[out_axis])))


def row_col_bytes(size: tuple[int, int]) -> tuple[str, float]:
    return "bytes", 4.0 * (2 * elems(size) + size[0] + size[1])


def norm_bytes(size: tuple[int, int]) -> tuple[str, float]:
    return "bytes", 4.0 * (2 * elems(size) + 2 * size[1])


def matmul_flops(mkn: tuple[int, int, int]) -> tuple[str, float]:
    m, k, n = mkn
    return "flops", 2.0 * m * k * n


# ---- elementwise chains: a cycle of mul, add, max, abs ------------------------------

MULS, ADDS, FLOORS = (1.5, 0.75, 0.9, 1.25), (0.5, 0.125, -0.25, 0.0625), (-0.25, 0.2, -0.5, 0.1)


def np_chain(v: np.ndarray, length: int) -> np.ndarray:
    """`length` ops of the cycle v*c, v+c, max(v, c), abs(v), written as NumPy users do."""
    for i in range(length):
        step, turn = i % 4, (i // 4) % 4
        if step == 0:
            v = v * MULS[turn]
        elif step == 1:
            v = v + ADDS[turn]
        elif step == 2:
            v = np.maximum(v, FLOORS[turn])
        else:
            v = np.abs(v)
    return v


def tensor_chain(v: Any, length: int) -> Any:
    """The same chain as `np_chain`, written as torch users do."""
    for i in range(length):
        step, turn = i % 4, (i // 4) % 4
        if step == 0:
            v = v * MULS[turn]
        elif step == 1:
            v = v + ADDS[turn]
        elif step == 2:
            v = v.clamp(min=FLOORS[turn])
        else:
            v = v.abs()
    return v


def chain_case(length: int, sizes: tuple[int, ...], name: str = "", note: str = "") -> Case:
    return Case(name or f"chain{length}", "elementwise", sizes, vector,
                numpy=lambda x: np_chain(x, length),
                tensor=lambda lib, x: tensor_chain(x, length),
                work=rw_bytes(),
                note=note or f"{length} elementwise op{'s' * (length > 1)} on a float32 vector")


def bcast_case(length: int, sizes: tuple[tuple[int, int], ...]) -> Case:
    return Case(f"bcast_chain{length}", "elementwise", sizes, row_col,
                numpy=lambda x, row, col: np_chain(x * row + col, length),
                tensor=lambda lib, x, row, col: tensor_chain(x * row + col, length),
                work=row_col_bytes,
                note=f"x * row + col, then {length} elementwise ops (broadcast row and column)")


def np_transcendental(x: np.ndarray) -> np.ndarray:
    return np.exp(-x * x) * np.sin(3 * x) + 0.5 * np.tanh(x)


def tensor_transcendental(lib: Any, x: Any) -> Any:
    return (-x * x).exp() * (3 * x).sin() + 0.5 * x.tanh()


# ---- normalisations -----------------------------------------------------------------

EPS = 1e-5


def np_softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def np_log_softmax(x: np.ndarray) -> np.ndarray:
    shifted = x - x.max(axis=1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))


def np_layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray) -> np.ndarray:
    mean = x.mean(axis=1, keepdims=True)
    var = x.var(axis=1, keepdims=True)
    return (x - mean) / np.sqrt(var + EPS) * weight + bias


def tensor_layer_norm(lib: Any, x: Any, weight: Any, bias: Any) -> Any:
    """Layer norm composed of primitives: ember's public API has no layer_norm (yet)."""
    centred = x - x.mean(dim=1, keepdim=True)
    var = (centred * centred).mean(dim=1, keepdim=True)
    return centred * (var + EPS).rsqrt() * weight + bias


def torch_layer_norm(torch: Any, x: Any, weight: Any, bias: Any) -> Any:
    return torch.nn.functional.layer_norm(x, (x.shape[1],), weight, bias, EPS)


# ---- the registry -------------------------------------------------------------------

VECTORS = (1 << 16, 1 << 20, 1 << 24)  # 64K (in cache), 1M, 16M float32 (memory-bound)
MATRICES = ((256, 256), (1024, 1024), (4096, 1024), (4096, 4096))
NORM_ROWS = ((256, 256), (1024, 1024), (4096, 1024))
MATMULS = ((128, 128, 128), (512, 512, 512), (2048, 2048, 2048))

CASES: tuple[Case, ...] = (
    # elementwise
    chain_case(1, VECTORS),
    chain_case(4, VECTORS),
    chain_case(8, VECTORS, "chain8_membound",
               "mul/add/max/abs twice: the memory-bound 8-op chain of the speed targets"),
    chain_case(16, VECTORS),
    bcast_case(1, MATRICES[:2] + MATRICES[3:]),
    bcast_case(4, MATRICES[:2] + MATRICES[3:]),
    bcast_case(16, MATRICES[:2] + MATRICES[3:]),
    Case("transposed_chain4", "elementwise", MATRICES[:2] + MATRICES[3:], transposed,
         numpy=lambda x: np_chain(x.T, 4), tensor=lambda lib, x: tensor_chain(x.T, 4),
         work=rw_bytes(), note="4 elementwise ops on a transposed (non-contiguous) matrix"),
    Case("transcendental", "elementwise", VECTORS, vector,
         numpy=np_transcendental, tensor=tensor_transcendental, work=rw_bytes(),
         note="exp(-x*x)*sin(3x)+0.5*tanh(x)"),
    # reductions
    Case("sum", "reduction", MATRICES, matrix, numpy=lambda x: x.sum(),
         tensor=lambda lib, x: x.sum(), work=reduce_bytes(None), tol=1e-4),
    Case("row_sum", "reduction", MATRICES, matrix, numpy=lambda x: x.sum(axis=1),
         tensor=lambda lib, x: x.sum(dim=1), work=reduce_bytes(0), tol=1e-4),
    Case("col_sum", "reduction", MATRICES, matrix, numpy=lambda x: x.sum(axis=0),
         tensor=lambda lib, x: x.sum(dim=0), work=reduce_bytes(1), tol=1e-4),
    Case("row_max", "reduction", MATRICES, matrix, numpy=lambda x: x.max(axis=1),
         tensor=lambda lib, x: x.amax(dim=1), work=reduce_bytes(0)),
    Case("row_mean_var", "reduction", MATRICES, matrix,
         numpy=lambda x: (x.mean(axis=1), x.var(axis=1, ddof=1)),
         tensor=lambda lib, x: (x.mean(dim=1), x.var(dim=1)),
         work=lambda s: ("bytes", 4.0 * (elems(s) + 2 * s[0])), tol=1e-4,
         note="mean and (unbiased) variance of each row"),
    # normalisations
    Case("softmax", "normalisation", NORM_ROWS, matrix, numpy=np_softmax,
         tensor=lambda lib, x: x.softmax(dim=1), work=rw_bytes(), note="over rows"),
    Case("log_softmax", "normalisation", NORM_ROWS, matrix, numpy=np_log_softmax,
         tensor=lambda lib, x: x.log_softmax(dim=1), work=rw_bytes(), tol=1e-4,
         note="over rows"),
    Case("layer_norm", "normalisation", NORM_ROWS, norm_inputs, numpy=np_layer_norm,
         tensor=tensor_layer_norm, torch=torch_layer_norm, work=norm_bytes, tol=1e-4,
         note="over rows, with weight and bias; torch runs F.layer_norm"),
    # matmul
    Case("matmul", "matmul", MATMULS, matmul_inputs, numpy=lambda a, b: a @ b,
         tensor=lambda lib, a, b: a @ b, work=matmul_flops, tol=1e-4),
    Case("linear_relu", "matmul", MATMULS, linear_inputs,
         numpy=lambda a, b, bias: np.maximum(a @ b + bias, 0),
         tensor=lambda lib, a, b, bias: (a @ b + bias).relu(), work=matmul_flops, tol=1e-4,
         note="relu(a @ b + bias)"),
    # training loops, per step
    Case("rosenbrock", "training", (1,), loops.rosenbrock_inputs, numpy=loops.np_rosenbrock,
         tensor=loops.rosenbrock, loop=True, trainable=("x", "y"), per_call=10,
         unit="step", tol=1e-4, note="a=1, b=5, lr 0.01, scalar x and y; 10 steps a call"),
    Case("linreg", "training", ((4096, 16), (65536, 64)), loops.linreg_inputs,
         numpy=loops.np_linreg, tensor=loops.linreg, loop=True, trainable=("w", "b"),
         per_call=10, unit="step", tol=1e-4, note="mean squared error, SGD lr 0.1"),
    Case("mlp_step", "training", ((256, 784, 256, 10),), loops.mlp_inputs,
         numpy=loops.np_mlp, tensor=loops.mlp, loop=True,
         trainable=("w1", "b1", "w2", "b2"), unit="step", tol=1e-4,
         note="784-256-10, relu, cross-entropy via log_softmax, SGD lr 0.1"),
    Case("adam_step", "training", ((784, 256, 10),), optim_step.adam_inputs,
         numpy=optim_step.np_adam, only=(), custom=optim_step.CONTENDERS,
         work=optim_step.adam_bytes, unit="step", tol=1e-5,
         note="Adam.step() over a 784-256-10 MLP's parameters, gradients set; "
              "compiles per ember step in the notes"),
    Case("conv2d_step", "training", ((8, 3, 16, 8, 16), (32, 3, 32, 16, 32)), nn_cases.conv_inputs,
         numpy=nn_cases.np_conv_step, tensor=nn_cases.conv_step, loop=True,
         trainable=("w1", "b1", "w2", "b2"), unit="step", work=nn_cases.conv_flops, tol=1e-4,
         note="(largest size) conv2d 3->16 3x3 on 32x32, relu, max_pool2d 2, conv2d 16->32 "
              "3x3 on 16x16; "
              "forward and backward, SGD"),
    Case("attention_step", "training", ((2, 2, 64, 16), (8, 4, 128, 32)),
         nn_cases.attention_inputs,
         numpy=nn_cases.np_attention_step, tensor=nn_cases.attention_step, loop=True,
         trainable=("q", "k", "v"), unit="step", work=nn_cases.attention_flops, tol=1e-4,
         note="softmax(q k^T / sqrt(d)) v with einsum, (largest size) batch 8, 4 heads, seq "
              "128, dim 32; "
              "forward and backward, SGD"),
    Case("cnn_step", "training", ((8, 4), (64, 32)), model_cases.cnn_inputs,
         numpy=model_cases.np_cnn_loss, only=(), custom=model_cases.CNN_CONTENDERS,
         work=model_cases.cnn_flops, unit="step", tol=1e-4,
         note="examples/cnn_digits.py's CNN on 8x8 images, batch 64, 32 and 64 channels: "
              "forward, cross-entropy, backward, AdamW; torch.compile compiles the model"),
    Case("transformer_step", "training", ((4, 16, 16, 1, 96), (32, 64, 64, 2, 96)),
         model_cases.transformer_inputs, numpy=model_cases.np_transformer_loss, only=(),
         custom=model_cases.TRANSFORMER_CONTENDERS, work=model_cases.transformer_flops,
         unit="step", tol=1e-4,
         note="examples/char_transformer.py's model: batch 32, context 64, width 64, "
              "4 heads, 2 blocks, 96 characters; forward, cross-entropy, backward, AdamW"),
    # overhead, on 1-element tensors
    Case("realize_1", "overhead", (1,), vector, numpy=lambda x: x + 1,
         tensor=lambda lib, x: x + 1, note="x + 1 on a 1-element tensor"),
    Case("graph10_realize", "overhead", (1,), loops.two_vectors, numpy=loops.np_graph10,
         tensor=loops.graph10, note="2 inputs and 8 ops on 1-element tensors"),
    Case("build_per_op", "overhead", (100,), loops.one_element, numpy=loops.np_build,
         tensor=loops.build, per_call=100, unit="op", realize=False,
         only=("ember", "ember eager", "numpy eager", "torch eager"),
         note="100 ops on a 1-element tensor; ember builds the graph, the others compute"),
    Case("compile_capture", "overhead", (16,), loops.scale_shift_inputs,
         numpy=loops.np_scale_shift, tensor=loops.scale_shift, only=("torch eager",),
         custom=loops.CAPTURE_CONTENDERS,
         note="a cache hit of em.compile(x * w + 1): w passed, or captured from the "
              "enclosing scope (at most 5 us more)"),
    # one cached program per step, lazily and compiled (the notes give compiles per step)
    Case("decaying_scalar", "training", (1000,), steps.decay_inputs, numpy=steps.np_decay,
         only=(), custom=steps.DECAY_CONTENDERS, per_call=steps.STEPS, unit="step", tol=1e-5,
         note="(x * s + 1).exp().sum().item() with a new s each step: s is a runtime "
              "parameter"),
    Case("inplace_loop", "training", ((64, 1000, 100, 10),), steps.two_layer_inputs,
         numpy=steps.np_two_layer, only=(), custom=steps.INPLACE_CONTENDERS,
         per_call=steps.STEPS, unit="step", tol=1e-4,
         note="the tutorial's two-layer network: manual backward, w -= lr * grad, "
              "loss.item()"),
    Case("compiled_step", "training", (1000,), steps.step_inputs, numpy=steps.np_step,
         only=(), custom=steps.STEP_CONTENDERS, per_call=steps.STEPS, unit="step", tol=1e-5,
         note="the README's step under em.compile over a captured model.w, lr decaying"),
    Case("compile200", "overhead", (200,), loops.one_element, numpy=loops.np_random_chain,
         only=(), custom=loops.COMPILE_CONTENDERS, tol=1e-5,
         note="a fresh 200-op graph (cache miss) and the same graph again (cache hit)"),
)


def case_names() -> list[str]:
    return [case.name for case in CASES]


def select(pattern: str | None) -> list[Case]:
    """The cases whose name contains `pattern` or matches it as a regular expression."""
    import re

    if not pattern:
        return list(CASES)
    try:
        regex = re.compile(pattern)
    except re.error:
        regex = None
    return [c for c in CASES if pattern in c.name or (regex is not None and regex.search(c.name))]
