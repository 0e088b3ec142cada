"""pyrogen.lightning: SVI, MAP and MLE across processes on PyTorch Lightning (DDP, gloo).

The two-process runs start real processes (spawned from the test, or launched by
Lightning from the ``pyrogen`` command); each costs some seconds of start-up."""

import json
import os
import subprocess
import sys

import numpy as np
import pyro
import pytest
import torch
from pyrogen.models import FVSBN

import pyrogen


def two_binary_columns(n: int = 400, seed: int = 0) -> np.ndarray:
    """x1 ~ Bernoulli(0.3); x2 | x1 ~ Bernoulli(0.8 if x1 else 0.25)."""
    rng = np.random.default_rng(seed)
    x1 = rng.random(n) < 0.3
    x2 = np.where(x1, rng.random(n) < 0.8, rng.random(n) < 0.25)
    return np.stack([x1, x2], 1).astype(np.float32)


def closed_form_fvsbn(x: np.ndarray) -> dict:
    """The maximum-likelihood FVSBN on two binary columns: the first's logit is that of
    its frequency; the second's conditional on the first is saturated, so its bias and
    weight are the logits of the two conditional frequencies."""

    def logit(p):
        return np.log(p / (1 - p))

    x1, x2 = x[:, 0] == 1, x[:, 1] == 1
    low, high = x2[~x1].mean(), x2[x1].mean()
    return {"bias": np.array([logit(x1.mean()), logit(low)]), "w": logit(high) - logit(low)}


class SaveEachRank:
    """A fit callback that writes, on every rank, the parameters at the last step."""

    def __init__(self, folder, last_step: int):
        self.folder, self.last_step = str(folder), last_step

    def __call__(self, step, loss):
        if step == self.last_step:
            rank = torch.distributed.get_rank() if torch.distributed.is_initialized() else 0
            store = {k: v.detach().clone() for k, v in pyro.get_param_store().items()}
            torch.save(store, os.path.join(self.folder, f"rank{rank}.pt"))


def test_two_process_ddp_matches_one_process_and_the_closed_form(tmp_path):
    """Full-batch MLE: each rank holds half the examples scaled by N / (N/2), so DDP's
    mean gradient is the full-data gradient and two processes retrace the one-process
    fit step for step; a run stopped at 150 steps and resumed from its checkpoint to
    300 ends where the uninterrupted run does, at the closed-form optimum, and both
    ranks end with identical parameters."""
    x = two_binary_columns()
    torch.manual_seed(0)
    single = pyrogen.fit(FVSBN(2), x, method="mle", num_steps=300, lr=0.05, progress=False)

    torch.manual_seed(0)
    model = FVSBN(2)
    checkpoint = tmp_path / "ddp.ckpt"
    common = dict(
        method="mle",
        lr=0.05,
        progress=False,
        strategy="ddp_spawn",
        devices=2,
        checkpoint=checkpoint,
        checkpoint_every=50,
    )
    first = pyrogen.fit(model, x, num_steps=150, **common)
    assert first.num_steps == 150 and checkpoint.exists()
    assert not list(tmp_path.glob(".ddp.ckpt.*"))  # written atomically: no partial file
    resumed = pyrogen.fit(model, x, num_steps=300, callback=SaveEachRank(tmp_path, 300), **common)
    assert resumed.diagnostics["resumed_from"] == 150
    assert resumed.diagnostics["world_size"] == 2
    assert resumed.num_steps == 300 and len(resumed.losses) == 300

    np.testing.assert_allclose(resumed.losses, single.losses, rtol=1e-5)
    for name in ("weight", "bias"):
        np.testing.assert_allclose(resumed.params[name], single.params[name], atol=1e-4)
    truth = closed_form_fvsbn(x)
    np.testing.assert_allclose(model.bias.detach().numpy(), truth["bias"], atol=2e-3)
    assert float(model.weight[1, 0].detach()) == pytest.approx(truth["w"], abs=2e-3)

    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1)]
    assert ranks[0].keys() == ranks[1].keys() and ranks[0]
    for name in ranks[0]:
        assert torch.equal(ranks[0][name], ranks[1][name]), name
    here = dict(pyro.get_param_store().items())  # what came back to this process
    for name, value in ranks[0].items():
        np.testing.assert_allclose(value.numpy(), here[name].detach().numpy(), atol=1e-6)


def test_the_command_runs_ddp_ranks_and_rank_zero_reports(tmp_path):
    """``pyrogen fit NAME --strategy ddp --devices 2``: Lightning's launcher runs the
    command again for rank 1; the ranks split each minibatch (steps per epoch: N / (2 x
    batch)) and only rank 0 writes the report."""
    out = tmp_path / "run"
    env = {**os.environ, "CI": "1"}
    command = [
        sys.executable,
        "-m",
        "pyrogen.cli",
        "fit",
        "maf",
        "--data",
        "moons",
        "--train-size",
        "2000",
        "--strategy",
        "ddp",
        "--devices",
        "2",
        "--epochs",
        "2",
        "--batch-size",
        "100",
        "--eval-size",
        "100",
        "--out",
        str(out),
    ]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    reports = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(reports) == 1, done.stdout  # rank 1 printed nothing
    metrics = json.loads((out / "metrics.json").read_text())
    train = metrics["train_examples"]
    assert metrics["num_steps"] == 2 * int(np.ceil(np.ceil(train / 2) / 100))
    assert np.isfinite(metrics["test_nll"])


def test_distributed_options_are_checked_by_name():
    x = two_binary_columns(20)
    with pytest.raises(ValueError, match="strategy"):
        pyrogen.fit(FVSBN(2), x, method="mle", devices=2)  # devices without a strategy
    with pytest.raises(ValueError, match="strategy"):
        pyrogen.fit(FVSBN(2), x, method="mle", strategy="horovod")
    with pytest.raises(ValueError, match="devices"):
        pyrogen.fit(FVSBN(2), x, method="mle", strategy="ddp_spawn", devices=0)
    with pytest.raises(ValueError, match="num_nodes"):
        pyrogen.fit(FVSBN(2), x, method="mle", strategy="ddp_spawn", num_nodes=0)


def test_a_model_without_minibatches_or_a_sampler_is_refused_before_any_process():
    from pyrogen.models import GaussianMixture

    x = np.random.default_rng(0).normal(size=(50, 2))
    with pytest.raises(ValueError, match="strategy.*GaussianMixture|strategy.*gmm"):
        pyrogen.fit(GaussianMixture(2), x, method="map", strategy="ddp_spawn", devices=2)
    with pytest.raises(ValueError, match="strategy.*nuts"):
        pyrogen.fit(FVSBN(2), two_binary_columns(20), method="nuts", strategy="ddp_spawn")


def test_torch_optimizer_follows_fit_optim():
    from pyro.optim import ClippedAdam

    from pyrogen.lightning import torch_optimizer

    p = [torch.nn.Parameter(torch.zeros(2))]
    assert isinstance(torch_optimizer("adam", 0.1, p), torch.optim.Adam)
    assert isinstance(torch_optimizer("sgd", 0.1, p), torch.optim.SGD)
    pyro_optim = torch_optimizer(ClippedAdam({"lr": 0.2, "clip_norm": 5.0}), 0.1, p)
    assert pyro_optim.defaults["lr"] == 0.2 and pyro_optim.defaults["clip_norm"] == 5.0
    with pytest.raises(ValueError, match="optim"):
        torch_optimizer("lbfgs", 0.1, p)
