"""Shared test fixtures: hypothesis profiles and an optional torch."""

import os

import pytest
from hypothesis import HealthCheck, settings

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
