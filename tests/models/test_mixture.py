import numpy as np
import pyro
import pytest
import torch
from pyrogen.models import GaussianMixture, GaussianMixturePrior, normal_mixture_1d
from scipy.stats import multivariate_normal
from sklearn.mixture import GaussianMixture as SklearnMixture

import pyrogen


def blobs(n=600, seed=0):
    rng = np.random.default_rng(seed)
    centers = np.array([[0.0, 0.0], [5.0, 1.0], [1.0, 6.0]])
    cov = np.array([[[1.0, 0.3], [0.3, 0.5]], [[0.4, -0.2], [-0.2, 1.2]], [[0.8, 0.0], [0.0, 0.8]]])
    labels = rng.choice(3, size=n, p=[0.5, 0.3, 0.2])
    return np.stack([rng.multivariate_normal(centers[k], cov[k]) for k in labels])


@pytest.mark.parametrize("covariance", ["full", "diag", "spherical"])
def test_em_matches_sklearn_from_the_same_start(covariance):
    x = blobs()
    means = x[[0, 1, 2]]
    ours = GaussianMixture(3, covariance=covariance, init=means)
    pyrogen.fit(ours, x, method="em", num_steps=25, tol=0.0, progress=False)
    start = GaussianMixture(3, covariance=covariance, init=means)
    (xt,) = start.prepare(x)
    start.initialize(xt)
    covariances = start.covariances.numpy()
    precisions = {
        "full": np.linalg.inv(covariances),
        "diag": 1 / np.diagonal(covariances, axis1=1, axis2=2),
        "spherical": 1 / covariances[:, 0, 0],
    }[covariance]
    theirs = SklearnMixture(
        3,
        covariance_type=covariance,
        tol=0.0,
        max_iter=25,
        weights_init=start.weights.numpy(),
        means_init=start.locs.numpy(),
        precisions_init=precisions,
        reg_covar=1e-6,
    )
    with pytest.warns(Warning):  # sklearn's ConvergenceWarning: tol=0 never converges
        theirs.fit(x)
    ours_ll = ours.log_prob(x).mean().item()
    assert ours_ll == pytest.approx(theirs.score(x), rel=1e-9)
    np.testing.assert_allclose(ours.weights.numpy(), theirs.weights_, rtol=1e-7)
    np.testing.assert_allclose(ours.locs.numpy(), theirs.means_, rtol=1e-7, atol=1e-9)


@pytest.mark.parametrize("covariance", ["full", "diag", "spherical"])
def test_em_log_likelihood_never_decreases(covariance):
    x = blobs(seed=1)
    result = pyrogen.fit(
        GaussianMixture(4, covariance=covariance, init="random"),
        x,
        method="em",
        num_steps=60,
        tol=0.0,
        progress=False,
    )
    log_lik = -result.losses
    assert np.all(np.diff(log_lik) >= -1e-10)
    assert log_lik[-1] > log_lik[0]


def test_em_as_map_reaches_the_em_optimum(faithful):
    em = GaussianMixture(2, reg_covar=0.0)
    pyrogen.fit(em, faithful, method="em", num_steps=500, tol=1e-12, progress=False)
    for method in ("map", "svi"):  # AutoDelta, then the model's own point-mass guide
        pyro.clear_param_store()
        gmm = GaussianMixture(2, reg_covar=0.0)
        result = pyrogen.fit(gmm, faithful, method=method, num_steps=200, lr=0.05, progress=False)
        assert gmm.log_prob(faithful).mean().item() == pytest.approx(
            em.log_prob(faithful).mean().item(), abs=1e-6
        )
        assert -result.loss == pytest.approx(gmm.log_prob(faithful).mean().item(), abs=1e-6)


def test_log_prob_is_the_mixture_density():
    x = blobs(100)
    gmm = GaussianMixture(3)
    pyrogen.fit(gmm, x, method="em", progress=False)
    by_hand = sum(
        w * multivariate_normal(m, c).pdf(x)
        for w, m, c in zip(gmm.weights.numpy(), gmm.locs.numpy(), gmm.covariances.numpy())
    )
    np.testing.assert_allclose(gmm.log_prob(x).numpy(), np.log(by_hand), rtol=1e-10)
    np.testing.assert_allclose(gmm.predict(x).sum(1).numpy(), 1.0, rtol=1e-12)


def test_samples_follow_the_fitted_mixture(faithful):
    gmm = GaussianMixture(2)
    pyrogen.fit(gmm, faithful, method="em", progress=False)
    draws = gmm.sample(200_000)
    mean = (gmm.weights[:, None] * gmm.locs).sum(0)
    assert draws.shape == (200_000, 2)
    np.testing.assert_allclose(draws.mean(0).numpy(), mean.numpy(), rtol=2e-3)
    labels = gmm.predict(draws).argmax(1)
    frequencies = torch.bincount(labels, minlength=2) / len(draws)
    np.testing.assert_allclose(frequencies.numpy(), gmm.weights.numpy(), atol=0.01)


