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
