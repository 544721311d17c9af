"""The compiler's structure: kinds are enums, the pipeline is one list of named
steps, and a kernel has one name in the schedule, the debug report and the source."""

from __future__ import annotations

import numpy as np

import ember as em
from ember.codegen.kernel import AllocKind, RefKind, StepKind, build_program
from ember.ir.graph import Graph
from ember.ir.passes.fusion import GroupKind
from ember.ir.passes.pipeline import lower
from ember.runtime import cache


def _softmax_graph():
    x = em.tensor(np.arange(12, dtype=np.float32).reshape(3, 4))
    y = (x.softmax(1) * 2).T.reshape(-1) + 1
    key, _, _ = cache.canonical([y._storage.node])
    return Graph(key)


def test_kinds_are_enums_that_read_as_words():
    plan = lower(_softmax_graph())
    prog = build_program(plan)
    kinds = {g.kind for g in plan.steps}
    assert kinds <= set(GroupKind) and GroupKind.KERNEL in kinds
    assert all(isinstance(s.kind, StepKind) for s in prog.steps)
    refs = {r.kind for k in prog.kernels for st in k.body for r in st.srcs}
    assert refs and refs <= set(RefKind)
    assert all(isinstance(a.kind, AllocKind) for a in prog.allocs.values())
    # NOTE: the values are the words the debug report prints, and compare equal to them
    assert GroupKind.KERNEL == "kernel" and f"{StepKind.VIEW}" == "view"


def test_the_pipeline_is_one_list_of_named_steps_from_graph_to_schedule():
    from ember.ir.passes.pipeline import graph_passes, passes
    from ember.ir.passes.schedule import Schedule
    assert [name for name, _ in passes()] == ["simplify", "eliminate_dead", "fuse", "schedule"]
    assert [name for name, _ in graph_passes()] == ["simplify", "eliminate_dead"]
    lines = []
    plan = lower(_softmax_graph(), check=True, log=lines.append)
    assert isinstance(plan, Schedule)
    assert [line.split(":")[0] for line in lines] == [name for name, _ in passes()]
    assert "kernels" in lines[2] and "steps" in lines[3]
