"""posteriordb's models written in pyro-api: each runs under Pyro and NumPyro with the
priors, constraints and parametrization of its Stan program, so its draws can be set
beside Stan's reference draws (:func:`pyrogen.data.load_posteriordb`)."""

from pyrogen.models.posteriordb.gp import gp_pois_regr
from pyrogen.models.posteriordb.hierarchical import eight_schools_noncentered
from pyrogen.models.posteriordb.regression import (
    dogs,
    glm_poisson,
    kidscore_interaction,
    kilpisjarvi,
    logmesquite_logva,
)
from pyrogen.models.posteriordb.timeseries import arK, arma11, garch11, linear_recursion

__all__ = [
    "POSTERIORS",
    "arK",
    "arma11",
    "dogs",
    "eight_schools_noncentered",
    "garch11",
    "glm_poisson",
    "gp_pois_regr",
    "kidscore_interaction",
    "kilpisjarvi",
    "linear_recursion",
    "logmesquite_logva",
]

# posteriordb's name of each posterior -> the pyro-api model written for it here (called
# with the posterior's data by keyword: pyrogen.diagnostics.posteriordb_arguments)
POSTERIORS = {
    "eight_schools-eight_schools_noncentered": eight_schools_noncentered,
    "kidiq-kidscore_interaction": kidscore_interaction,
    "mesquite-logmesquite_logva": logmesquite_logva,
    "kilpisjarvi_mod-kilpisjarvi": kilpisjarvi,
    "GLM_Poisson_Data-GLM_Poisson_model": glm_poisson,
    "dogs-dogs": dogs,
    "gp_pois_regr-gp_pois_regr": gp_pois_regr,
    "arma-arma11": arma11,
    "garch-garch11": garch11,
    "arK-arK": arK,  # one of the three in ../shared/data: the bench's --quick run needs no checkout
}