def test_pointwise_log_likelihood_sums_out_the_assignments(faithful):
    gmm = GaussianMixture(2)
    result = pyrogen.fit(gmm, faithful, method="map", num_steps=50, progress=False)
    idata = result.to_arviz(num_samples=3)
    pointwise = idata.log_likelihood["obs"].values  # (1, 3, 272): a delta guide's draws agree
    assert pointwise.shape == (1, 3, 272)
    np.testing.assert_allclose(pointwise[0, 0], gmm.log_prob(faithful).numpy(), rtol=1e-10)
    assert "loss" in idata.sample_stats and idata.sample_stats["loss"].shape == (50,)
    assert idata.observed_data["obs"].shape == (272, 2)


def test_em_resumes_from_a_checkpoint_exactly(faithful, tmp_path):
    options = dict(method="em", num_steps=40, tol=0.0, seed=5, progress=False)
    full = GaussianMixture(3)
    reference = pyrogen.fit(full, faithful, **options)

    def interrupt(step, loss):
        if step == 23:
            raise KeyboardInterrupt

    saving = dict(checkpoint=tmp_path / "em.ckpt", checkpoint_every=5)
    with pytest.raises(KeyboardInterrupt):
        pyrogen.fit(GaussianMixture(3), faithful, callback=interrupt, **saving, **options)
    resumed_model = GaussianMixture(3)
    resumed = pyrogen.fit(resumed_model, faithful, **saving, **options)
    assert resumed.diagnostics["resumed_from"] == 20
    np.testing.assert_allclose(resumed.losses, reference.losses, rtol=1e-13)
    torch.testing.assert_close(resumed_model.locs, full.locs, rtol=1e-13, atol=0)


def test_checkpoint_of_another_model_is_refused(faithful, tmp_path):
    path = tmp_path / "em.ckpt"
    pyrogen.fit(
        GaussianMixture(2), faithful, method="em", num_steps=3, checkpoint=path, progress=False
    )
    with pytest.raises(ValueError, match="belongs to another run.*config"):
        pyrogen.fit(
            GaussianMixture(3), faithful, method="em", num_steps=3, checkpoint=path, progress=False
        )


def test_n_init_keeps_the_best_restart():
    x = blobs(seed=3)
    single = [
        pyrogen.fit(
            GaussianMixture(3, init="random"), x, method="em", seed=s, progress=False
        ).diagnostics["log_likelihood"]
        for s in range(4)
    ]
    best = pyrogen.fit(
        GaussianMixture(3, init="random", n_init=4), x, method="em", seed=0, progress=False
    )
    assert best.diagnostics["log_likelihood"] >= max(single[:1]) - 1e-9
    assert best.diagnostics["log_likelihood"] == pytest.approx(
        max(best.model.log_prob(x).mean().item(), -np.inf)
    )


def test_save_and_load_round_trip(faithful, tmp_path):
    gmm = GaussianMixture(2, covariance="diag", prior=GaussianMixturePrior(loc_scale=3.0))
    pyrogen.fit(gmm, faithful, method="em", progress=False)
    gmm.save(tmp_path / "gmm.pt")
    loaded = GaussianMixture.load(tmp_path / "gmm.pt")
    assert loaded.config == gmm.config
    torch.testing.assert_close(loaded.log_prob(faithful), gmm.log_prob(faithful))


@pytest.mark.parametrize(
    "x, error, message",
    [
        (np.array([[1.0, np.nan], [2.0, 3.0], [1.0, 1.0]]), ValueError, "x: contains NaN"),
        (np.array([[1.0, np.inf], [2.0, 3.0], [1.0, 1.0]]), ValueError, "x: contains infinite"),
        (np.zeros((0, 2)), ValueError, "x: is empty"),
        (np.zeros((4, 2, 2)), ValueError, "x: expected an array with 1 or 2 dimension"),
        (np.array([[1.0, 2.0]]), ValueError, "n_components: 2 components need at least"),
        (np.array([["a", "b"], ["c", "d"]]), TypeError, "x: expected numeric values"),
    ],
)
def test_bad_data_is_refused_before_any_work(x, error, message):
    with pytest.raises(error, match=message):
        pyrogen.fit(GaussianMixture(2), x, method="em", progress=False)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(n_components=0), "n_components: must be at least 1"),
        (dict(n_components=2, covariance="tied"), "covariance: must be one of"),
        (dict(n_components=2, init="kmeans"), "init: must be one of"),
        (dict(n_components=2, init=np.zeros((3, 2))), "init: expected 2 initial means"),
        (dict(n_components=2, reg_covar=-1.0), "reg_covar: must be a non-negative number"),
        (dict(n_components=2, n_init=0), "n_init: must be at least 1"),
    ],
)
def test_bad_configuration_is_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GaussianMixture(**kwargs)


