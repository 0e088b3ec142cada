"""posteriordb's models written in pyro-api: each runs under Pyro and NumPyro with the
priors, constraints and parametrization of its Stan program, so its draws can be set
beside Stan's reference draws (:func:`pyrogen.data.load_posteriordb`)."""

from pyrogen.models.posteriordb.gp import gp_pois_regr

__all__ = ["gp_pois_regr"]
