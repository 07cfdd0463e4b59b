"""The engine adapters' docstring examples run as doctests, and every public class and function has one."""

from __future__ import annotations

import doctest
import inspect

import pytest

import gbfocal.lightgbm as gfl
import gbfocal.xgboost as gfx

MODULES = [gfx, gfl]


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_docstring_examples_run(module):
    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.NORMALIZE_WHITESPACE)
    tests = [test for test in finder.find(module) if test.examples]
    for test in tests:
        runner.run(test)
    results = runner.summarize(verbose=False)
    assert results.failed == 0
    assert results.attempted > 0


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_every_public_class_and_function_has_parameters_and_an_example(module):
    public = [getattr(module, name) for name in module.__all__]
    missing = [
        obj.__name__
        for obj in public
        if (inspect.isclass(obj) or inspect.isfunction(obj)) and "\n    >>> " not in (obj.__doc__ or "")
    ]
    assert missing == []
    for cls in (gfx.XGBFocalClassifier, gfl.LGBMFocalClassifier):
        doc = cls.__doc__
        assert "    Parameters\n    ----------\n    focal_alpha : " in doc
        assert all(f"    {name} : " in doc for name in ("focal_gamma", "focal_hessian", "focal_proba"))
