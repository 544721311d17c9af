"""The seam between the compiler and its back ends: `Backend` objects and kernel kinds.

Fusion asks a back end what differs (codegen/backend.py): NumPy keeps a large
kernel's axis to tile, Triton keeps one set of reduced axes per kernel and no
reduction in a matmul's kernel. The kernel description says each kernel's kind,
reduced axes, contraction and epilogue once (codegen/kernel.py's `classify`), and
each load's View of its base (the chain of view steps composed: `compose`).
Programs are built, not run: these tests need neither triton nor torch.
"""

from __future__ import annotations

import numpy as np
import pytest

import ember as em
from ember.codegen.backend import NumpyBackend, TritonBackend, backend_named
from ember.codegen.kernel import KernelKind, build_program, compose
from ember.codegen.numpy_policy import TILE_ELEMS
from ember.ir import dtypes as dt
from ember.ir.graph import Graph
from ember.ir.ops import Op
from ember.ir.passes.pipeline import lower
from ember.ir.view import View
from ember.runtime import cache
from ember.runtime.compiled import _fold


def _program(backend, *tensors):
    key, _, _ = cache.canonical([t._storage.node for t in tensors])
    plan = lower(Graph(key), fold=_fold, backend=backend)
    return plan, build_program(plan)


def _data(*shape, dtype=np.float32):
    return em.tensor(np.random.default_rng(0).standard_normal(shape).astype(dtype))


def test_backends_are_found_by_name():
    assert isinstance(backend_named("numpy"), NumpyBackend)
    assert backend_named("numpy").tile_elems == TILE_ELEMS
    assert backend_named("numpy", 64).tile_elems == 64
    assert isinstance(backend_named("triton"), TritonBackend)
    assert not backend_named("triton").device and backend_named("cuda").device
    with pytest.raises(ValueError, match="unknown backend 'metal'"):
        backend_named("metal")


def test_the_extern_tables_differ_only_where_a_backend_says():
    numpy_externs = NumpyBackend().extern_ops
    assert Op.TAKE in numpy_externs and Op.RAND in numpy_externs
    assert Op.MATMUL not in numpy_externs and Op.EXP not in numpy_externs
    assert TritonBackend().extern_ops <= numpy_externs


def test_numpy_keeps_an_axis_to_tile_and_triton_keeps_one_set_of_reduced_axes():
    x = _data(5, 7)
    plan, prog = _program(NumpyBackend(), x.argmax(1), x.argmin(0))
    assert len(prog.kernels) == 1  # NumPy computes both in one kernel
    plan, prog = _program(TritonBackend(), x.argmax(1), x.argmin(0))
    assert len(prog.kernels) == 2
    assert all(len(k.reduce_axes) == 1 for k in prog.kernels)
    big = _data(64, 512)
    plan, _ = _program(NumpyBackend(), big.sum(0) + big.sum(1, keepdim=True).sum(0))
    assert any("without an axis to tile" in note for note in plan.fusion.notes)
    plan, _ = _program(None, big.sum(0) + big.sum(1, keepdim=True).sum(0))  # the base rules
    assert not plan.fusion.notes


def test_triton_keeps_reductions_out_of_a_matmuls_kernel():
    a, b = _data(6, 8), _data(8, 5)
    _, prog = _program(NumpyBackend(), (a @ b).sum(0))
    assert len(prog.kernels) == 1
    plan, prog = _program(TritonBackend(), (a @ b).sum(0))
    assert len(prog.kernels) == 2
    assert any("matmul's kernel" in note for note in plan.fusion.notes)


def test_kernels_say_their_kind_axes_contraction_and_epilogue():
    x = _data(4, 16)
    _, prog = _program(NumpyBackend(), (x.exp() * 2).tanh())
    (k,) = prog.kernels
    assert k.kind is KernelKind.POINTWISE and k.reduce_axes == () and not k.epilogue
    _, prog = _program(NumpyBackend(), x.softmax(-1))
    (k,) = prog.kernels
    assert k.kind is KernelKind.REDUCTION and k.reduce_axes == ((1,),)
    reductions = [s.id for s in k.body if s.op in (Op.REDUCE_MAX, Op.REDUCE_SUM)]
    assert reductions[1] in k.epilogue and reductions[0] not in k.epilogue
    assert k.body[-1].id in k.epilogue  # the division by the sum
    # NOTE: both operands batched: a stack times one matrix is folded into one product
    a, b, c = (_data(3, 20, 24, dtype=np.float16), _data(3, 24, 18, dtype=np.float16),
               _data(18, dtype=np.float16))
    _, prog = _program(TritonBackend(), ((a @ b) + c).relu())
    (k,) = [k for k in prog.kernels if k.kind is KernelKind.CONTRACTION]
    mm = k.contraction
    assert (mm.m, mm.n, mm.k, mm.batch, mm.acc) == (20, 18, 24, (3,), dt.float32)
    assert k.body[mm.stmt].op is Op.MATMUL
    assert {s.id for s in k.body if s.id != mm.stmt} <= k.epilogue
    assert {v.device for v in prog.values} == {"cpu"}


def test_each_load_says_the_view_of_its_base_it_reads():
    x = _data(5, 7)
    _, prog = _program(TritonBackend(), x.flip(0) + x[:, 2:3])
    (k,) = prog.kernels
    (base,) = {v for v, _ in prog.inputs}
    views = {v.strides: (b, v) for b, v in k.views}
    assert views[(-7, 1)] == (base, View((5, 7), (-7, 1), 28))   # flipped: a negative stride
    assert views[(7, 0)] == (base, View((5, 7), (7, 0), 2))      # a broadcast column
    _, prog = _program(TritonBackend(), x.t().reshape(5, 7) * 2)  # a copy: no one View
    (k,) = prog.kernels
    assert k.views == (None,)


def test_compose_follows_the_movement_ops():
    v = View.contiguous((4, 6))
    assert compose(v, Op.PERMUTE, (1, 0), (6, 4)) == View((6, 4), (1, 6), 0)
    assert compose(v, Op.SLICE, ((1, 4, 2), (5, 0, -2)), (2, 3)) == View((2, 3), (12, -2), 11)
    assert compose(v, Op.FLIP, (1,), (4, 6)) == View((4, 6), (6, -1), 5)
    assert compose(v, Op.EXPAND, (3, 4, 6), (3, 4, 6)) == View((3, 4, 6), (0, 6, 1), 0)
    assert compose(v, Op.AS_STRIDED, View((2, 2), (1, 4), 3), (2, 2)) == View((2, 2), (1, 4), 3)
    assert compose(View((6, 4), (1, 6), 0), Op.RESHAPE, (24,), (24,)) is None
    assert compose(View((6, 4), (1, 6), 0), Op.AS_STRIDED, View((2,), (1,), 0), (2,)) is None
