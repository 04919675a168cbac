"""The examples in the docstrings run and print what they show (so they cannot rot).

Add a module to ``MODULES`` when you give its docstrings examples.
"""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["scdsim.exact.markov"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run_and_print_what_they_show(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.attempted > 0, f"{name} has no docstring examples"
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples failed in {name}"


def test_every_public_exact_engine_function_has_an_example():
    module = importlib.import_module("scdsim.exact.markov")
    missing = [name for name in module.__all__
               if callable(getattr(module, name)) and not isinstance(getattr(module, name), type)
               and ">>>" not in (getattr(module, name).__doc__ or "")]
    assert missing == []
