"""A differential program fuzzer: random programs run as torch, ember lazy and ember eager.

    python -m tests.fuzz --programs 500 --seed 0     # prints the shrunk failures

See program.py (statements, running, comparing), generate.py (the seeded generator)
and runner.py (the sequence of programs, shrinking, KNOWN_GAPS).
"""

from .generate import generate
from .program import Program, Stmt
from .runner import GAP_DOC, KNOWN_GAPS, Failure, check, fuzz, shrink

__all__ = ["GAP_DOC", "KNOWN_GAPS", "Failure", "Program", "Stmt", "check", "fuzz", "generate",
           "shrink"]
