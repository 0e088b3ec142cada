"""Every bench script runs in --quick mode and ends with one JSON line of figures."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCH_DIR = Path(__file__).parents[1] / "bench"
BENCHES = sorted(p for p in BENCH_DIR.glob("*.py") if not p.name.startswith("_"))  # _: helpers
AR_MNIST = BENCH_DIR / "ar_mnist.py"


def _call(path, *args) -> subprocess.CompletedProcess:
    command = [sys.executable, str(path), *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def _run(path, *args) -> dict:
    """Run a bench script; its figures, the JSON object of its last line."""
    done = _call(path, *args)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("path", BENCHES, ids=[p.stem for p in BENCHES])
def test_bench_quick_prints_json_figures(path):
    figures = _run(path, "--quick")
    ratios = {k: v for k, v in figures.items() if k.endswith("_ratio")}
    assert ratios and all(v > 0 for v in ratios.values())
    assert figures["quick"] is True


def _ar_mnist(*args) -> dict:
    return _run(AR_MNIST, "--quick", "--no-speed", *args)


def test_ar_mnist_resumes_a_checkpointed_run(tmp_path):
    """A run stopped by its time budget and resumed (best epoch, schedule and patience
    restored) reports what an uninterrupted run reports."""
    options = ["--models", "fvsbn", "deepnade", "--epochs", "3", "--lr-decay", "0.5"]
    options += ["--deepnade-steps", "2", "--deepnade-last-after", "1"]  # set again on resume
    options += ["--valid-size", "40", "--test-size", "40", "--train-scored", "20"]
    cut = _ar_mnist(*options, "--checkpoint", str(tmp_path), "--max-minutes", "0")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deepnade.ckpt", "fvsbn.ckpt"]
    resumed = _ar_mnist(*options, "--checkpoint", str(tmp_path))
    whole = _ar_mnist(*options)
    for name in ("fvsbn", "deepnade"):
        assert cut[f"{name}_steps"] == 10  # one epoch of 1000 images, then out of time
        assert (cut[f"{name}_resumed_from_epoch"], resumed[f"{name}_resumed_from_epoch"]) == (
            None,
            1,
        )
        assert resumed[f"{name}_steps"] == whole[f"{name}_steps"] == 30
        assert resumed[f"{name}_best_epoch"] == whole[f"{name}_best_epoch"]
        assert resumed[f"{name}_test_nll"] == pytest.approx(whole[f"{name}_test_nll"], rel=1e-6)
        assert cut[f"{name}_test_nll"] != pytest.approx(whole[f"{name}_test_nll"], rel=1e-6)


def test_ar_mnist_checkpoint_must_be_a_directory(tmp_path):
    path = tmp_path / "a-file"
    path.write_text("")
    done = _call(AR_MNIST, "--quick", "--checkpoint", str(path))
    assert done.returncode == 2 and "--checkpoint: must be a directory" in done.stderr


def test_ar_mnist_refuses_a_made_layer_without_units():
    done = _call(AR_MNIST, "--quick", "--models", "made", "--made-hidden", "500", "0")
    assert done.returncode == 2 and "--made-hidden: widths must be positive" in done.stderr


def test_ar_mnist_resumes_only_under_the_options_it_was_written_with(tmp_path):
    """Another --lr-decay (the bench's selector) or --lr (pyrogen.fit's checkpoint) is
    refused by name; the same options resume."""
    options = ["--quick", "--no-speed", "--models", "fvsbn", "--epochs", "2"]
    options += ["--valid-size", "20", "--test-size", "20", "--train-scored", "20"]
    options += ["--checkpoint", str(tmp_path)]
    _run(AR_MNIST, *options, "--max-minutes", "0")
    for change, named in [(["--lr-decay", "0.9"], "--lr-decay"), (["--lr", "0.1"], "training")]:
        done = _call(AR_MNIST, *options, *change)
        assert done.returncode != 0 and named in done.stderr, done.stderr[-2000:]
    assert _run(AR_MNIST, *options)["fvsbn_resumed_from_epoch"] == 1


def test_ar_mnist_compares_a_two_layer_made_ensemble_with_the_papers_best():
    options = ["--models", "made", "--made-hidden", "30", "20", "--made-masks", "2"]
    figures = _ar_mnist(*options, "--made-init", "orthogonal")
    assert figures["made_paper_nll"] == 86.64  # Germain et al., two layers, 32 masks
    assert figures["made_nll_vs_paper_ratio"] == figures["made_test_nll"] / 86.64


def test_ar_mnist_made_init_is_the_paper_codes_orthogonal_start():
    import importlib.util

    import torch
    from pyrogen.models import MADE

    spec = importlib.util.spec_from_file_location("ar_mnist", AR_MNIST)
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    model = bench.made_init(MADE((6,), hidden=(10, 4), direct=True), "orthogonal")
    for layer in [*model.layers, model.direct]:
        w = layer.weight  # (out, in): orthonormal columns if tall, rows if wide
        gram = w.T @ w if w.shape[0] >= w.shape[1] else w @ w.T
        torch.testing.assert_close(gram, torch.eye(min(w.shape)))
        assert layer.bias is None or not layer.bias.any()
    untouched = MADE((6,), hidden=(10,))
    before = [p.clone() for p in untouched.parameters()]
    bench.made_init(untouched, "torch")
    assert all(torch.equal(a, b) for a, b in zip(before, untouched.parameters()))
    every = ((torch.arange(64)[:, None] >> torch.arange(6)) & 1).float()  # all 2^6 vectors
    total = model.log_prob(every).logsumexp(0).exp()  # the masks still hold: sums to 1
    torch.testing.assert_close(total, torch.tensor(1.0))
