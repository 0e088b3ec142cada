"""The VAE against exact answers: with one latent dimension p(x) is a 1-D integral, so
the importance-weighted estimate, the ELBO and the normalization can all be checked
against quadrature."""

import itertools
import math

import numpy as np
import pyro
import pytest
import torch
from pyro.infer import TraceMeanField_ELBO
from pyrogen.models import VAE, Autoencoder, HierarchicalVAE

import pyrogen


def _all_binary(d):
    return torch.tensor(list(itertools.product([0.0, 1.0], repeat=d)))


def _quadrature_log_prob(vae, x, num_points=4001):
    """log p(x) = log integral p(x | z) p(z) dz on a fine grid (latent_dim = 1); p(z) is
    N(0, 1), or for the VampPrior the mixture written out by hand."""
    z = torch.linspace(-9, 9, num_points)[:, None]
    with torch.no_grad():
        log_px_z = vae._likelihood(vae.decoder(z)[:, None]).log_prob(x)  # (grid, N)
        if vae.config.prior == "standard":
            log_pz = torch.distributions.Normal(0.0, 1.0).log_prob(z)
        else:
            loc, scale = vae.encoder(torch.sigmoid(vae.raw_pseudo))  # (K, 1) each
            components = torch.distributions.Normal(loc[:, 0], scale[:, 0]).log_prob(z)
            log_pz = (components.logsumexp(-1) - math.log(len(loc)))[:, None]
        log_joint = log_px_z + log_pz
    dz = float(z[1] - z[0])
    return torch.logsumexp(log_joint, 0) + math.log(dz)


@pytest.fixture
def tiny():
    torch.manual_seed(3)
    vae = VAE((5,), latent_dim=1, hidden=(16,))
    with torch.no_grad():  # a decoder that actually depends on z
        for p in vae.decoder.parameters():
            p.mul_(3.0)
    return vae.eval()


def test_bernoulli_vae_is_normalized_and_iwae_converges_to_the_quadrature(tiny):
    x = _all_binary(5)
    exact = _quadrature_log_prob(tiny, x)
    assert float(exact.exp().sum()) == pytest.approx(1.0, abs=1e-6)
    estimate = tiny.log_prob(x, num_samples=20000)
    np.testing.assert_allclose(estimate, exact, atol=0.02)
    # the ELBO (K = 1, averaged) is below log p(x) for every x, by the KL of q to p(z | x)
    elbo = tiny.elbo(x, num_samples=4000)
    assert torch.all(elbo < exact + 1e-3)
    gap_1 = (exact - tiny.log_prob(x, num_samples=1, seed=1)).abs().mean()
    gap_k = (exact - estimate).abs().mean()
    assert gap_k < 0.2 * gap_1


def test_vamp_prior_vae_is_normalized_and_matches_the_quadrature():
    """VampPrior p(z) = (1/K) sum_k q(z | u_k): the model's prior is that mixture, p(x)
    sums to 1 over all binary x, and the IWAE estimate meets the quadrature."""
    torch.manual_seed(4)
    vae = VAE((5,), latent_dim=1, hidden=(16,), prior="vamp", num_pseudo=3)
    with torch.no_grad():
        for p in vae.decoder.parameters():
            p.mul_(3.0)
        vae.raw_pseudo.normal_(0.0, 3.0)
        vae.encoder.net[-1].bias[0] += 1.5  # pseudo-inputs' codes far from N(0, 1)
    vae.eval()
    z = torch.linspace(-12, 12, 8001)[:, None]
    density = vae.latent_prior().log_prob(z).exp().detach()
    loc, scale = vae.encoder(vae._pseudo_inputs())  # the mixture of q(z | u_k), written out
    components = torch.distributions.Normal(loc, scale).log_prob(z[:, None, :]).sum(-1)
    by_hand = (components.logsumexp(-1) - math.log(3)).exp().detach()
    torch.testing.assert_close(density, by_hand, rtol=1e-5, atol=1e-7)
    assert float(torch.trapezoid(density, z[:, 0])) == pytest.approx(1.0, abs=1e-6)
    standard = torch.distributions.Normal(0.0, 1.0).log_prob(z[:, 0]).exp()
    assert float((density - standard).abs().max()) > 0.05  # not the standard prior
    x = _all_binary(5)
    exact = _quadrature_log_prob(vae, x)
    assert float(exact.exp().sum()) == pytest.approx(1.0, abs=1e-6)
    # the untrained encoder is a rough proposal for a mixture prior: more draws
    np.testing.assert_allclose(vae.log_prob(x, num_samples=200000), exact, atol=0.02)
    assert torch.all(vae.elbo(x, num_samples=4000) < exact + 1e-3)
    terms = vae.elbo_terms(x)
    assert terms["kl"].shape == (32,) and vae.sample(7).shape == (7, 5)


