"""The package as users install it: a wheel built from the repository imports from any
directory, the repository root included, and lands nothing generic in site-packages."""

import os
import pathlib
import subprocess
import sys
import zipfile

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> pathlib.Path:
    out = tmp_path_factory.mktemp("wheel")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
         "-w", str(out), str(ROOT)], capture_output=True, text=True, cwd=out)
    if done.returncode != 0:
        pytest.fail(f"building the wheel failed:\n{done.stderr[-2000:]}")
    (path,) = out.glob("ember-*.whl")
    return path


def test_wheel_holds_only_the_ember_package(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"ember"}
    for member in ("ember/__init__.py", "ember/py.typed", "ember/benchmarks/__main__.py",
                   "ember/tracer/tensor.py", "ember/ir/passes/fusion.py"):
        assert member in names
    meta = next(n for n in names if n.endswith(".dist-info/METADATA"))
    text = zipfile.ZipFile(wheel).read(meta).decode()
    import ember
    assert f"Version: {ember.__version__}" in text
    assert "MIT" in text


def test_installed_wheel_imports_from_the_repository_root(wheel, tmp_path):
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target",
                    str(target), str(wheel)], check=True, capture_output=True)
    # NOTE: -S keeps site-packages (and the editable install's path hook) out; NumPy's and
    # networkx's folders come back through PYTHONPATH, after the installed wheel.
    deps = {str(pathlib.Path(np.__file__).parent.parent)}
    import networkx
    deps.add(str(pathlib.Path(networkx.__file__).parent.parent))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(target), *sorted(deps)])}
    code = ("import ember as em, ember.benchmarks.cases as c; "
            "print(em.__file__); print((em.arange(4) * 2).sum().item(), len(c.CASES) > 0)")
    done = subprocess.run([sys.executable, "-S", "-c", code], cwd=ROOT, env=env,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    first, second = done.stdout.split("\n")[:2]
    assert first.startswith(str(target))
    assert second == "12 True"


def test_importing_the_benchmarks_changes_no_environment_variable():
    code = ("import os; before = dict(os.environ); import ember.benchmarks, "
            "ember.benchmarks.__main__; print(dict(os.environ) == before)")
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_THREAD_TIMEOUT"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "True"
