"""The NumPyro side of pyro-api, completed where pyrogen's models need it.

pyro-api routes ``pyroapi.pyro``, ``pyroapi.distributions``, ``pyroapi.ops`` ... to a
backend. NumPyro's stock backend (``numpyro.compat``) lacks ``factor``,
``deterministic`` and ``markov`` and its ``ops.zeros`` returns ones; the modules here
fill those gaps so that one model function runs unchanged under Pyro and NumPyro.

The backend is registered under the alias ``"pyrogen-numpyro"``::

    from pyroapi import pyro_backend
    with pyro_backend("pyrogen-numpyro"):
        ...  # pyroapi.pyro.sample is numpyro.sample here
"""

from __future__ import annotations

from contextlib import contextmanager

from pyroapi import dispatch, register_backend

__all__ = ["NUMPYRO_BACKEND", "PYRO_BACKEND", "backend", "uses_pyroapi"]

PYRO_BACKEND = "pyro"
NUMPYRO_BACKEND = "pyrogen-numpyro"

register_backend(
    NUMPYRO_BACKEND,
    {
        "distributions": "numpyro.distributions",
        "handlers": "numpyro.handlers",
        "infer": "numpyro.infer",
        "ops": "pyrogen.compat.numpyro_ops",
        "optim": "numpyro.optim",
        "pyro": "pyrogen.compat.numpyro_pyro",
    },
)


@contextmanager
def backend(name: str):
    """Route pyro-api's modules to ``name`` ("pyro" or "numpyro") inside the block.

    Unlike ``pyroapi.pyro_backend`` this does not install a seed handler, so the
    engines keep control of random numbers.
    """
    alias = {"pyro": PYRO_BACKEND, "numpyro": NUMPYRO_BACKEND}.get(name, name)
    if alias not in dispatch._ALIASES:
        raise ValueError(f"backend: unknown pyro-api backend {name!r}")
    current = dispatch.GenericModule.current_backend
    old = dict(current)
    current.update(dispatch._ALIASES[alias])
    try:
        yield
    finally:
        current.clear()
        current.update(old)


def uses_pyroapi(fn) -> bool:
    """True when ``fn`` reaches Pyro through pyro-api (so it can run under NumPyro).

    A zoo model whose ``model`` delegates to a pyro-api function says so with the class
    attribute ``portable = True``."""
    if getattr(getattr(fn, "__self__", None), "portable", False):
        return True
    fn = getattr(fn, "__func__", fn)
    while hasattr(fn, "__wrapped__"):
        fn = fn.__wrapped__
    namespace = getattr(fn, "__globals__", {})
    names = getattr(getattr(fn, "__code__", None), "co_names", ())
    return any(isinstance(namespace.get(n), dispatch.GenericModule) for n in names)
