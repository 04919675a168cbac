"""The examples in the docstrings run as printed (doctest), so the documentation cannot drift."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["scdsim.rules", "scdsim.process", "scdsim.agreement", "scdsim.reference"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run_as_printed(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.attempted > 0, f"{name} has no docstring example"
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples of {name} failed"


def test_every_rule_factory_has_a_runnable_example():
    from scdsim import rules

    for factory in (rules.over_accept, rules.lenient, rules.typical, rules.recursive, rules.kseq,
                    rules.optimal, rules.from_spec, rules.spec, rules.sequential_parts):
        doc = factory.__doc__ or ""
        assert ">>> " in doc and "Parameters" in doc or factory is rules.spec, factory.__name__
