"""EMBER_* variables are validated when read, and debug output goes through
logging.getLogger("ember"), naming the realisation each line belongs to."""

import logging
import os
import subprocess
import sys

import pytest

import ember as em
from ember.runtime import config


@pytest.mark.parametrize("name, value, message", [
    ("EMBER_DEBUG", "yes", "EMBER_DEBUG='yes' is not accepted: use 0 (off), 1"),
    ("EMBER_DEBUG", "3", "EMBER_DEBUG='3' is not accepted"),
    ("EMBER_BACKEND", "nmupy", "EMBER_BACKEND='nmupy' is not a back end: use one of auto, numpy"),
    ("EMBER_NUM_THREADS", "-1", "EMBER_NUM_THREADS='-1' is not accepted: use a whole number"),
    ("EMBER_TILE", "big", "EMBER_TILE='big' is not accepted"),
    ("EMBER_EAGER", "maybe", "EMBER_EAGER='maybe' is not a yes/no value"),
    ("EMBER_CACHE", "2", "EMBER_CACHE='2' is not a yes/no value"),
    ("EMBER_AUTOTUNE", "fast", "EMBER_AUTOTUNE='fast' is not a yes/no value"),
])
def test_a_bad_variable_is_named_with_what_is_accepted(name, value, message, monkeypatch):
    monkeypatch.setenv(name, value)
    with pytest.raises(config.ConfigError) as info:
        config.Options()
    assert message in str(info.value)
    assert isinstance(info.value, ValueError)


def test_import_fails_with_the_message_not_a_bare_value_error():
    env = {**os.environ, "EMBER_DEBUG": "yes"}
    done = subprocess.run([sys.executable, "-c", "import ember"], env=env,
                          capture_output=True, text=True)
    assert done.returncode != 0
    assert "ConfigError: EMBER_DEBUG='yes' is not accepted" in done.stderr


@pytest.mark.parametrize("name, value, field, expected", [
    ("EMBER_DEBUG", "", "debug", 0), ("EMBER_DEBUG", "2", "debug", 2),
    ("EMBER_BACKEND", "Interpreter", "backend", "interpreter"),
    ("EMBER_EAGER", "on", "eager_default", True), ("EMBER_CACHE", "off", "cache", False),
    ("EMBER_NUM_THREADS", "3", "num_threads", 3), ("EMBER_TILE", "4096", "tile_elems", 4096),
    ("EMBER_AUTOTUNE", "on", "autotune", True), ("EMBER_AUTOTUNE", "0", "autotune", False),
])
def test_accepted_values(name, value, field, expected, monkeypatch):
    monkeypatch.setenv(name, value)
    assert getattr(config.Options(), field) == expected


def test_debug_output_goes_through_the_ember_logger(monkeypatch, caplog):
    monkeypatch.setattr(config.options, "debug", 1)
    with caplog.at_level(logging.DEBUG, logger="ember"):
        x = em.arange(7.0) * 3 + 1.5  # a graph no other test builds: a compile
        x.tolist()
    lines = [r.getMessage() for r in caplog.records if r.name == "ember"]
    assert any(line.startswith("run ") and "compiled" in line for line in lines), lines
    assert any(line.startswith("run ") and "output(s) in" in line for line in lines), lines



def test_a_warm_disk_cache_still_shows_what_ran(tmp_path):
    env = {**os.environ, "EMBER_DEBUG": "2", "EMBER_CACHE_DIR": str(tmp_path)}
    code = "import ember as em; print((em.arange(5.0).exp() * 2).sum().item())"
    first, second = (subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                                    text=True) for _ in range(2))
    assert first.returncode == second.returncode == 0, second.stderr
    assert "compiled" in first.stderr and "def program" in first.stderr
    assert "loaded 1 kernels from the disk cache" in second.stderr or \
        "kernels from the disk cache, " + str(tmp_path) in second.stderr
    assert str(tmp_path) in second.stderr and "def program" in second.stderr
