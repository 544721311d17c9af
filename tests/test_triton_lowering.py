"""The Triton back end's kernels compile for the real GPUs, and fast, read without one.

Triton compiles a kernel to PTX and a cubin for a target given by hand
(`GPUTarget("cuda", 90, 32)`: H100/H200; 80: A100) on a machine with no GPU.
Each kernel family, generated at a realistic size and specialised as the launcher
would (pointers divisible by 16), must compile for sm_90 and sm_80 with no
spills (`LOCAL` and `STACK` of 0 in `cuobjdump --dump-resource-usage`) and within
the device's shared memory; contiguous float32 pointwise kernels must load and
store with 128-bit vector instructions, and a float16 matmul must use tensor
cores (`wgmma` on sm_90, `mma.sync` on sm_80). About a second a kernel.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest

import ember as em
from ember.codegen import triton_gen
from ember.codegen.backend import TritonBackend
from ember.codegen.kernel import build_program
from ember.ir.graph import Graph
from ember.ir.passes.pipeline import lower
from ember.runtime import cache
from ember.runtime.compiled import _fold
from ember.runtime.triton_launch import compile_for_target, load_module, resource_usage

pytest.importorskip("triton")
pytest.importorskip("torch")

SHARED_LIMIT = {90: 232448, 80: 166912}  # bytes a block may use (opt-in maximum)


def _kernels(*tensors, candidates: bool = False):
    """[(name, compiled-for-GPU kernel function, signature, pointer positions, constexprs,
    compile options)] of the program that computes `tensors` (built, not run): each
    kernel under its heuristic's config, or (`candidates`) under every candidate the
    autotuner may pick (runtime/autotune.py)."""
    key, _, _ = cache.canonical([t._storage.node for t in tensors])
    prog = build_program(lower(Graph(key), fold=_fold, backend=TritonBackend()))
    source, notes = triton_gen.emit(prog)
    assert not notes, notes
    module = load_module(source, interpret=False)
    out = []
    for k, plan in triton_gen.kernel_plans(prog):
        sig = triton_gen.kernel_signature(prog, k, plan)
        pointers = tuple(i for i, t in enumerate(sig.values()) if t.startswith("*"))
        for config in (plan.configs if candidates else plan.configs[:1]) or [{}]:
            options = {o: v for o, v in config.items() if not o.startswith("BLOCK_")}
            out.append((k.name, getattr(module, k.name), sig, pointers,
                        triton_gen.block_constexprs(plan, config), options))
    return out


def _data(*shape, dtype=np.float32):
    # NOTE: realised inputs of the size (never filled: only the program is built)
    return em.from_numpy(np.empty(shape, dtype))


def _families():
    x, y, v = _data(4096, 4096), _data(4096), _data(1 << 20)
    rows = _data(32768, 1024)
    a16, b16, bias = (_data(1024, 1024, dtype=np.float16), _data(1024, 1024, dtype=np.float16),
                      _data(1024, dtype=np.float16))
    a32, b32 = _data(512, 256), _data(256, 384)
    return {
        "pointwise": (v.exp() * v,),
        "broadcast_transpose": (x.t() * y + 1,),
        "softmax": (x.softmax(-1),),
        "layer_norm": ((rows - rows.mean(-1, keepdim=True))
                       / (rows.var(-1, keepdim=True) + 1e-5).sqrt(),),
        "sum_looped": (v.sum(),),
        "argmax": (rows.argmax(-1),),
        "matmul_f16_epilogue": (((a16 @ b16) + bias).relu(),),
        "matmul_f32": ((a32 @ b32) * 2,),
        # a dropout mask, and randn (Box-Muller: a log and a cos of its two streams)
        "random": (x * (em.rand(4096, 4096) > 0.1), em.randn(32768, 1024)),
        # exact: a broadcast product summed over K blocks (no tl.dot for int64)
        "matmul_int64": (_data(512, 384, dtype=np.int64) @ _data(384, 256, dtype=np.int64),),
        # rows of no elements: each is the sum's identity, then the epilogue (a mean's NaN)
        "reduce_empty": (_data(32768, 0).mean(-1),),
        # a value of size 1 on an axis stored from a kernel over the whole domain
        "broadcast_store": (x[:, :1].exp(), x[:, :1].exp() + x),
    }


FAMILIES = ["pointwise", "broadcast_transpose", "softmax", "layer_norm", "sum_looped",
            "argmax", "matmul_f16_epilogue", "matmul_f32", "random", "matmul_int64",
            "reduce_empty", "broadcast_store"]
# families compiled under every candidate config of the autotuner, not the first alone
CANDIDATES = {"softmax", "sum_looped", "matmul_f16_epilogue", "matmul_f32", "matmul_int64"}


# NOTE: every family for the H100/H200; for the A100 the ones whose code differs most
TARGETS = [(f, 90) for f in FAMILIES] + [("pointwise", 80), ("softmax", 80),
                                          ("matmul_f16_epilogue", 80), ("matmul_int64", 80),
                                          ("reduce_empty", 80), ("broadcast_store", 80)]


def _report() -> dict:
    """{"family/capability": [{"name", "usage", "v4_load", "v4_store", "wgmma",
    "mma_sync"}]} for every target: what the checks below read."""
    families = _families()
    out = {}
    for family, capability in TARGETS:
        rows = []
        for name, fn, sig, pointers, constexprs, options in _kernels(
                *families[family], candidates=family in CANDIDATES and capability == 90):
            compiled = compile_for_target(fn, sig, capability, pointers, constexprs, options)
            ptx = compiled.asm["ptx"]
            rows.append({"name": name, "usage": resource_usage(compiled.asm["cubin"]),
                         "config": {**constexprs, **options},
                         "v4_load": "ld.global.v4" in ptx, "v4_store": "st.global.v4" in ptx,
                         "wgmma": "wgmma" in ptx, "mma_sync": "mma.sync" in ptx,
                         "mulhi": "mul.hi.u32" in ptx,
                         "int64_product": "mul.lo.s64" in ptx or "mad.lo.s64" in ptx,
                         "int64_to_float": bool(re.search(r"cvt\.\w+\.f(16|32|64)\.s64", ptx))})
        out[f"{family}/{capability}"] = rows
    return out


@pytest.fixture(scope="module")
def report():
    """The compiled facts of every target, from a process of their own.

    NOTE: Triton's front end takes parts of the interpreter's semantics when
    TRITON_INTERPRET=1 was set at its import (as the test suite sets it); kernels are
    compiled for a GPU in a process started without it."""
    env = {k: v for k, v in os.environ.items() if k != "TRITON_INTERPRET"}
    code = "import json, test_triton_lowering as t; print(json.dumps(t._report()))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, cwd=os.path.dirname(__file__), timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


# NOTE: every family for the H100/H200; for the A100 the ones whose code differs most
@pytest.mark.parametrize("family,capability", TARGETS)
def test_every_family_compiles_without_spills(report, family, capability):
    for row in report[f"{family}/{capability}"]:
        usage = row["usage"]
        assert usage["LOCAL"] == 0 and usage["STACK"] == 0, (family, row)
        assert usage["SHARED"] <= SHARED_LIMIT[capability], (family, row)


def test_contiguous_pointwise_kernels_use_vector_loads_and_stores(report):
    (row,) = report["pointwise/90"]
    assert row["v4_load"] and row["v4_store"], row


@pytest.mark.parametrize("capability,instruction", [(90, "wgmma"), (80, "mma_sync")])
def test_half_precision_matmul_uses_tensor_cores(report, capability, instruction):
    rows = report[f"matmul_f16_epilogue/{capability}"]
    assert rows and all(row[instruction] for row in rows), rows


@pytest.mark.parametrize("family", sorted(CANDIDATES))
def test_every_autotuner_candidate_is_compiled(report, family):
    rows = report[f"{family}/90"]
    configs = [row["config"] for row in rows]
    assert len(configs) > 1 and len(set(map(str, configs))) == len(configs), configs


def test_an_integer_matmul_takes_no_float_detour(report):
    for capability in (90, 80):
        for row in report[f"matmul_int64/{capability}"]:
            assert row["int64_product"] and not row["int64_to_float"], row
            assert not row["wgmma"] and not row["mma_sync"], row


def test_random_kernels_compute_philox_in_the_kernel(report):
    rows = report["random/90"]
    assert len(rows) == 2 and all(row["mulhi"] for row in rows), rows  # tl.umulhi
    assert all(row["v4_store"] for row in rows), rows