def test_hierarchical_vae_is_normalized_and_matches_a_2d_quadrature():
    """Two stochastic layers of one dimension each: p(x) is a 2-D integral over
    (z1, z2), done on a grid; the model sums to 1 over all binary x and the IWAE
    estimate over both layers meets it."""
    torch.manual_seed(6)
    vae = HierarchicalVAE((5,), latent_dim=1, bottom_dim=1, hidden=(16,))
    with torch.no_grad():
        for p in [*vae.decoder.parameters(), *vae.bottom_prior.parameters()]:
            p.mul_(2.0)
    vae.eval()
    grid = torch.linspace(-8, 8, 641)
    z2, z1 = torch.meshgrid(grid, grid, indexing="ij")
    z2, z1 = z2.reshape(-1, 1), z1.reshape(-1, 1)
    x = _all_binary(5)
    with torch.no_grad():
        loc, scale = vae.bottom_prior(z2)
        log_p1 = torch.distributions.Normal(loc, scale).log_prob(z1)[:, 0]
        log_p2 = torch.distributions.Normal(0.0, 1.0).log_prob(z2)[:, 0]
        logits = vae.decoder(torch.cat([z1, z2], -1))
        log_px = torch.distributions.Bernoulli(logits=logits[:, None]).log_prob(x).sum(-1)
        step = float(grid[1] - grid[0])
        exact = (log_px + (log_p1 + log_p2)[:, None]).logsumexp(0) + 2 * math.log(step)
    assert float(exact.exp().sum()) == pytest.approx(1.0, abs=1e-4)  # grid error ~2e-5
    np.testing.assert_allclose(vae.log_prob(x, num_samples=100000), exact, atol=0.03)
    assert torch.all(vae.elbo(x, num_samples=4000) < exact + 1e-3)
    assert vae.sample(3).shape == (3, 5) and vae.reconstruct(x[:2]).shape == (2, 5)


def test_hierarchical_vae_trains_with_either_prior_and_reloads(tmp_path):
    x = (torch.rand(64, 6, generator=torch.Generator().manual_seed(0)) < 0.4).double()
    for prior in ("standard", "vamp"):
        vae = HierarchicalVAE((6,), latent_dim=2, bottom_dim=3, hidden=(8,), prior=prior,
                              num_pseudo=4)  # fmt: skip
        before = float(vae.elbo(x, 200).mean())
        fit = pyrogen.fit(vae, x, method="svi", batch_size=16, num_epochs=30, lr=0.01)
        assert np.isfinite(fit.losses).all()
        assert float(vae.elbo(x, 200).mean()) > before + 0.5
        terms = vae.elbo_terms(x)
        assert torch.all(terms["kl"].isfinite())
        vae.save(tmp_path / f"{prior}.pt")
        loaded = HierarchicalVAE.load(tmp_path / f"{prior}.pt")
        assert loaded.config.bottom_dim == 3 and loaded.config.prior == prior
        torch.testing.assert_close(loaded.log_prob(x, 50), vae.log_prob(x, 50))
    with pytest.raises(ValueError, match="architecture"):
        HierarchicalVAE((8, 8), architecture="conv")
    with pytest.raises(ValueError, match="bottom_dim"):
        HierarchicalVAE((6,), bottom_dim=0)


