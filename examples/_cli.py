"""The examples' command lines: every flag says its default, and counts and rates that
must be positive are refused with a message instead of failing mid-run."""

from __future__ import annotations

import argparse


def parser(doc: str) -> argparse.ArgumentParser:
    """An argument parser described by the first line of a module docstring."""
    return argparse.ArgumentParser(description=doc.strip().split("\n")[0],
                                   formatter_class=argparse.ArgumentDefaultsHelpFormatter)


def positive_int(text: str) -> int:
    """A whole number above zero (for --steps, --iters, --every, --hidden)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def positive_float(text: str) -> float:
    """A finite number above zero (for --lr)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number above 0, got {text}")
    return value