def test_wrong_number_of_columns_after_fitting(faithful):
    gmm = GaussianMixture(2)
    pyrogen.fit(gmm, faithful, method="em", progress=False)
    with pytest.raises(ValueError, match=r"x: expected shape \(N, 2\)"):
        gmm.log_prob(np.zeros((3, 3)))


def test_nuts_needs_a_proper_prior(faithful):
    with pytest.raises(ValueError, match="prior: method='nuts' needs proper priors"):
        pyrogen.fit(GaussianMixture(2), faithful, method="nuts")


def test_nuts_posterior_sits_on_the_em_estimate(faithful):
    em = GaussianMixture(2)
    pyrogen.fit(em, faithful, method="em", progress=False)
    bayes = GaussianMixture(2, prior=GaussianMixturePrior.weakly_informative(faithful))
    result = pyrogen.fit(
        bayes,
        faithful,
        method="nuts",
        num_warmup=150,
        num_samples=150,
        num_chains=1,
        progress=False,
    )
    locs = result.samples["locs"][0]  # (draw, K, D), relabelled by the first coordinate
    order = em.locs[:, 0].argsort()
    z = (locs.mean(0) - em.locs[order].numpy()) / locs.std(0)
    assert np.all(np.abs(z) < 3), z
    assert np.all(np.diff(locs[..., 0], axis=-1) >= 0)  # components stay ordered
    assert result.sample_stats["diverging"].sum() == 0


def test_low_dim_gauss_mix_matches_stan_under_numpyro(reference_data):
    reference = pyrogen.data.load_posteriordb("low_dim_gauss_mix")
    y = np.asarray(reference.data["y"])
    result = pyrogen.fit(
        normal_mixture_1d,
        y,
        method="nuts",
        backend="numpyro",
        num_warmup=500,
        num_samples=1000,
        num_chains=4,
        progress=False,
    )
    comparison = pyrogen.compare_to_reference(result.samples, reference)
    assert comparison.passed, str(comparison)
    assert len(comparison.rows) == 5


@pytest.mark.slow
def test_low_dim_gauss_mix_crosscheck_and_stan_under_pyro(reference_data):
    reference = pyrogen.data.load_posteriordb("low_dim_gauss_mix")
    y = np.asarray(reference.data["y"])
    comparison = pyrogen.crosscheck(normal_mixture_1d, y, num_warmup=500, num_samples=1000)
    assert comparison.passed, str(comparison)
    against = pyrogen.compare_to_reference(comparison.fits["pyro"].samples, reference)
    assert against.passed, str(against)


def test_crosscheck_flags_a_wrong_posterior(reference_data):
    """The comparison can fail: shifted draws are caught."""
    reference = pyrogen.data.load_posteriordb("low_dim_gauss_mix")
    shifted = {"mu": reference.reference("mu") + 0.01}
    comparison = pyrogen.compare_to_reference(shifted, reference)
    assert not comparison.passed


def test_mean_field_vi_on_the_bayesian_mixture(faithful):
    """AutoNormal over the global sites, assignments summed out; its posterior means sit
    near NUTS's and to_arviz draws from the guide with pointwise log-likelihoods."""
    prior = GaussianMixturePrior.weakly_informative(faithful)
    em = GaussianMixture(2)
    pyrogen.fit(em, faithful, method="em", progress=False)
    vi = GaussianMixture(2, prior=prior)
    result = pyrogen.fit(
        vi, faithful, method="svi", guide="mean_field", num_steps=300, lr=0.02, progress=False
    )
    assert np.isfinite(result.losses).all()
    idata = result.to_arviz(num_samples=20)
    assert idata.posterior["locs"].shape == (1, 20, 2, 2)
    assert idata.log_likelihood["obs"].shape == (1, 20, 272)
    np.testing.assert_allclose(vi.locs.numpy(), em.locs.numpy(), rtol=0.02)


@pytest.mark.parametrize("covariance, expected", [("full", 11), ("diag", 9), ("spherical", 7)])
def test_num_parameters_counts_free_parameters(faithful, covariance, expected):
    gmm = GaussianMixture(2, covariance=covariance)
    gmm.prepare(faithful)
    assert gmm.num_parameters == expected  # 1 weight + 4 means + covariances