def test_gaussian_vae_matches_the_quadrature_and_khat_flags_a_narrow_proposal():
    """An untrained encoder narrower than the posterior gives importance weights of
    infinite variance (PSIS k-hat > 0.5); widened, the weights behave and the estimate
    meets the quadrature."""
    torch.manual_seed(0)
    vae = VAE((1,), latent_dim=1, hidden=(8,), likelihood="gaussian", scale=1.0).eval()
    x = torch.linspace(-1.5, 1.5, 7)[:, None]
    exact = _quadrature_log_prob(vae, x, num_points=20001)
    assert float(vae.psis_khat(x, 4000).mean()) > 0.5
    with torch.no_grad():
        vae.encoder.net[-1].bias[1] += 2.0  # q's sd about 2: wider than the posterior
    assert float(vae.psis_khat(x, 4000).max()) < 0.5
    np.testing.assert_allclose(vae.log_prob(x, num_samples=20000), exact, atol=0.02)
    grid = torch.linspace(-15, 15, 6001)[:, None]
    density = _quadrature_log_prob(vae, grid, num_points=4001).exp()
    assert float(torch.trapezoid(density, grid[:, 0])) == pytest.approx(1.0, abs=1e-4)


def test_the_elbo_is_the_reconstruction_minus_beta_times_the_closed_form_kl(tiny):
    """Same seed, same draw of z: TraceMeanField_ELBO's loss grows by exactly the
    analytic KL from beta = 0 to 1 and from 1 to 2; a batch of B standing for N examples
    scales the loss by N / B."""
    x = _all_binary(5)[:12]
    losses = {}
    for beta in (0.0, 1.0, 2.0):
        tiny.config.beta = beta
        pyro.set_rng_seed(5)
        losses[beta] = float(TraceMeanField_ELBO().loss(tiny.model, tiny.guide, x))
    tiny.config.beta = 1.0
    kl = float(tiny.elbo_terms(x)["kl"].sum())
    assert losses[2.0] - losses[1.0] == pytest.approx(kl, rel=1e-9)
    assert losses[1.0] - losses[0.0] == pytest.approx(kl, rel=1e-9)  # beta = 0: no KL
    pyro.set_rng_seed(5)
    scaled = float(TraceMeanField_ELBO().loss(tiny.model, tiny.guide, x, num_examples=120))
    assert scaled == pytest.approx(10 * losses[1.0], rel=1e-9)


def _mnist(n, split="train"):
    x = pyrogen.data.load("binarized_mnist", split=split)
    return torch.as_tensor(x[:n], dtype=torch.float64)


def test_training_on_mnist_raises_the_likelihood(reference_data):
    train, test = _mnist(2000), _mnist(500, "test")
    vae = VAE((784,), latent_dim=20, hidden=(200,))
    before = float(vae.log_prob(test, num_samples=20).mean())
    fit = pyrogen.fit(
        vae, train, method="svi", loss="mean_field", lr=2e-3, batch_size=100, num_epochs=5
    )
    assert fit.num_steps == 100 and len(fit.losses) == 100
    after = vae.log_prob(test, num_samples=200)
    elbo = vae.elbo(test, num_samples=20)
    assert before < -500 and float(after.mean()) > -210, (before, float(after.mean()))
    assert float(after.mean()) > float(elbo.mean())  # IWAE tightens the ELBO
    assert vae.psis_khat(test[:20], num_samples=200).shape == (20,)
    assert vae.sample(4).shape == (4, 784) and set(vae.sample(4).unique().tolist()) <= {0.0, 1.0}
    assert vae.reconstruct(test[:3]).shape == (3, 784)


def test_minibatch_checkpoint_resume_equals_the_uninterrupted_run(tmp_path):
    x = (torch.rand(64, 6, generator=torch.Generator().manual_seed(0)) < 0.4).double()

    def run(**options):
        torch.manual_seed(1)
        vae = VAE((6,), latent_dim=2, hidden=(8,))
        pyrogen.fit(vae, x, method="svi", batch_size=10, lr=0.01, seed=2, **options)
        return torch.cat([p.detach().flatten() for p in vae.parameters()])

    whole = run(num_steps=30)
    path = tmp_path / "run.ckpt"
    run(num_steps=17, checkpoint=path, checkpoint_every=5)
    resumed = run(num_steps=30, checkpoint=path)
    torch.testing.assert_close(resumed, whole, rtol=0, atol=1e-12)


