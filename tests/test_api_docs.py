"""docs/api.md is the API reference: it lists every public name, names nothing that does
not exist (outside its "Planned" section), and `em.__all__` holds no internal name."""

import pathlib
import re

import ember as em

DOC = pathlib.Path(__file__).resolve().parent.parent / "docs" / "api.md"
INTERNAL = {"grad_of", "laid_out", "memory_order", "ir", "runtime", "tracer", "as_operand"}


def _sections() -> tuple[str, str]:
    text = DOC.read_text()
    released, _, planned = text.partition("## Planned")
    return released, planned


def test_every_public_name_is_documented():
    released, _ = _sections()
    words = set(re.findall(r"[A-Za-z_][A-Za-z_0-9]*", released))
    missing = [n for n in em.__all__ if n not in words]
    assert not missing, f"public names missing from docs/api.md: {missing}"


def test_documented_em_names_exist():
    released, _ = _sections()
    named = set(re.findall(r"\bem\.([A-Za-z_][A-Za-z_0-9]*)", released)) - {"X"}
    assert named, "docs/api.md names no em.X"
    missing = sorted(n for n in named if not hasattr(em, n))
    assert not missing, f"docs/api.md names what ember lacks: {missing}"


def test_all_holds_no_internal_name():
    assert not INTERNAL & set(em.__all__)
    assert len(em.__all__) == len(set(em.__all__))
    for name in em.__all__:
        assert hasattr(em, name), name
