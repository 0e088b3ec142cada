"""``pyroapi.pyro`` for NumPyro: the primitives pyrogen's portable models use."""

from numpyro.contrib.control_flow import scan  # noqa: F401
from numpyro.primitives import (  # noqa: F401
    deterministic,
    factor,
    module,
    param,
    plate,
    sample,
    subsample,
)


def markov(*args, **kwargs):
    """NumPyro's ``markov`` lives in its funsor contrib module (``pip install funsor``)."""
    from numpyro.contrib.funsor import markov as _markov

    return _markov(*args, **kwargs)
