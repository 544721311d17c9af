"""The compiled-graph cache: keys, hits and misses, eviction, the disk store.

Subprocess tests run a small script under a temporary EMBER_CACHE_DIR and read
the cache counters it prints, so "loaded from disk in a new process" is what
is tested, not an in-process imitation.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from helpers import on_threads

import ember as em
from ember.runtime import cache, options
from ember.runtime.compiled import compiled_for


@pytest.fixture(autouse=True)
def _fresh(tmp_path):
    saved = (options.cache_dir, options.cache, options.cache_entries, options.cache_bytes,
             options.backend)
    options.backend = "auto"  # these tests are about the compiled path, whatever the env
    options.cache_dir = str(tmp_path / "cache")
    options.cache = True
    cache.clear()
    yield
    (options.cache_dir, options.cache, options.cache_entries, options.cache_bytes,
     options.backend) = saved
    cache.clear()


def f(x):
    return ((x * 3).exp() + 1).sum()


def test_same_structure_hits_and_other_data_does_not_matter():
    a = f(em.tensor([1.0, 2.0])).item()
    b = f(em.tensor([3.0, -4.0])).item()
    s = cache.stats()
    assert (s.misses, s.hits, s.compiles) == (1, 1, 1)
    assert a == pytest.approx(np.exp(3) + np.exp(6) + 2)
    assert b == pytest.approx(np.exp(9) + np.exp(-12) + 2)


def test_other_shapes_dtypes_and_special_constants_miss():
    f(em.tensor([1.0, 2.0])).item()
    f(em.tensor([1.0, 2.0, 3.0])).item()
    f(em.tensor([1.0, 2.0], dtype=em.float64)).item()
    ((em.tensor([1.0, 2.0]) * 2).exp() + 1).sum().item()  # 2 is keyed by value
    assert cache.stats().misses == 4 and cache.stats().hits == 0


def test_other_scalar_values_hit():
    f(em.tensor([1.0, 2.0])).item()
    # NOTE: 4 is a runtime parameter of the program f compiled with 3
    out = ((em.tensor([1.0, 2.0]) * 4).exp() + 1).sum().item()
    assert cache.stats().misses == 1 and cache.stats().hits == 1
    assert out == pytest.approx(np.exp(4) + np.exp(8) + 2)


def test_stats_are_inspectable_and_clear_resets_them():
    f(em.tensor([1.0])).item()
    s = cache.stats()
    assert s.entries == 1 and s.bytes > 0 and s.disk_writes == 1
    cache.clear()
    assert cache.stats().misses == 0 and len(cache.memory) == 0


def rosenbrock_steps(x, n):
    for _ in range(n):
        f = (1 - x[0]) ** 2 + 5 * (x[1] - x[0] ** 2) ** 2
        f.backward()
        with em.no_grad():
            x.sub_(0.01 * x.grad)
            x.grad.zero_()


def test_rosenbrock_loop_compiles_once():
    options.cache = False
    x = em.tensor([-1.0, 1.0], requires_grad=True)
    rosenbrock_steps(x, 3)
    warm = cache.stats().compiles
    assert warm <= 3  # the first step (no .grad yet) differs from the rest
    rosenbrock_steps(x, 200)
    assert cache.stats().compiles == warm
    assert cache.stats().hits >= 200
    ref = em.tensor([-1.0, 1.0], requires_grad=True)
    options.backend, saved = "interpreter", options.backend
    try:
        rosenbrock_steps(ref, 203)
    finally:
        options.backend = saved
    assert np.array_equal(x.detach().numpy(), ref.detach().numpy())


def test_random_numbers_do_not_recompile():
    options.cache = False
    em.manual_seed(0)
    draws = [(em.rand(5) * 2).sum().item() for _ in range(5)]
    assert len(set(draws)) == 5
    assert cache.stats().compiles == 1 and cache.stats().hits == 4


def test_lru_eviction_by_entries():
    options.cache = False
    options.cache_entries = 2
    def g(n):
        return f(em.tensor(np.arange(n, dtype=np.float32))).item()

    for n in (1, 2, 3):
        g(n)
    assert cache.stats().evictions == 1 and len(cache.memory) == 2
    g(3)  # still there
    g(1)  # evicted: compiled again
    assert cache.stats().compiles == 4


def test_lru_eviction_by_bytes():
    options.cache = False
    f(em.tensor([1.0])).item()
    one = cache.stats().bytes
    options.cache_bytes = int(one * 2.5)
    for n in (2, 3, 4):
        f(em.tensor(np.arange(n, dtype=np.float32))).item()
    assert cache.stats().bytes <= options.cache_bytes and cache.stats().evictions >= 2


def test_cache_off_writes_nothing():
    options.cache = False
    f(em.ones(2)).item()
    assert not os.path.exists(options.cache_dir)


SCRIPT = textwrap.dedent("""
    import json, sys, time
    t0 = time.perf_counter()
    import ember as em
    from ember.runtime import cache
    x = em.tensor([0.5, 1.5, 2.5])
    y = ((x * 3).exp() + 1).sum()
    t1 = time.perf_counter()
    value = y.item()
    t2 = time.perf_counter()
    s = cache.stats()
    print(json.dumps({"value": value, "compiles": s.compiles, "disk_hits": s.disk_hits,
                      "disk_rejects": s.disk_rejects, "disk_writes": s.disk_writes,
                      "ms": (t2 - t1) * 1e3}))
