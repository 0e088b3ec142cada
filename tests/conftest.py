import os

# The README's command runs the suite on two pytest-xdist workers (CI has two cores):
# each worker, and every notebook kernel, bench or CLI process it starts, keeps to one
# thread, so the two do not fight over the cores. Set before torch and JAX load (torch
# takes its thread count from OMP_NUM_THREADS); a value the user set is kept.
if os.environ.get("PYTEST_XDIST_WORKER"):
    for _name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
        os.environ.setdefault(_name, "1")
    os.environ.setdefault(
        "XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    )

import numpy as np
import pyro
import pytest
import torch

import pyrogen


@pytest.fixture(autouse=True)
def _float64_and_seed():
    """Every test starts seeded, in float64, with an empty parameter store."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    pyro.set_rng_seed(0)
    pyro.clear_param_store()
    yield
    torch.set_default_dtype(old)


@pytest.fixture
def faithful() -> np.ndarray:
    return pyrogen.data.load("old_faithful")


def _have_reference_data() -> bool:
    return any((d / "posteriordb").is_dir() for d in pyrogen.data.local_data_dirs())


@pytest.fixture
def reference_data():
    """posteriordb and MNIST copies; CI sets PYROGEN_REQUIRE_DATA=1 so absence fails there."""
    if not _have_reference_data():
        if os.environ.get("PYROGEN_REQUIRE_DATA"):
            pytest.fail("reference data not found: set PYROGEN_DATA or provide ../shared/data")
        pytest.skip("reference data (../shared/data or PYROGEN_DATA) not available")