def test_conv_denoising_and_gaussian_variants_train():
    torch.manual_seed(0)
    images = (torch.rand(32, 8, 8) < 0.3).double()
    conv = VAE((8, 8), latent_dim=3, hidden=(16,), architecture="conv", corruption=0.3)
    fit = pyrogen.fit(conv, images, method="svi", num_steps=20, lr=0.01)
    assert np.isfinite(fit.losses).all() and conv.sample(2).shape == (2, 8, 8)
    conv.train()
    assert not torch.equal(conv._corrupt(images), images)
    conv.eval()
    assert torch.equal(conv._corrupt(images), images)  # no corruption at evaluation
    real = torch.randn(40, 4).double() * torch.tensor([0.1, 1.0, 3.0, 10.0])
    gaussian = VAE((4,), latent_dim=2, hidden=(8,), likelihood="gaussian")
    gaussian.initialize(real)  # a learned sd starts at the data's sd per dimension
    torch.testing.assert_close(gaussian.scale.detach(), real.std(0), check_dtype=False)
    pyrogen.fit(gaussian, real, method="svi", loss="iwae", num_particles=4, num_steps=20)
    assert torch.all(gaussian.scale > 0) and torch.isfinite(gaussian.log_prob(real, 50)).all()


def test_vamp_prior_learns_its_pseudo_inputs_from_a_data_start(tmp_path):
    x = (torch.rand(64, 6, generator=torch.Generator().manual_seed(0)) < 0.4).double()
    vae = VAE((6,), latent_dim=2, hidden=(8,), prior="vamp", num_pseudo=4)
    vae.initialize(x)
    start = torch.sigmoid(vae.raw_pseudo).detach().clone()
    # each pseudo-input starts at a training example, squeezed into [0.05, 0.95]
    matches = ((start[:, None] - (0.05 + 0.9 * x)[None]).abs().amax(-1) < 1e-6).any(-1)
    assert bool(matches.all())
    fit = pyrogen.fit(vae, x, method="svi", batch_size=16, num_epochs=20, lr=0.01)
    assert np.isfinite(fit.losses).all()
    learned = torch.sigmoid(vae.raw_pseudo.detach())
    assert float((learned - start).abs().max()) > 1e-3
    vae.save(tmp_path / "vamp.pt")
    loaded = VAE.load(tmp_path / "vamp.pt")
    assert loaded.config.prior == "vamp" and loaded.config.num_pseudo == 4
    torch.testing.assert_close(loaded.log_prob(x, 100), vae.log_prob(x, 100))


def test_autoencoder_reconstructs_and_has_no_sampler(tmp_path):
    x = (torch.rand(64, 6, generator=torch.Generator().manual_seed(0)) < 0.4).double()
    ae = Autoencoder((6,), latent_dim=6, hidden=(32,))
    before = float(ae.log_prob(x).mean())
    pyrogen.fit(ae, x, method="mle", num_steps=300, lr=0.02)
    assert float(ae.log_prob(x).mean()) > before + 1.0
    with pytest.raises(NotImplementedError, match="no prior"):
        ae.sample(3)
    ae.save(tmp_path / "ae.pt")
    torch.testing.assert_close(Autoencoder.load(tmp_path / "ae.pt").log_prob(x), ae.log_prob(x))


