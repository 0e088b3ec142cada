"""Bad input and misuse end in an error that names the argument, raised before work
starts, never a traceback from deep inside torch, Pyro or NumPy: one case a category."""

import numpy as np
import pytest
import torch
from pyrogen.models import NADE, GaussianMixture

import pyrogen


@pytest.fixture
def x(faithful):
    return faithful


def test_devices_are_checked_by_name(x):
    with pytest.raises(ValueError, match="device: 'bogus' is not a device name"):
        pyrogen.fit(GaussianMixture(2), x, method="em", device="bogus")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="device: 'cuda' asked for, but this torch has no"):
            pyrogen.fit(GaussianMixture(2), x, method="em", device="cuda")


def test_a_mixture_samples_only_once_fitted():
    with pytest.raises(RuntimeError, match="fit the model"):
        GaussianMixture(2).sample(3)


@pytest.mark.parametrize("scale", [1.0, 1e6, 1e-6])
def test_map_on_float64_data_under_a_float32_default(x, scale):
    """Pyro's own tensors (improper priors, enumeration) follow the data's precision."""
    torch.set_default_dtype(torch.float32)  # a user's default; conftest restores float64
    result = pyrogen.fit(GaussianMixture(2), x * scale, method="map", num_steps=20, progress=False)
    assert np.isfinite(result.loss) and result.params["locs"].dtype == torch.float64
    assert torch.get_default_dtype() == torch.float32  # restored after the fit
    identical = np.ones((40, 2))
    pyrogen.fit(GaussianMixture(2), identical, method="map", num_steps=5, lr=10.0, progress=False)


def test_loading_what_is_not_a_model_says_so(tmp_path):
    path = tmp_path / "list.pt"
    torch.save([1, 2, 3], path)
    with pytest.raises(ValueError, match="holds no pyrogen model"):
        NADE.load(path)
    (tmp_path / "text.pt").write_text("not a pickle")
    with pytest.raises(ValueError, match="is not a readable pyrogen model"):
        NADE.load(tmp_path / "text.pt")


def test_an_mnist_archive_with_other_keys_is_refused(monkeypatch, tmp_path):
    from pyrogen import data

    np.savez(tmp_path / "binarized_mnist.npz", images=np.zeros((2, 98), np.uint8))
    monkeypatch.setattr(data, "local_data_dirs", lambda: [tmp_path])
    with pytest.raises(ValueError, match=r"lacks the split\(s\) \['test', 'train', 'valid'\]"):
        data.load("binarized_mnist")


def test_an_error_in_the_users_model_says_where_it_came_from(x):
    def broken(y):
        raise KeyError("no such column")

    with pytest.raises(KeyError, match="no such column") as caught:
        pyrogen.fit(broken, x, progress=False)
    assert any("raised by the model" in note for note in caught.value.__notes__)


def test_resuming_with_fewer_steps_says_the_run_is_longer(x, tmp_path):
    path = tmp_path / "gmm.ckpt"
    options = dict(method="map", checkpoint=path, progress=False)
    pyrogen.fit(GaussianMixture(2), x, num_steps=30, **options)
    with pytest.warns(UserWarning, match="holds 30 steps, more than num_steps=10"):
        again = pyrogen.fit(GaussianMixture(2), x, num_steps=10, **options)
    assert again.num_steps == 30


def test_post_training_draws_are_sized_to_a_budget():
    import time

    from pyrogen.runs import affordable_draws

    calls = []

    def slow(n):
        calls.append(n)
        time.sleep(0.05 * n)
        return torch.zeros(n, 3)

    draws, count, each = affordable_draws(slow, wanted=16, budget=0.2)
    assert 1 <= count <= 4 and draws.shape == (count, 3) and each >= 0.05
    assert sum(calls) == count  # one timed draw, then the rest
    draws, count, _ = affordable_draws(lambda n: torch.zeros(n, 3), wanted=16, budget=30)
    assert count == 16 and draws.shape == (16, 3)


def test_a_diverged_guide_is_flagged_in_the_inference_report():
    from pyrogen.report import InferenceReport, flag_rows

    def row(method, elbo, error=0.1):
        return dict(
            method=method,
            seconds=1.0,
            ess_per_second=None,
            elbo=elbo,
            max_mean_error=error,
            min_variance_ratio=1.0,
            max_variance_ratio=1.0,
        )

    rows = [row("nuts", None, 0.0), row("mean_field", -101.0), row("full_rank", -100.2)]
    rows += [row("low_rank", -100.5), row("flow", 95945.0, 40.0), row("spline", float("nan"))]
    flag_rows(rows)
    flags = {r["method"]: r["flags"] for r in rows}
    assert flags["nuts"] == flags["mean_field"] == flags["full_rank"] == []
    assert "above every other: diverged" in flags["flow"][0] and "3 NUTS sds" in flags["flow"][1]
    assert flags["spline"] == ["ELBO not finite: diverged"]
    assert "diverged" in str(InferenceReport(rows))