""")


def script_env(cache_dir) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("EMBER_BACKEND", "EMBER_EAGER")}
    return dict(env, EMBER_CACHE_DIR=str(cache_dir), EMBER_CACHE="1")


def run_script(cache_dir, script=SCRIPT):
    env = script_env(cache_dir)
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                         text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def entries(cache_dir):
    return [os.path.join(root, name) for root, _, names in os.walk(cache_dir)
            for name in names]


def test_disk_round_trip_in_a_new_process(tmp_path):
    first = run_script(tmp_path)
    assert first["compiles"] == 1 and first["disk_writes"] == 1
    second = run_script(tmp_path)
    assert second["compiles"] == 0 and second["disk_hits"] == 1
    assert second["value"] == first["value"]
    (path,) = entries(tmp_path)
    with open(path) as fh:
        assert '"kernels": 1' in fh.read()  # metadata travels with the source


@pytest.mark.parametrize("damage", ["truncate", "edit", "garbage"])
def test_corrupt_entry_is_recompiled_and_rewritten(tmp_path, damage):
    first = run_script(tmp_path)
    (path,) = entries(tmp_path)
    with open(path) as fh:
        text = fh.read()
    if damage == "truncate":
        text = text[: len(text) // 2]
    elif damage == "edit":
        text = text.replace("np.exp(", "np.sin(")
        assert "np.sin(" in text
    else:
        text = "raise SystemExit('must never run')\n"
    with open(path, "w") as fh:
        fh.write(text)
    second = run_script(tmp_path)
    assert second["disk_rejects"] == 1 and second["compiles"] == 1
    assert second["value"] == first["value"]
    third = run_script(tmp_path)  # the rewritten entry is good again
    assert third["disk_hits"] == 1 and third["compiles"] == 0


def test_two_processes_writing_the_same_entry(tmp_path):
    env = script_env(tmp_path)
    procs = [subprocess.Popen([sys.executable, "-c", SCRIPT], env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert results[0]["value"] == results[1]["value"]
    files = entries(tmp_path)
    assert len(files) == 1 and not any(".tmp-" in p for p in files)
    third = run_script(tmp_path)
    assert third["disk_hits"] == 1 and third["compiles"] == 0


def test_compiled_for_reports_kernels():
    x = em.tensor([1.0, 2.0])
    assert compiled_for((x * 2 + 1).exp()).kernels == 1


def test_realisations_on_several_threads():
    options.cache = False

    def work(seed):
        rng = np.random.default_rng(seed)
        for _ in range(30):
            a = rng.standard_normal(5).astype(np.float32)
            assert f(em.tensor(a)).item() == pytest.approx(
                float((np.exp(a * 3) + 1).sum()), rel=1e-5)

    assert not on_threads(work)
    assert cache.stats().hits + cache.stats().misses == 120


def test_on_by_default():
    from ember.runtime.config import Options
    assert Options().backend in ("auto", "numpy") or "EMBER_BACKEND" in os.environ
    f(em.tensor([1.0, 2.0])).item()
    assert cache.stats().misses == 1


def test_disk_cache_keeps_the_most_recently_used_files(monkeypatch):
    monkeypatch.setattr(options, "disk_cache_entries", 3)
    monkeypatch.setattr(cache.DiskCache, "PRUNE_EVERY", 1)  # prune on every write
    x = em.tensor([0.5, 1.5])

    def graph(k):
        return (x ** (k + 3.0)).exp().sum()  # an exponent is keyed by value
    written = {}
    for k in range(6):  # six graphs, written one after another
        before = set(entries(options.cache_dir))
        graph(k).item()
        (new,) = set(entries(options.cache_dir)) - before
        os.utime(new, (1000.0 + k, 1000.0 + k))  # distinct, increasing use times
        written[k] = new
    assert sorted(entries(options.cache_dir)) == sorted(written[k] for k in (3, 4, 5))
    # loading a graph touches its file: it outlives files used before it
    cache.clear()
    graph(3).item()
    assert cache.stats().disk_hits == 1
    assert cache.disk.prune(keep=1) == 2
    assert entries(options.cache_dir) == [written[3]]


# ---------------------------------------------------------------------------
# the disk cache runs the code it loads: it trusts only what is the user's alone

def _compile_one(k: float = 3.0) -> float:
    return ((em.tensor([0.5, 1.5]) * k).exp() + 1).sum().item()


def _fresh_process():
    """Forget what this process holds, as a new process would have."""
    cache.clear()
    cache.disk.trusted = None
    cache.disk.refused.clear()


@pytest.fixture
def new_disk():
    _fresh_process()
    yield
    _fresh_process()


def test_the_tests_use_a_temporary_cache_and_the_verifier():
    from ember.runtime.config import Options
    env = Options()
    assert env.cache_dir == os.environ["EMBER_CACHE_DIR"]
    assert not env.cache_dir.startswith(os.path.expanduser("~") + os.sep)
    assert env.verify


def test_an_empty_cache_dir_means_the_default(monkeypatch):
    from ember.runtime.config import Options, default_cache_dir
    monkeypatch.setenv("EMBER_CACHE_DIR", "")
    assert Options().cache_dir == default_cache_dir()
    assert default_cache_dir() == os.path.join(os.path.expanduser("~"), ".cache", "ember")


def test_folders_and_files_are_private_whatever_the_umask(new_disk, tmp_path):
    options.cache_dir = str(tmp_path / "a" / "b")
    old = os.umask(0)
    try:
        _compile_one()
    finally:
        os.umask(old)
    (path,) = entries(tmp_path)
    assert oct(os.stat(path).st_mode & 0o777) == oct(0o600)
    for folder in (tmp_path / "a", tmp_path / "a" / "b", os.path.dirname(path)):
        assert oct(os.stat(folder).st_mode & 0o777) == oct(0o700), folder


def _refused_once(tmp_path, what: str):
    """Two graphs compile with the disk cache refused: one warning, naming `what`."""
    with pytest.warns(RuntimeWarning) as caught:
        a = _compile_one(3.0)
        b = _compile_one(4.0)
    messages = [str(w.message) for w in caught if "disk cache" in str(w.message)]
    assert len(messages) == 1 and what in messages[0], messages
    assert a == pytest.approx(np.exp(1.5) + np.exp(4.5) + 2, rel=1e-5)
    assert b == pytest.approx(np.exp(2.0) + np.exp(6.0) + 2, rel=1e-5)
    assert cache.stats().disk_hits == 0 and cache.stats().disk_writes == 0
    return messages[0]


def test_a_group_writable_cache_folder_is_refused(new_disk, tmp_path):
    root = tmp_path / "cache"
    root.mkdir()
    root.chmod(0o775)
    options.cache_dir = str(root)
    message = _refused_once(tmp_path, str(root))
    assert f"chmod -R go-w {root}" in message
    assert entries(root) == []


def test_a_cache_folder_of_another_user_is_refused(new_disk, tmp_path, monkeypatch):
    root = tmp_path / "cache"
    root.mkdir(mode=0o700)
    options.cache_dir = str(root)
    monkeypatch.setattr(cache, "_uid", lambda: os.getuid() + 1)
    message = _refused_once(tmp_path, str(root))
    assert "EMBER_CACHE_DIR" in message


def _planted(tmp_path):
    """The file of `_compile_one()`'s program, written, then forgotten in memory."""
    options.cache_dir = str(tmp_path / "cache")
    value = _compile_one()
    (path,) = entries(tmp_path / "cache")
    cache.clear()
    return path, value