def test_vae_bad_input_names_the_argument():
    vae = VAE((4,), latent_dim=2, hidden=(8,))
    with pytest.raises(ValueError, match="x: expected binary data"):
        pyrogen.fit(vae, np.full((5, 4), 0.5), num_steps=1)
    with pytest.raises(ValueError, match=r"x: expected shape \(N, 4\)"):
        pyrogen.fit(vae, np.zeros((5, 3)), num_steps=1)
    with pytest.raises(ValueError, match="x: contains NaN"):
        pyrogen.fit(vae, np.full((5, 4), np.nan), num_steps=1)
    with pytest.raises(ValueError, match="x: .*empty"):
        pyrogen.fit(vae, np.zeros((0, 4)), num_steps=1)
    with pytest.raises(ValueError, match="latent_dim"):
        VAE((4,), latent_dim=0)
    with pytest.raises(ValueError, match="corruption"):
        VAE((4,), corruption=1.5)
    with pytest.raises(ValueError, match="likelihood"):
        VAE((4,), likelihood="poisson")
    with pytest.raises(ValueError, match="prior"):
        VAE((4,), prior="gaussian_mixture")
    with pytest.raises(ValueError, match="num_pseudo"):
        VAE((4,), prior="vamp", num_pseudo=0)
    with pytest.raises(ValueError, match="data_shape"):
        VAE((6, 6), architecture="conv")
    with pytest.raises(ValueError, match="num_epochs: give batch_size"):
        pyrogen.fit(vae, np.zeros((5, 4)), num_epochs=2)
    with pytest.raises(ValueError, match="batch_size: minibatches need"):
        pyrogen.fit(lambda x: None, np.zeros((5, 4)), batch_size=2)
    with pytest.raises(ValueError, match="num_samples"):
        vae.log_prob(np.zeros((2, 4)), num_samples=0)


@pytest.mark.parametrize("model", ["vamp", "hvae"])
def test_evaluation_draws_in_chunks_that_count_the_vamp_prior(model, monkeypatch):
    """log_prob, elbo, elbo_terms and psis_khat never draw more than about 2**22 numbers
    at once, counting the VampPrior's K component log-densities per draw (in float64;
    before they were one product, the K x d terms: the bench's 500 test digits x 1000
    draws at once asked for 40 GB), and the blocks still cover every example and draw."""
    torch.manual_seed(0)
    options = dict(hidden=(16,), prior="vamp", num_pseudo=500)
    if model == "vamp":
        vae = VAE((784,), latent_dim=40, **options)
    else:
        vae = HierarchicalVAE((784,), 40, 8, **options)
    per_draw = vae._numbers_per_draw()
    assert per_draw >= 2 * 500 + 784
    x = torch.bernoulli(torch.full((30, 784), 0.3))
    held, prior_builds = [], []
    draw, latent_prior = vae._draw, vae.latent_prior

    def spy_draw(x, encoded, prior, count, generator=None):
        held.append(count * len(x) * per_draw)
        return draw(x, encoded, prior, count, generator)

    def spy_prior():
        prior_builds.append(1)
        return latent_prior()

    monkeypatch.setattr(vae, "_draw", spy_draw)
    monkeypatch.setattr(vae, "latent_prior", spy_prior)
    assert vae.psis_khat(x, num_samples=100).shape == (30,)
    assert vae.log_prob(x, num_samples=100).shape == (30,)
    assert vae.elbo(x, num_samples=3).shape == (30,)
    terms = vae.elbo_terms(x)
    assert terms["kl"].shape == terms["reconstruction"].shape == (30,)
    assert len(held) > 4 and max(held) <= 2**22
    assert len(prior_builds) == 4  # once per call, not once per block of examples


def test_elbo_terms_in_blocks_equal_the_closed_form_over_all_examples():
    torch.manual_seed(1)
    vae = VAE((784,), latent_dim=5, hidden=(8,))
    x = torch.bernoulli(torch.full((6000, 784), 0.2))
    assert len(x) > 2**22 // vae._numbers_per_draw()  # more than one block
    kl = vae.elbo_terms(x)["kl"]
    with torch.no_grad():
        loc, scale = vae.encoder(x)
    expected = torch.distributions.kl_divergence(
        torch.distributions.Normal(loc, scale), torch.distributions.Normal(0.0, 1.0)
    ).sum(-1)
    torch.testing.assert_close(kl, expected)


def test_encoder_pair_input_equals_the_concatenated_input():
    """MLPEncoder.forward_pair (x's part of the first layer once, draws broadcast
    against it) is the encoder of [x, z] with x copied beside every draw."""
    from pyrogen.nn.vae_nets import MLPEncoder

    torch.manual_seed(0)
    encoder = MLPEncoder((7,), 3, (11, 5))
    x, z = torch.randn(4, 5), torch.randn(6, 4, 2)
    pair = encoder.forward_pair(x, z)
    joined = encoder(torch.cat([x.expand(6, 4, 5), z], -1))
    for a, b in zip(pair, joined):
        assert a.shape == (6, 4, 3)
        torch.testing.assert_close(a, b)


