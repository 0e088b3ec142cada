"""GAN, ALI and the adversarial autoencoder as Pyro models: their traces are the
engine's draws, implicit sites refuse densities, and each matches the distributions
its reading says it matches."""

import numpy as np
import pyro
import pytest
import torch
from pyro.infer import Trace_ELBO
from pyrogen.models import ALI, GAN, AdversarialAutoencoder

import pyrogen
from pyrogen.distributions import Implicit, ImplicitDensityError
from pyrogen.infer.adversarial import trace_draws


def _binary(n=40, d=6):
    return torch.as_tensor((np.random.default_rng(0).random((n, d)) < 0.3).astype(float))


CASES = {
    "gan": (
        lambda: GAN((2,), latent_dim=3, hidden=(8,), critic_hidden=(8,)),
        lambda: torch.randn(7, 2),
    ),
    "ali": (
        lambda: ALI((2,), latent_dim=3, hidden=(8,), critic_hidden=(8,)),
        lambda: torch.randn(7, 2),
    ),
    "aae": (lambda: AdversarialAutoencoder((6,), latent_dim=2, hidden=(8,)), _binary),
    "gan-conv": (
        lambda: GAN((1, 8, 8), latent_dim=3, architecture="conv", channels=4, output="sigmoid"),
        lambda: torch.rand(5, 1, 8, 8),
    ),
    "ali-conv": (
        lambda: ALI(
            (1, 8, 8), latent_dim=3, hidden=(8,), architecture="conv", channels=4, output="sigmoid"
        ),
        lambda: torch.rand(5, 1, 8, 8),
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_the_engines_draws_are_the_pyro_traces(name):
    """adversarial_draws (plain network calls) gives the numbers of the model's and the
    guide's traces under the same seed, reconstruction term included."""
    build, data = CASES[name]
    model, x = build(), data()
    torch.manual_seed(3)
    fast = model.adversarial_draws(x)
    pyro.clear_param_store()
    torch.manual_seed(3)
    traced = trace_draws(model, x)
    for side in (0, 1):
        assert set(fast[side]) == set(model.critic_sites) == set(traced[side])
        for site in model.critic_sites:
            torch.testing.assert_close(fast[side][site], traced[side][site])
    if fast[2] is None:
        assert traced[2] is None
    else:
        torch.testing.assert_close(fast[2], traced[2])
    critic = model.make_critic()
    assert critic(*(fast[0][s] for s in model.critic_sites)).shape == (len(x),)


@pytest.mark.parametrize("cls", [GAN, ALI])
def test_implicit_models_have_samples_but_refuse_densities(cls):
    model = cls((2,), latent_dim=3, hidden=(8,))
    assert model.sample(5).shape == (5, 2)
    with pytest.raises(ImplicitDensityError, match="implicit"):
        model.log_prob(torch.zeros(3, 2))
    with pytest.raises(ImplicitDensityError, match="method='adversarial'"):  # Pyro's ELBO
        guide = model.guide or (lambda x: None)
        Trace_ELBO().loss(model.model, guide, torch.zeros(3, 2))
    with pytest.raises(ValueError, match="method='svi'"):
        pyrogen.fit(model, np.zeros((3, 2)), method="svi", progress=False)


def test_the_implicit_distribution_is_a_differentiable_point_mass():
    theta = torch.tensor([1.0, 2.0], requires_grad=True)
    d = Implicit(theta * 3, event_dim=1)
    assert d.event_shape == (2,) and d.batch_shape == ()
    draw = d.rsample((4,))
    assert draw.shape == (4, 2)
    draw.sum().backward()
    torch.testing.assert_close(theta.grad, torch.full((2,), 12.0))
    assert d.expand((3,)).sample().shape == (3, 2)
    with pytest.raises(ImplicitDensityError):
        d.log_prob(torch.zeros(2))


def test_the_adversarial_autoencoders_aggregate_posterior_matches_the_prior():
    """The critic on z pulls q(z) = E_data q(z | x) to N(0, I) while the decoder
    reconstructs: its codes' moments end near the prior's. Without the critic (an
    autoencoder's reconstruction term alone) they do not."""
    x = torch.as_tensor(pyrogen.toy.sample("moons", 2000, seed=0)).double()
    x = (x - x.mean(0)) / x.std(0)

    def codes(weight):
        torch.manual_seed(0)
        model = AdversarialAutoencoder(
            (2,),
            latent_dim=1,
            hidden=(32, 32),
            likelihood="gaussian",
            scale=0.3,
            critic_hidden=(64, 64),
        )
        if not weight:  # no critic: the reconstruction term alone
            model.critic_sites = ("z",)
            model.adversarial_draws = lambda b: (
                {"z": torch.zeros(len(b), 1)},
                {"z": torch.zeros(len(b), 1, requires_grad=True)},
                -model._likelihood(model.decoder(model.encoder(b)[0])).log_prob(b),
            )
        pyrogen.fit(model, x, method="adversarial", num_steps=800, batch_size=200, progress=False)
        loc, scale = model.encode(x)
        return (loc + scale * torch.randn_like(loc)).squeeze(-1)

    z = codes(1.0)
    assert abs(z.mean().item()) < 0.15 and z.std().item() == pytest.approx(1.0, abs=0.15)
    # and the prior's shape, not only its moments: a Kolmogorov distance from N(0, 1)
    ranks = torch.distributions.Normal(0.0, 1.0).cdf(z.sort().values)
    grid = (torch.arange(len(z)) + 0.5) / len(z)
    assert (ranks - grid).abs().max() < 0.12
    free = codes(0.0)
    assert abs(free.std().item() - 1.0) > 0.3 or abs(free.mean().item()) > 0.3


def test_ali_matches_the_joint_of_a_gaussian():
    """On Gaussian data, ALI's generator reproduces the data's mean and covariance, and
    its encoder is informative: matching the joints makes z a function of x (the codes
    of the data correlate with it), as the prior-only encoder could not."""
    rng = np.random.default_rng(0)
    cov = np.array([[1.0, 0.8], [0.8, 1.0]])
    x = rng.multivariate_normal([2.0, -1.0], cov, size=4000)
    torch.manual_seed(0)
    model = ALI((2,), latent_dim=2, hidden=(64, 64), critic_hidden=(64, 64))
    pyrogen.fit(
        model, x, method="adversarial", num_steps=3000, lr=5e-4, batch_size=256, progress=False
    )
    torch.manual_seed(1)
    draws = model.sample(20000).numpy()
    np.testing.assert_allclose(draws.mean(0), [2.0, -1.0], atol=0.3)
    np.testing.assert_allclose(np.cov(draws, rowvar=False), cov, atol=0.25)
    loc, _ = model.encode(x)
    both = np.corrcoef(np.concatenate([x, loc.numpy()], 1), rowvar=False)
    assert np.abs(both[:2, 2:]).max() > 0.5
    assert model.reconstruct(x[:5]).shape == (5, 2)


@pytest.mark.parametrize(
    "build, data, match",
    [
        (lambda: GAN((2,)), np.full((4, 2), np.nan), "x"),
        (lambda: GAN((2,)), np.zeros((4, 3)), "shape"),
        (
            lambda: GAN((1, 4, 4), architecture="conv", channels=2, output="sigmoid"),
            np.full((4, 1, 4, 4), 2.0),
            r"\[0, 1\]",
        ),
        (lambda: GAN((2,), output="tanh"), np.zeros((4, 2)), "output"),
        (lambda: GAN((2,), architecture="rnn"), np.zeros((4, 2)), "architecture"),
        (lambda: GAN((3, 5), architecture="conv"), np.zeros((4, 3, 5)), "data_shape"),
    ],
)
def test_bad_input_is_refused_by_name(build, data, match):
    with pytest.raises((ValueError, TypeError), match=match):
        pyrogen.fit(build(), data, method="adversarial", num_steps=1, progress=False)


def test_mode_coverage_known_answers():
    ring = pyrogen.toy.sample("ring", 2500, seed=0, sd=0.02)
    full = pyrogen.toy.mode_coverage("ring", ring)
    assert full["modes"] == 8 and full["high_quality"] > 0.98 and full["kl_modes"] < 0.01
    one = pyrogen.toy.mode_coverage("ring", np.tile([[2.0, 0.0]], (100, 1)))
    assert one["modes"] == 1 and one["high_quality"] == 1.0
    assert one["kl_modes"] == pytest.approx(np.log(8))
    between = pyrogen.toy.mode_coverage("grid", np.full((50, 2), 1.0))  # between modes
    assert between["modes"] == 0 and between["high_quality"] == 0.0
    with pytest.raises(ValueError, match="samples"):
        pyrogen.toy.mode_coverage("ring", np.full((3, 2), np.nan))


def test_precision_recall_known_answers():
    from pyrogen.features import precision_recall

    rng = np.random.default_rng(0)
    a = rng.normal(size=(500, 4))
    assert precision_recall(a, a) == (1.0, 1.0)
    precision, recall = precision_recall(a, a + 100.0)
    assert precision == 0.0 and recall == 0.0
    # samples from one half of the real set: precise, but half the recall
    half = a[a[:, 0] > 0]
    precision, recall = precision_recall(a, half)
    assert precision == 1.0 and 0.4 < recall < 0.75
    with pytest.raises(ValueError, match="generated"):
        precision_recall(a, np.full((10, 4), np.nan))
    with pytest.raises(ValueError, match="real, generated"):
        precision_recall(a, a[:, :3])
