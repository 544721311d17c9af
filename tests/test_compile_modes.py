"""em.compile guards the Python-side state a trace branched on: em.nn modules' modes."""

import warnings

import numpy as np
import pytest

import ember as em
from ember import nn


def _model():
    em.manual_seed(0)
    m = nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.Dropout(0.5), nn.Linear(8, 3))
    return m.requires_grad_(False)


def _x():
    return em.tensor(np.random.default_rng(0).standard_normal((5, 6)).astype(np.float32))


def test_captured_model_follows_train_and_eval():
    m, x = _model(), _x()
    f = em.compile(lambda x: m(x))
    f(x)
    m.eval()
    expect = m(x).numpy()
    np.testing.assert_allclose(f(x).numpy(), expect, rtol=1e-6)
    np.testing.assert_allclose(f(x).numpy(), expect, rtol=1e-6)  # eval is deterministic
    m.train()
    f(x)
    assert f.stats()["traces"] == 2  # the train-mode trace is replayed again
    text = em.explain(f)
    assert "recompiled because module Sequential: training changed True -> False" in text
    assert "guards: arguments (f32[5,6]); grad mode on; each captured tensor alive" in text
    assert "module Sequential: training=False, 0.training=False, 1.training=False" in text


def test_model_passed_as_argument_follows_train_and_eval():
    m, x = _model(), _x()
    f = em.compile(lambda model, x: model(x))
    f(m, x)
    m[2].eval()  # one submodule: its flag is guarded too
    mean = m[1].running_mean.numpy().copy()
    a = f(m, x).numpy()
    np.testing.assert_allclose(f(m, x).numpy(), a)  # dropout off: one result
    assert not np.array_equal(m[1].running_mean.numpy(), mean)  # batchnorm still trains
    m.eval()
    np.testing.assert_allclose(f(m, x).numpy(), m(x).numpy(), rtol=1e-6)
    assert f.stats()["traces"] == 3


def test_training_flag_set_directly_is_guarded():
    m = nn.Dropout(0.5)
    f = em.compile(m)
    x = em.ones(4, 8)
    f(x)
    m.training = False
    np.testing.assert_array_equal(f(x).numpy(), 1.0)


def test_recompile_limit_message_names_the_module_flag():
    m = nn.Dropout(0.5)
    f = em.compile(lambda x: m(x), recompile_limit=1)
    x = em.ones(2, 3)
    f(x)
    m.eval()
    with pytest.warns(UserWarning, match="module Dropout: training changed True -> False"):
        out = f(x)
    np.testing.assert_array_equal(out.numpy(), 1.0)  # uncompiled, in eval mode


def test_unchanged_modes_cost_no_retrace():
    m, x = _model(), _x()
    m.eval()
    f = em.compile(lambda x: m(x))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for _ in range(3):
            f(x)
        m.eval()  # the same mode again
        f(x)
    assert f.stats()["traces"] == 1
