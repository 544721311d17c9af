"""The differential program fuzzer (tests/fuzz/) in CI, and tests of the fuzzer itself.

- `test_fuzz_lane`: 1,000 seeded programs (FUZZ_CI_PROGRAMS, about 15 s), one after another
  in this process, each run as torch, ember lazy and ember eager; any mismatch fails
  with the shrunk programs printed as runnable snippets.
- `test_fuzz_long` (slow): at least 5,000 programs, or EMBER_FUZZ_PROGRAMS from
  EMBER_FUZZ_SEED. The same run from a shell: `python -m tests.fuzz --programs N`.

Both run with `KNOWN_GAPS` (tests/fuzz/runner.py): the switches that steer the
generator around ember's known bugs. Empty that set as the fixes land.
"""

from __future__ import annotations

import os

import pytest
from fuzz import GAP_DOC, KNOWN_GAPS, Program, Stmt, check, fuzz, generate, shrink
from fuzz.runner import investigate
from helpers import needs_torch

import ember as em

FUZZ_CI_PROGRAMS = 1000
LONG_PROGRAMS = int(os.environ.get("EMBER_FUZZ_PROGRAMS", "5000"))
LONG_SEED = int(os.environ.get("EMBER_FUZZ_SEED", "100000"))


@pytest.fixture(autouse=True)
def _private_disk_cache(tmp_path_factory, monkeypatch):
    """Thousands of programs compile: keep their sources out of the user's disk cache."""
    from ember.runtime.config import options
    if "EMBER_CACHE_DIR" not in os.environ:
        monkeypatch.setattr(options, "cache_dir", str(tmp_path_factory.mktemp("ember-cache")))


def _fail_with(failures, stats):
    reports = "\n\n".join(f.report() for f in failures)
    pytest.fail(f"{stats['failing']} of {stats['programs']} fuzz programs differ from torch "
                f"(gaps {sorted(KNOWN_GAPS)}):\n\n{reports}", pytrace=False)


@needs_torch
def test_fuzz_lane():
    failures, stats = fuzz(FUZZ_CI_PROGRAMS, seed=0, gaps=KNOWN_GAPS, per_signature=1,
                           max_failures=3, shrink_s=10.0, fresh_s=60.0)
    assert stats["programs"] == FUZZ_CI_PROGRAMS
    assert stats["invalid"] < FUZZ_CI_PROGRAMS // 10, stats   # the generator draws valid code
    if stats["failing"]:
        _fail_with(failures, stats)


@needs_torch
@pytest.mark.slow
def test_fuzz_long():
    failures, stats = fuzz(LONG_PROGRAMS, seed=LONG_SEED, gaps=KNOWN_GAPS, per_signature=2,
                           max_failures=20)
    if stats["failing"]:
        _fail_with(failures, stats)


# ---------------------------------------------------------------------------
# the fuzzer itself

@needs_torch
def test_generation_is_a_function_of_the_seed():
    a, b = generate(7), generate(7)
    assert [s.code for s in a.stmts] == [s.code for s in b.stmts]
    assert [s.code for s in a.stmts] != [s.code for s in generate(8).stmts]
    assert 5 <= len(a) <= 20


@needs_torch
def test_programs_cover_the_op_set():
    """Over 300 programs every kind of line is drawn, and torch runs what was kept."""
    kinds, text = set(), ""
    for seed in range(300):
        prog = generate(seed)
        kinds |= {s.kind for s in prog.stmts}
        text += "\n".join(s.code for s in prog.stmts)
    assert kinds >= {"data", "op", "view", "inplace", "index", "reduce", "read", "np_write",
                     "backward"}
    for word in ("from_numpy", ".numpy()", "backward()", "@", "[", "] = ", ".item()",
                 "repr(", "math.nan", "no_grad", ".copy_(", ".permute(", ".expand(",
                 ".softmax(", ".float()", ".tolist()"):
        assert word in text, word


def _planted(monkeypatch):
    """ember with one wrong op: exp returns twice its input."""
    monkeypatch.setattr(em.Tensor, "exp", lambda self: self * 2)


@needs_torch
def test_a_wrong_value_is_found_and_shrunk(monkeypatch):
    _planted(monkeypatch)
    prog = Program([
        Stmt("v1 = M.tensor([1.0, 2.0], requires_grad=True)", ("v1",), (), "data"),
        Stmt("v2 = M.ones((2, 3))", ("v2",), (), "data"),
        Stmt("v3 = v2.t() * 3", ("v3",), ("v2",), "view"),
        Stmt("v4 = v1.exp()", ("v4",), ("v1",), "op"),
        Stmt("r5 = v3.tolist()", ("r5",), ("v3",), "read"),
        Stmt("v4.sum().backward()", (), ("v4",), "backward"),
    ])
    ms, valid = check(prog)
    assert valid
    assert {(m.mode, m.category, m.where) for m in ms} >= {
        ("lazy", "value", "v4"), ("eager", "value", "v4"), ("lazy", "grad", "v1")}
    small, left = shrink(prog, ("lazy", "value"))
    assert [s.code for s in small.stmts] == [prog.stmts[0].code, prog.stmts[3].code]
    assert left and left[0].where == "v4"


@needs_torch
def test_an_error_torch_raises_must_be_raised():
    prog = Program([
        Stmt("v1 = M.tensor([1.0, 2.0], requires_grad=True)", ("v1",), (), "data"),
        Stmt("v1.add_(1)", (), ("v1",), "inplace", expect_error=True),
    ])
    ms, valid = check(prog)
    assert valid and not ms     # ember refuses an in-place op on a leaf too
    wrong = Program([prog.stmts[0], Stmt("v2 = v1 * 2", ("v2",), ("v1",), "op", True)])
    ms, valid = check(wrong)
    assert not valid            # torch runs it: the program says nothing about ember


@needs_torch
def test_the_report_is_a_runnable_snippet(monkeypatch, capsys):
    _planted(monkeypatch)
    prog = Program([Stmt("v1 = M.tensor([0.5])", ("v1",), (), "data"),
                    Stmt("a2 = v1.numpy()", ("a2",), ("v1",), "read"),
                    Stmt("a2[0] = 7.0", (), ("a2",), "np_write"),
                    Stmt("v3 = v1.exp()", ("v3",), ("v1",), "op")])
    f = investigate(0, prog, check(prog)[0], None)
    text = f.report()
    assert "def program(M):" in text and "torch vs ember" in text
    exec(compile(text, "<fuzz report>", "exec"), {})   # noqa: S102 - runs as printed
    out = capsys.readouterr().out
    assert "v3 tensor([1.6487]) None" in out and "v3 tensor([1.]) None" in out


def test_every_gap_is_documented_and_used():
    """Each switch the generator or comparator reads has a line in GAP_DOC, and back."""
    import re
    from pathlib import Path
    here = Path(__file__).parent / "fuzz"
    text = (here / "generate.py").read_text() + (here / "program.py").read_text()
    used = set(re.findall(r'_gap\("(\w+)"\)', text)) | set(re.findall(r'tag = "(\w+)"', text))
    assert used == set(GAP_DOC)
    assert set(KNOWN_GAPS) <= set(GAP_DOC)