def test_a_file_of_another_user_is_not_run(new_disk, tmp_path, monkeypatch):
    path, value = _planted(tmp_path)
    # NOTE: the folders were checked when the file was written; only the file's
    # owner differs (as if another user had put it there)
    monkeypatch.setattr(cache, "_uid", lambda: os.getuid() + 1)
    with pytest.warns(RuntimeWarning, match="belongs to user"):
        assert _compile_one() == value
    assert cache.stats().disk_hits == 0 and cache.stats().compiles == 1


def test_a_group_writable_file_is_not_run(new_disk, tmp_path):
    path, value = _planted(tmp_path)
    os.chmod(path, 0o664)
    with pytest.warns(RuntimeWarning, match="writable by group or others"):
        assert _compile_one() == value
    assert cache.stats().disk_hits == 0 and cache.stats().compiles == 1


def test_a_symbolic_link_planted_in_the_cache_is_not_followed(new_disk, tmp_path):
    path, value = _planted(tmp_path)
    elsewhere = tmp_path / "elsewhere.py"
    os.replace(path, elsewhere)  # a valid program, reached through a link
    os.symlink(elsewhere, path)
    with pytest.warns(RuntimeWarning, match="symbolic link"):
        assert _compile_one() == value
    assert cache.stats().disk_hits == 0 and cache.stats().compiles == 1
    assert os.path.islink(path)  # nothing was written through it either


