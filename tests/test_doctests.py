"""The ``Example:`` blocks in docstrings run as written."""

import doctest
import importlib

import pytest

# pyrogen.fit is also the name of the function, so the module is fetched by name
MODULES = [
    importlib.import_module(name)
    for name in (
        "pyrogen.fit",
        "pyrogen.models.mixture",
        "pyrogen.models.fourier",
        "pyrogen.distributions.fourier",
        "pyrogen.distributions.mixture",
        "pyrogen.nn.fourier_head",
    )
]


@pytest.mark.parametrize("module", MODULES, ids=lambda m: m.__name__)
def test_docstring_examples(module):
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0
    assert result.failed == 0
