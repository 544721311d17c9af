"""The command lines of the benchmark suite and the examples refuse bad arguments before
any work, with a message naming the argument, and every script answers --help."""

import pathlib
import subprocess
import sys

import pytest

from ember.benchmarks.__main__ import parse_args

ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("argv, message", [
    (["--json", "/no/such/folder/out.json"], "--json: the folder /no/such/folder does not exist"),
    (["--plot", "/no/such/folder/x.png"], "--plot: the folder /no/such/folder does not exist"),
    (["--repeats", "0"], "--repeats: must be above 0, got 0"),
    (["--min-sample", "-1"], "--min-sample: must be above 0, got -1"),
    (["--torch-threads", "two"], "--torch-threads: expected a number, got 'two'"),
])
def test_benchmark_arguments_are_checked_before_the_run(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_:
        parse_args(argv)
    assert exit_.value.code == 2
    assert message in capsys.readouterr().err


def test_benchmark_help_gives_every_default(capsys):
    with pytest.raises(SystemExit):
        parse_args(["--help"])
    text = " ".join(capsys.readouterr().out.split())
    for flag in ("--device {cpu,cuda} where the cases run (default: cpu)",
                 "(default: 5 with --quick, else 7)", "(default: every case)"):
        assert flag in text


def _example(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *argv], cwd=ROOT / "examples",
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("argv, message", [
    (["rosenbrock.py", "--iters", "0"], "argument --iters: must be at least 1, got 0"),
    (["rosenbrock.py", "--lr", "nan"], "argument --lr: must be a finite number above 0"),
    (["linear_regression.py", "--steps", "0"], "argument --steps: must be at least 1"),
    (["mlp.py", "--every", "x"], "argument --every: expected a whole number, got 'x'"),
])
def test_example_arguments_are_checked(argv, message):
    done = _example(*argv)
    assert done.returncode == 2
    assert message in done.stderr


@pytest.mark.parametrize("script", ["tensors_tour.py", "autograd_tour.py", "rosenbrock.py",
                                    "linear_regression.py", "mlp.py"])
def test_every_example_answers_help(script):
    done = _example(script, "--help")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage:")