def test_iaf_posterior_and_maf_prior_meet_a_2d_quadrature(tmp_path):
    """latent_dim = 2 with an IAF guide and a MAF prior: p(x) over all binary x is a
    2-D integral of p(x | z) p(z) with the flow prior's density; it sums to 1, and the
    IWAE estimate with the IAF proposal meets it (a wrong log q(z | x) of the IAF's
    draws would bias it), the ELBO stays below it."""
    torch.manual_seed(7)
    vae = VAE((4,), latent_dim=2, hidden=(16,), posterior_flow=2, prior_flow=2, flow_hidden=8)
    with torch.no_grad():
        for p in vae.decoder.parameters():
            p.mul_(3.0)
        for p in [*vae.prior_flows.parameters(), *vae.posterior_flows.parameters()]:
            p.add_(0.3 * torch.randn_like(p))
    vae.eval()
    with torch.no_grad():  # a proposal that covers the prior: q(z_0 | x) three times as wide
        draws = vae.latent_prior().sample((20000,))
        last = vae.encoder.net[-1]
        last.weight[:4].zero_()
        last.bias[:2] = draws.mean(0)
        last.bias[2:4] = torch.log(torch.expm1(3 * draws.std(0)))
    grid = torch.linspace(-9, 9, 1201)
    zz = torch.stack(torch.meshgrid(grid, grid, indexing="ij"), -1).reshape(-1, 2)
    x = _all_binary(4)
    with torch.no_grad():
        log_pz = vae.latent_prior().log_prob(zz)
        assert float(log_pz.exp().sum() * (grid[1] - grid[0]) ** 2) == pytest.approx(1, abs=1e-3)
        standard = torch.distributions.Normal(0.0, 1.0).log_prob(zz).sum(-1)
        assert float((log_pz.exp() - standard.exp()).abs().max()) > 0.01  # a learned prior
        log_joint = vae._likelihood(vae.decoder(zz)[:, None]).log_prob(x) + log_pz[:, None]
        exact = log_joint.logsumexp(0) + 2 * math.log(float(grid[1] - grid[0]))
    assert float(exact.exp().sum()) == pytest.approx(1.0, abs=2e-3)
    np.testing.assert_allclose(vae.log_prob(x, num_samples=200000), exact, atol=0.03)
    assert torch.all(vae.elbo(x, num_samples=4000) < exact + 1e-3)
    assert vae.elbo_terms(x)["kl"].shape == (16,) and vae.sample(5).shape == (5, 4)
    # the guide's site is the IAF's density, and the model's prior the MAF's
    trace = pyro.poutine.trace(vae.guide).get_trace(x)
    z = trace.nodes["z"]["value"]
    assert isinstance(trace.nodes["z"]["fn"], pyro.distributions.TransformedDistribution)
    assert torch.isfinite(trace.nodes["z"]["fn"].log_prob(z)).all()
    # it trains (a Monte Carlo KL: no closed form), and reloads to the same estimate
    fit = pyrogen.fit(vae, x.repeat(8, 1), method="svi", loss="mean_field", num_steps=30,
                      progress=False)  # fmt: skip
    assert np.isfinite(fit.losses).all()
    vae.save(tmp_path / "vae.pt")
    again = VAE.load(tmp_path / "vae.pt")
    torch.testing.assert_close(again.log_prob(x, num_samples=50), vae.log_prob(x, num_samples=50))


def test_flow_options_are_checked_by_name():
    with pytest.raises(ValueError, match="prior: the VampPrior .* takes no posterior_flow"):
        VAE((4,), latent_dim=2, prior="vamp", posterior_flow=1)
    with pytest.raises(ValueError, match="latent_dim: autoregressive flows need"):
        VAE((4,), latent_dim=1, prior_flow=1)
    with pytest.raises(ValueError, match="posterior_flow"):
        VAE((4,), latent_dim=2, posterior_flow=-1)
