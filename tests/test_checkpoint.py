import os

import pytest
import torch

from pyrogen.checkpoint import (
    CheckpointError,
    atomic_write,
    describe,
    fingerprint,
    load_checkpoint,
    save_checkpoint,
)


def test_round_trip(tmp_path):
    path = tmp_path / "run.ckpt"
    run = fingerprint(model="m", data=torch.arange(4.0))
    save_checkpoint(path, {"step": 3, "value": torch.ones(2)}, run)
    state = load_checkpoint(path, run)
    assert state["step"] == 3 and torch.equal(state["value"], torch.ones(2))


def test_failed_write_leaves_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "file.bin"
    atomic_write(path, lambda handle: handle.write(b"old"))

    def explode(handle):
        handle.write(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(path, explode)
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["file.bin"]


def test_truncated_checkpoint_is_refused(tmp_path):
    path = tmp_path / "run.ckpt"
    run = fingerprint(model="m")
    save_checkpoint(path, {"big": torch.randn(1000)}, run)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_checkpoint(path, run)


def test_checkpoint_of_another_run_is_refused(tmp_path):
    path = tmp_path / "run.ckpt"
    save_checkpoint(path, {}, fingerprint(model="a", data=torch.zeros(3)))
    with pytest.raises(CheckpointError, match="belongs to another run.*data"):
        load_checkpoint(path, fingerprint(model="a", data=torch.ones(3)))


def test_foreign_file_is_refused(tmp_path):
    path = tmp_path / "other.pt"
    torch.save({"weights": torch.zeros(2)}, path)
    with pytest.raises(CheckpointError, match="not a pyrogen checkpoint"):
        load_checkpoint(path, {})


def test_describe_is_the_same_in_every_process_and_tells_settings_apart():
    import pyro

    from pyrogen.infer.svi import SharedAdam

    adam = describe(pyro.optim.Adam({"lr": 0.01, "betas": (0.9, 0.99)}))
    assert adam == describe(pyro.optim.Adam({"betas": (0.9, 0.99), "lr": 0.01}))
    assert adam == "PyroOptim(Adam, {'betas': (0.9, 0.99), 'lr': 0.01})"
    assert adam != describe(pyro.optim.Adam({"lr": 0.02, "betas": (0.9, 0.99)}))
    assert describe(SharedAdam(0.01)) != describe(SharedAdam(0.01, weight_decay=0.1))
    assert describe(SharedAdam(0.01)) == "SharedAdam(Adam, {'lr': 0.01})"
    assert describe(pyro.infer.Trace_ELBO(num_particles=4)) == "Trace_ELBO"  # no address
    assert describe(test_round_trip) == "test_round_trip"
    assert describe(torch.optim.Adam) == "Adam"
    assert describe(None) == "None" and describe("adam") == "'adam'"


class _Payload:
    """A pickle that creates a file when it is loaded: what a crafted checkpoint does."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def _crafted(path, marker):
    payload = {"format": "pyrogen-checkpoint", "version": 1, "fingerprint": {}}
    torch.save({**payload, "state": _Payload(marker)}, path)


def test_a_crafted_checkpoint_is_refused_and_runs_nothing(tmp_path):
    import numpy as np
    from pyrogen.models import GaussianMixture

    import pyrogen
    from pyrogen.cli import main

    path, marker = tmp_path / "evil.ckpt", tmp_path / "pwned"
    _crafted(path, marker)
    with pytest.raises(CheckpointError, match="was not loaded: it holds objects"):
        load_checkpoint(path, {})
    with pytest.raises(CheckpointError, match="trust_checkpoint=True"):
        pyrogen.fit(lambda: None, checkpoint=path, num_steps=2, progress=False)
    x = np.random.default_rng(0).normal(size=(50, 2))
    with pytest.raises(CheckpointError):
        pyrogen.fit(GaussianMixture(2), x, method="em", checkpoint=path)
    with pytest.raises(SystemExit, match="was not loaded"):
        main(["fit", "gmm", "--checkpoint", str(path), "--out", str(tmp_path / "out")])
    assert not marker.exists()


def test_format_one_checkpoints_load_only_when_trusted(tmp_path):
    import numpy as np

    path = tmp_path / "old.ckpt"
    state = {"losses": np.arange(3.0), "rng": {"numpy": ("MT19937", np.arange(4, dtype=np.uint32))}}
    payload = {"format": "pyrogen-checkpoint", "version": 1, "fingerprint": {"model": "'m'"}}
    torch.save({**payload, "state": state}, path)  # as pyrogen 0.1 wrote them: a pickle
    with pytest.raises(CheckpointError, match="format 1"):
        load_checkpoint(path, {"model": "'m'"})
    with pytest.warns(UserWarning, match="trust_checkpoint=True, which runs the code"):
        loaded = load_checkpoint(path, {"model": "'m'"}, trust=True)
    np.testing.assert_array_equal(loaded["losses"], np.arange(3.0))
    marker = tmp_path / "pwned"
    _crafted(path, marker)  # trusting is what it says: the user's own files only
    with pytest.warns(UserWarning):
        load_checkpoint(path, {}, trust=True)
    assert marker.exists()


def test_the_safe_encoding_round_trips_what_engines_store(tmp_path):
    import numpy as np
    from pyro.distributions import constraints

    from pyrogen.checkpoint import decode, encode
    from pyrogen.infer.mcmc import MCMCResult

    state = {
        "arrays": [np.arange(5, dtype=dtype) for dtype in ("float64", "uint32", "int8")]
        + [np.arange(5) % 2 == 0],
        "complex": np.ones((2, 2), dtype=np.complex128) * 1j,
        "scalar": np.float32(1.5),
        "rng": ("MT19937", np.arange(624, dtype=np.uint32), 3, 0, 0.0),
        "constraints": [
            constraints.positive,
            constraints.interval(0.0, 2.0),
            constraints.greater_than(torch.tensor(3.0)),
            constraints.independent(constraints.real, 1),
            constraints.corr_cholesky,
            constraints.simplex,
        ],
        "record": MCMCResult(
            {"a": np.zeros((1, 3))}, {"diverging": np.zeros((1, 3), bool)}, "x", 1.0
        ),
    }
    path = tmp_path / "state.ckpt"
    save_checkpoint(path, state, {})
    loaded = load_checkpoint(path, {})
    for got, want in zip(loaded["arrays"], state["arrays"]):
        assert got.dtype == want.dtype and np.array_equal(got, want)
    assert np.array_equal(loaded["complex"], state["complex"])
    assert loaded["scalar"] == np.float32(1.5) and loaded["scalar"].dtype == np.float32
    assert loaded["rng"][0] == "MT19937" and np.array_equal(loaded["rng"][1], state["rng"][1])
    positive, interval, greater, independent, corr, simplex = loaded["constraints"]
    assert positive is constraints.positive and corr is constraints.corr_cholesky
    assert simplex is constraints.simplex
    assert (interval.lower_bound, interval.upper_bound) == (0.0, 2.0)
    assert float(greater.lower_bound) == 3.0 and independent.reinterpreted_batch_ndims == 1
    assert isinstance(loaded["record"], MCMCResult) and loaded["record"].backend == "x"
    assert decode(encode((1, [2.0], {"k": None}))) == (1, [2.0], {"k": None})
    with pytest.raises(CheckpointError, match="cannot store a object safely"):
        encode(object())


@pytest.mark.parametrize("guide", ["mean_field", "full_rank", "low_rank"])
def test_a_resumed_svi_run_retraces_the_uninterrupted_one(tmp_path, guide):
    # AutoMultivariateNormal holds its loc as an nn.Parameter of its own: a resume that
    # replaced the store's tensor instead of overwriting it left the guide at its start
    import pyro
    import pyro.distributions as dist

    import pyrogen

    mean = torch.tensor([1.0, -2.0, 3.0], dtype=torch.float64)
    cov = torch.eye(3, dtype=torch.float64) + 0.5

    def gaussian(mean, cov):
        pyro.sample("z", dist.MultivariateNormal(mean, cov))

    options = dict(guide=guide, seed=3, progress=False, convergence="none")
    whole = pyrogen.fit(gaussian, mean, cov, num_steps=300, **options)
    path = tmp_path / "run.ckpt"
    pyrogen.fit(gaussian, mean, cov, num_steps=150, checkpoint=path, **options)
    resumed = pyrogen.fit(gaussian, mean, cov, num_steps=300, checkpoint=path, **options)
    assert resumed.diagnostics["resumed_from"] == 150
    torch.testing.assert_close(
        torch.as_tensor(resumed.losses), torch.as_tensor(whole.losses), rtol=1e-9, atol=1e-9
    )
