"""Every public function and Tensor method says what it does, and the examples run.

`help(em.X)` and `help(em.Tensor.X)` are the reference a user reads first: each
callable in `em.__all__` and each public Tensor method has a docstring, an alias
names what it aliases, and the `>>>` examples in the tracer's modules print what
ember prints (run with doctest, `em` and `np` given as PyTorch's doctests give
`torch`).
"""

import doctest
import importlib
import inspect
import pkgutil

import numpy as np
import pytest

import ember as em
import ember.tracer

FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
MODULES = sorted(m.name for m in pkgutil.iter_modules(ember.tracer.__path__))


def _public_functions() -> dict:
    return {n: getattr(em, n) for n in em.__all__
            if callable(getattr(em, n)) and not inspect.isclass(getattr(em, n))}


def _tensor_methods() -> dict:
    return {n: getattr(em.Tensor, n) for n in dir(em.Tensor)
            if not n.startswith("_") and callable(getattr(em.Tensor, n))}


def _undocumented(objects: dict) -> list:
    return sorted(n for n, f in objects.items() if not (f.__doc__ or "").strip())


def test_every_public_function_has_a_docstring():
    assert not _undocumented(_public_functions())


def test_every_tensor_method_has_a_docstring():
    assert not _undocumented(_tensor_methods())


def test_aliases_name_what_they_alias():
    """`em.multiply` shares `em.mul`'s docstring, which must then say `multiply`."""
    functions = _public_functions()
    aliases = {n: f for n, f in functions.items()
               if getattr(f, "__name__", n) != n and f.__name__ in functions}
    methods = _tensor_methods()
    aliases.update({n: f for n, f in methods.items()
                    if getattr(f, "__name__", n) != n and f.__name__ in methods})
    assert {"multiply", "negative", "swapaxes", "clip", "concat", "nelement"} <= set(aliases)
    unnamed = sorted(n for n, f in aliases.items() if n not in f.__doc__)
    assert not unnamed, f"aliases whose docstring does not name them: {unnamed}"


def test_compile_help_says_what_is_captured_and_what_breaks_the_graph():
    doc = em.compile.__doc__
    for words in ("captured", "closures", "globals", "attributes", "graph break", ".item()",
                  "fullgraph"):
        assert words in doc, words


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name):
    module = importlib.import_module(f"ember.tracer.{name}")
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=FLAGS)
    failures = []
    for test in finder.find(module, globs={**vars(module), "em": em, "np": np}):
        result = runner.run(test, out=failures.append, clear_globs=True)
        assert result.failed == 0, "".join(failures)
    em.set_printoptions(profile="default")  # NOTE: an example may change them