def test_a_linked_version_folder_is_not_followed(new_disk, tmp_path):
    path, value = _planted(tmp_path)
    folder = os.path.dirname(path)
    os.replace(folder, tmp_path / "moved")
    os.symlink(tmp_path / "moved", folder)
    _fresh_process()
    with pytest.warns(RuntimeWarning, match="not a regular folder"):
        assert _compile_one() == value
    assert cache.stats().disk_hits == 0


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_planted_in_the_cache_does_not_hang_the_load(new_disk, tmp_path):
    path, value = _planted(tmp_path)
    os.unlink(path)
    os.mkfifo(path, 0o600)
    with pytest.warns(RuntimeWarning, match="not a regular file"):
        assert _compile_one() == value


# ---------------------------------------------------------------------------
# what a stored program is keyed by, and what a loaded one must give

def _copy_compiler(dest):
    for package in cache._COMPILER_PACKAGES:
        shutil.copytree(os.path.join(cache._EMBER_DIR, package), dest / package,
                        ignore=shutil.ignore_patterns("__pycache__"))


@pytest.mark.parametrize("change", ["ir/build.py", "ir/passes/pipeline.py", "ir/node.py",
                                    "ir/view.py", "codegen/numpy_gen.py", "runtime/threads.py",
                                    "new ir/passes/extra.py", "new codegen/more.py"])
def test_every_compiler_module_is_in_the_key(tmp_path, change):
    _copy_compiler(tmp_path)
    before = cache.compiler_digest(str(tmp_path))
    assert before == cache.compiler_digest()  # the copy is the compiler, byte for byte
    if change.startswith("new "):
        (tmp_path / change[4:]).write_text("X = 1\n")
    else:
        with open(tmp_path / change, "a") as fh:
            fh.write("\n# an edit\n")
    assert cache.compiler_digest(str(tmp_path)) != before
    assert cache.versions().endswith(before[:16])


def test_a_loaded_program_that_gives_the_wrong_outputs_is_recompiled(new_disk, tmp_path):
    options.cache_dir = str(tmp_path / "cache")
    x = em.tensor([0.5, 1.5])
    want = f(x).item()  # a scalar
    (path,) = entries(tmp_path / "cache")
    ((x * 3).exp() + 1).numpy()  # the same without the sum: a program with one output of (2,)
    (other,) = set(entries(tmp_path / "cache")) - {path}
    shutil.copyfile(other, path)  # whole and checksummed, but another graph's
    cache.clear()
    assert f(em.tensor([0.5, 1.5])).item() == want
    s = cache.stats()
    assert (s.disk_hits, s.disk_rejects, s.compiles) == (1, 1, 1)
    cache.clear()  # it was rewritten: the next process loads the right one
    assert f(em.tensor([0.5, 1.5])).item() == want
    assert (cache.stats().disk_hits, cache.stats().compiles) == (1, 0)


def test_the_verifier_checks_every_hit_against_its_graph(monkeypatch):
    """The structural key must name the graph fully; were it to leave something out,
    the verifier (on in the tests) says which graph was served for which."""
    assert options.verify
    options.cache = False
    f(em.tensor([1.0, 2.0])).item()
    real_walk = cache.walk
    monkeypatch.setattr(cache, "walk", lambda outputs, *a, **k: (
        ("same",), *real_walk(outputs, *a, **k)[1:]))
    f(em.tensor([1.0, 2.0])).item()  # the same graph: fine
    with pytest.raises(AssertionError, match="served the program"):
        ((em.tensor([1.0, 2.0]) * 2).exp() + 1).sum().item()
