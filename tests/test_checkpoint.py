import os

import pytest
import torch

from pyrogen.checkpoint import (
    CheckpointError,
    atomic_write,
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
