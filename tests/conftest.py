"""Shared test fixtures: hypothesis profiles, the test environment and an optional torch.

The tests take the code paths users take, with two options set here, before
ember is imported (it reads the environment once): Triton's interpreter on
(TRITON_INTERPRET=1: the Triton back end's kernels run on the CPU), the verifier on
(EMBER_VERIFY=1: the graph verifier between passes, every cache hit checked
against its graph), and a disk cache in a temporary folder of this session's
own (EMBER_CACHE_DIR), removed at the end, never the user's.
"""

import atexit
import os
import shutil
import tempfile

# NOTE: set before anything imports ember; subprocesses that tests start inherit both
_CACHE_DIR = tempfile.mkdtemp(prefix="ember-test-cache-")
atexit.register(shutil.rmtree, _CACHE_DIR, ignore_errors=True)
os.environ["EMBER_CACHE_DIR"] = _CACHE_DIR
os.environ["EMBER_VERIFY"] = "1"
# NOTE: the Triton back end's tests run its kernels through Triton's interpreter on
# the CPU; Triton reads this when a kernel is defined
os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile("ci", max_examples=40, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=20, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("EMBER_HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(autouse=True)
def _lazy_mode():
    """Every test starts lazy with grad enabled, whatever the one before did."""
    import ember as em
    prev = em.is_eager()
    em.set_eager(False)
    em.set_grad_enabled(True)
    yield
    em.set_eager(prev)
    em.set_grad_enabled(True)


@pytest.fixture(params=["lazy", "eager"])
def exec_mode(request):
    """The test runs once lazily and once in eager mode (the mode's name is the value)."""
    import ember as em
    prev = em.is_eager()
    em.set_eager(request.param == "eager")
    yield request.param
    em.set_eager(prev)
