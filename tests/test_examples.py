"""Every example script runs end to end with tiny settings (a subprocess each) and prints
what it promises; the CNN's full run (95% test accuracy, and its --compare) is in the slow
lane."""

import pathlib
import subprocess
import sys

import pytest

import ember as em

ROOT = pathlib.Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

HAS_CONV = hasattr(em.nn, "Conv2d") and hasattr(em.nn, "MaxPool2d")
needs_conv = pytest.mark.skipif(not HAS_CONV, reason="em.nn.Conv2d/MaxPool2d are not there yet")


def run(*argv: str, timeout: float = 300, code: str | None = None) -> subprocess.CompletedProcess:
    command = [sys.executable, "-c", code, *argv] if code else [sys.executable, *argv]
    return subprocess.run(command, cwd=EXAMPLES, capture_output=True, text=True,
                          timeout=timeout)


def ok(done: subprocess.CompletedProcess) -> str:
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


TINY_TRANSFORMER = ("--steps", "2", "--every", "1", "--sample", "5", "--batch", "2",
                    "--context", "8", "--dim", "8", "--heads", "2", "--layers", "1")


def test_pytorch_programs_run_with_only_the_import_changed():
    out = ok(run("pytorch_examples.py", "--steps", "4", "--every", "2"))
    for name in ("polynomial", "legendre", "dynamic"):
        assert f"== {name} (ember)" in out
    assert "Result: y = " in out and " x^3" in out  # the polynomial's fit
    assert " * P3(" in out  # LegendrePolynomial3's fit
    assert out.count("\n3 ") == 3  # `t loss` at t = 3, as the tutorial prints it


def test_pytorch_programs_run_on_torch_from_the_same_text():
    pytest.importorskip("torch")
    out = ok(run("pytorch_examples.py", "--steps", "2", "--every", "1", "--only", "legendre",
                 "--torch"))
    assert "== legendre (torch)" in out and " * P3(" in out


def test_char_transformer_trains_samples_and_reloads():
    out = ok(run("char_transformer.py", *TINY_TRANSFORMER, "--compare", "--compare-steps", "1"))
    assert "step     2/2  loss " in out and "steps/s" in out
    assert "sample, after the prompt" in out
    loss = out.split("reloaded: loss ")[1].split()[0]
    assert f"(trained model: {loss})" in out
    assert "ember compiled" in out and "ember lazy" in out and "ms per step" in out


def test_char_transformer_for_a_time_schedules_and_warns_of_nothing():
    tiny = TINY_TRANSFORMER[2:]  # without --steps
    done = run("char_transformer.py", *tiny, "--seconds", "0.5", "--every", "1000")
    out = ok(done)
    assert "compiled steps (AdamW, cosine schedule" in out
    # the scheduler sees the optimizer's step although the compiled step replays it
    assert "Warning" not in done.stderr, done.stderr


@pytest.mark.parametrize("argv, message", [
    (("char_transformer.py", "--heads", "3"), "--dim 64 is not divisible by 3 heads"),
    (("char_transformer.py", "--seconds", "0"), "argument --seconds: must be a finite number"),
    (("char_transformer.py", "--save", "/no/such/folder/w.npz"), "--save: the folder"),
    (("cnn_digits.py", "--dropout", "1.5"), "argument --dropout: must be in [0, 1)"),
    (("cnn_digits.py", "--batch", "5000"), "argument --batch: the training set has 1437"),
    (("pytorch_examples.py", "--only", "cnn"), "argument --only: invalid choice"),
])
def test_example_arguments_are_checked(argv, message):
    done = run(*argv)
    assert done.returncode == 2
    assert message in done.stderr


@pytest.mark.parametrize("script", ["char_transformer.py", "cnn_digits.py",
                                    "pytorch_examples.py"])
def test_examples_answer_help(script):
    out = ok(run(script, "--help"))
    assert out.startswith("usage:") and "(default:" in out


def test_cnn_without_scikit_learn_says_what_to_install():
    # NOTE: None in sys.modules makes `import sklearn` raise ImportError.
    code = ("import runpy, sys; sys.modules['sklearn'] = None; sys.argv[0] = 'cnn_digits.py'; "
            "runpy.run_path('cnn_digits.py', run_name='__main__')")
    done = run("--epochs", "1", code=code)
    assert done.returncode == 1
    assert "pip install 'ember[examples]'" in done.stderr


@needs_conv
def test_cnn_digits_runs_a_few_steps_and_reloads():
    pytest.importorskip("sklearn")
    out = ok(run("cnn_digits.py", "--epochs", "1", "--steps", "3", "--channels", "4"))
    assert "epoch   1  loss " in out and "test accuracy" in out
    assert "reloaded: test accuracy" in out


@needs_conv
@pytest.mark.slow
def test_cnn_digits_reaches_95_percent():
    pytest.importorskip("sklearn")
    out = ok(run("cnn_digits.py", "--compare", "--compare-steps", "2", timeout=1800))
    accuracy = float(out.split("\ntest accuracy ")[1].split("%")[0])
    assert accuracy >= 95.0, out
    assert "ember compiled" in out and "ember lazy" in out and "ms per step" in out
