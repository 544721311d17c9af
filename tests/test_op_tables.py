"""Every Op has a row in every per-op table (see "How to add an Op" in ir/ops.py)."""

import inspect

import pytest

from ember.codegen import numpy_gen
from ember.ir.node import INFER
from ember.ir.ops import OPINFO, Op, OpKind, Placement
from ember.ir.passes.autodiff import VJP
from ember.runtime.interpreter import IMPL

# name -> table; a code generator's rule table joins here when it is added
TABLES = {
    "OPINFO (ir/ops.py)": OPINFO,
    "INFER (ir/node.py)": INFER,
    "IMPL (runtime/interpreter.py)": IMPL,
    "VJP (ir/passes/autodiff.py)": VJP,
    "RULES (codegen/numpy_gen.py)": numpy_gen.RULES,
}


def missing_tables(op: Op, tables=None) -> list[str]:
    """The tables that lack a row for `op` (VJP only where `op` is differentiable)."""
    tables = TABLES if tables is None else tables
    info = OPINFO.get(op)
    missing = []
    for name, table in tables.items():
        if op in table:
            continue
        if name.startswith("VJP") and info is not None and not info.differentiable:
            continue  # declared not differentiable
        missing.append(name)
    return missing


@pytest.mark.parametrize("op", list(Op), ids=lambda op: op.name)
def test_every_op_has_a_row_in_every_table(op):
    missing = missing_tables(op)
    assert not missing, (f"Op.{op.name} has no entry in {', '.join(missing)}; see "
                         "'How to add an Op' in ir/ops.py")


def test_a_missing_row_names_the_op_and_the_table():
    tables = dict(TABLES)
    tables["IMPL (runtime/interpreter.py)"] = {k: v for k, v in IMPL.items() if k is not Op.EXP}
    assert missing_tables(Op.EXP, tables) == ["IMPL (runtime/interpreter.py)"]
    assert missing_tables(Op.ADD, tables) == []


def test_no_table_has_rows_for_other_keys():
    for name, table in TABLES.items():
        strays = [k for k in table if not isinstance(k, Op)]
        assert not strays, f"{name} has rows for {strays}"


@pytest.mark.parametrize("op", list(Op), ids=lambda op: op.name)
def test_numpy_rule_has_the_form_the_placement_needs(op):
    info, rule = OPINFO[op], numpy_gen.RULES[op]
    need = {Placement.KERNEL: ("stmt", rule.stmt), Placement.VIEW: ("view", rule.view),
            Placement.EXTERN: ("step", rule.step),
            Placement.LEAF: ("leaf or step", rule.leaf or rule.step)}[info.placement]
    assert need[1], (f"Op.{op.name} is placed as {info.placement}: its RULES entry in "
                     f"codegen/numpy_gen.py needs a {need[0]} rule")
    if info.kind is OpKind.MOVEMENT:  # a movement op is a view step outside a kernel
        assert rule.view, f"Op.{op.name} is a movement op: its RULES entry needs a view rule"


@pytest.mark.parametrize("op", list(Op), ids=lambda op: op.name)
def test_impl_takes_the_arity_opinfo_declares(op):
    params = inspect.signature(IMPL[op]).parameters.values()
    if any(p.kind is p.VAR_POSITIONAL for p in params):
        return
    assert len(params) - 1 == OPINFO[op].arity, (
        f"Op.{op.name}: IMPL's rule takes {len(params) - 1} inputs, OPINFO says "
        f"{OPINFO[op].arity}")


def test_differentiable_ops_have_a_vjp_that_can_give_gradients():
    for op, info in OPINFO.items():
        if info.differentiable:
            assert op in VJP, f"Op.{op.name} is differentiable but has no VJP rule"
