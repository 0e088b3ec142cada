"""The adversarial engine: its losses against closed forms, the loop's services
(checkpoint and resume, a clear stop on NaN, early stopping on a held-out score) and
its options."""

import math

import numpy as np
import pytest
import torch
from pyrogen.models import GAN
from torch import nn

import pyrogen
from pyrogen.infer.adversarial import (
    AdversarialEngine,
    AdversarialOptions,
    HeldOutScore,
    critic_loss,
    player_loss,
)


class Linear(nn.Module):
    """D(u) = a u + b on 1-D parts."""

    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Parameter(torch.zeros(())), nn.Parameter(torch.zeros(()))

    def forward(self, u):
        return self.a * u[:, 0] + self.b


def _train_critic(loss, p, q, steps=1500, lr=0.05, penalty=10.0):
    torch.manual_seed(0)
    critic = Linear()
    optim = torch.optim.Adam(critic.parameters(), lr=lr)
    for _ in range(steps):
        optim.zero_grad()
        critic_loss(critic, {"x": p}, {"x": q}, ("x",), loss, penalty).backward()
        optim.step()
    return critic


def test_the_non_saturating_critic_learns_the_log_density_ratio():
    """At its optimum the logistic critic is log q(u)/p(u); for N(1, 1) against N(0, 1)
    that is u - 1/2 (the density-ratio reading of GANs), a linear function."""
    torch.manual_seed(1)
    p, q = torch.randn(20000, 1), 1.0 + torch.randn(20000, 1)
    critic = _train_critic("ns", p, q)
    assert critic.a.item() == pytest.approx(1.0, abs=0.05)
    assert critic.b.item() == pytest.approx(-0.5, abs=0.05)


def test_the_wgan_gp_critic_has_its_closed_form_optimum():
    """With D(u) = a u the critic loss is a (E_p u - E_q u) + lambda (|a| - 1)^2, whose
    minimum is at a = 1 + (E_q u - E_p u) / (2 lambda); the loss there is minus the
    Wasserstein-1 distance (mu) up to the penalty's share."""
    torch.manual_seed(1)
    mu, lam = 1.5, 2.0
    p, q = torch.randn(20000, 1), mu + torch.randn(20000, 1)
    critic = _train_critic("wgan-gp", p, q, steps=3000, penalty=lam)
    shift = (q.mean() - p.mean()).item()
    assert critic.a.item() == pytest.approx(1 + shift / (2 * lam), abs=0.02)


def test_the_hinge_critic_separates_distant_sides():
    torch.manual_seed(1)
    p, q = torch.randn(5000, 1), 6.0 + torch.randn(5000, 1)
    critic = _train_critic("hinge", p, q)
    with torch.no_grad():
        assert (critic(q) > 0).double().mean() > 0.97 and (critic(p) < 0).double().mean() > 0.97


def test_player_losses_push_only_sides_with_parameters():
    critic = Linear()
    with torch.no_grad():
        critic.a.fill_(2.0)
    theta = torch.tensor(0.5, requires_grad=True)
    p = {"x": theta * torch.ones(4, 1)}  # a generator's side
    q = {"x": torch.ones(4, 1)}  # data
    loss = player_loss(critic, p, q, ("x",), "wgan-gp")
    (grad,) = torch.autograd.grad(loss, theta)
    assert grad.item() == pytest.approx(-2.0)  # -d D(theta)/d theta
    ns = player_loss(critic, p, q, ("x",), "ns")  # -log sigmoid(D(p))
    assert ns.item() == pytest.approx(math.log1p(math.exp(-1.0)))
    with pytest.raises(ValueError, match="neither side"):
        player_loss(critic, q, q, ("x",), "ns")


def _gan():
    torch.manual_seed(5)  # the same start whatever ran before
    return GAN((1,), latent_dim=2, hidden=(16,), critic_hidden=(16,))


def _data(n=512):
    return 3.0 + 0.5 * np.random.default_rng(0).normal(size=(n, 1))


@pytest.mark.parametrize("loss", ["ns", "hinge"])
def test_a_gan_learns_a_gaussian(loss):
    """x = G(z) fitted to N(3, 0.5^2): the samples' mean and sd reach the data's.
    (WGAN-GP at these sizes and lr 1e-3 overshoots to a mean near 10, in a hand-written
    loop as in the engine: its check is the closed-form critic above and the
    step-for-step agreement with that loop below.)"""
    model = _gan()
    pyrogen.fit(
        model,
        _data(4000),
        method="adversarial",
        num_steps=1500,
        lr=1e-3,
        batch_size=256,
        loss=loss,
        progress=False,
    )
    torch.manual_seed(0)
    draws = model.sample(20000)
    assert draws.mean().item() == pytest.approx(3.0, abs=0.1)
    assert draws.std().item() == pytest.approx(0.5, abs=0.1)


@pytest.mark.parametrize(
    "loss, m, noise",
    [("ns", 1, 0.0), ("wgan-gp", 1, 0.0), ("hinge", 1, 0.0), ("ns", 4, 0.0), ("ns", 1, 0.3),
     ("hinge", 2, 0.3)],
)  # fmt: skip
def test_the_engine_takes_the_steps_of_a_hand_written_gan_loop(loss, m, noise):
    """A second implementation: the textbook loop (critic steps on detached fakes, then
    the generator on the last fakes), same seeds, full batches, takes the same steps;
    with m > 1 the critic reads m examples at once (PacGAN); with instance noise both
    sides get Gaussian noise of sd noise (1 - (t - 1) / 3) at step t, none from the
    fourth on."""
    import copy

    from torch.nn import functional as F

    x = torch.as_tensor(_data(64))
    model = _gan()
    twin = copy.deepcopy(model)
    options = dict(lr=1e-3, critic_steps=2, betas=(0.5, 0.9))
    result = pyrogen.fit(
        model,
        x,
        method="adversarial",
        num_steps=5,
        batch_size=64,
        loss=loss,
        progress=False,
        pack=m,
        instance_noise=noise,
        noise_steps=3,
        **options,
    )
    torch.manual_seed(0)
    critic = twin.make_critic(m)
    G, n = twin.generator, len(x)
    opt_g = torch.optim.Adam(G.parameters(), lr=1e-3, betas=(0.5, 0.9))
    opt_d = torch.optim.Adam(critic.parameters(), lr=1e-3, betas=(0.5, 0.9))
    order, first = torch.randperm(n), True
    for t in range(1, 6):
        sd = noise * max(0.0, 1 - (t - 1) / 3)
        for _ in range(2):
            order = order if first else torch.randperm(n)
            first = False
            real, fake = x[order], G(torch.randn(n, 2))
            if sd > 0:
                fake = fake + sd * torch.randn_like(fake)
                real = real + sd * torch.randn_like(real)
            real, fake = real.reshape(n // m, m), fake.reshape(n // m, m)  # m at once
            d_real, d_fake = critic(real), critic(fake.detach())
            if loss == "ns":
                loss_d = F.softplus(-d_real).mean() + F.softplus(d_fake).mean()
            elif loss == "hinge":
                loss_d = F.relu(1 - d_real).mean() + F.relu(1 + d_fake).mean()
            else:
                e = torch.rand(n // m)[:, None]
                u = (e * real + (1 - e) * fake.detach()).requires_grad_(True)
                (g,) = torch.autograd.grad(critic(u).sum(), u, create_graph=True)
                loss_d = d_fake.mean() - d_real.mean() + 10 * ((g.norm(dim=1) - 1) ** 2).mean()
            opt_d.zero_grad()
            loss_d.backward()
            opt_d.step()
        d_fake = critic(fake)
        loss_g = F.softplus(-d_fake).mean() if loss == "ns" else -d_fake.mean()
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
    assert result.losses[-1] == pytest.approx(loss_g.item(), rel=1e-9)
    for a, b in zip(model.generator.parameters(), G.parameters()):
        torch.testing.assert_close(a, b)
    for a, b in zip(result.critic.parameters(), critic.parameters()):
        torch.testing.assert_close(a, b)


def test_instance_noise_falls_linearly_to_zero_over_three_quarters_of_the_run():
    x = torch.as_tensor(_data())
    model = _gan().double()
    critic = model.make_critic().double()
    options = AdversarialOptions(lr=1e-3, instance_noise=0.5)
    engine = AdversarialEngine(model, critic, x, options, 64, noise_steps=4)
    assert [engine.noise_sd(t) for t in range(1, 7)] == [0.5, 0.375, 0.25, 0.125, 0.0, 0.0]
    result = pyrogen.fit(_gan(), _data(), method="adversarial", num_steps=40, lr=1e-3,
                         instance_noise=0.5, progress=False)  # fmt: skip
    assert result.diagnostics["noise_steps"] == 30
    explicit = AdversarialOptions(lr=1e-3, instance_noise=0.5, noise_steps=7)
    assert AdversarialEngine(model, critic, x, explicit, 64, noise_steps=4).noise_steps == 7


def test_resuming_a_checkpoint_retraces_the_uninterrupted_run(tmp_path):
    options = dict(method="adversarial", lr=1e-3, batch_size=64, progress=False)
    whole = pyrogen.fit(_gan(), _data(), num_steps=30, **options)
    path = tmp_path / "run.ckpt"
    first = _gan()
    pyrogen.fit(first, _data(), num_steps=12, checkpoint=path, checkpoint_every=4, **options)
    resumed = _gan()
    result = pyrogen.fit(resumed, _data(), num_steps=30, checkpoint=path, **options)
    assert result.diagnostics["resumed_from"] == 12
    np.testing.assert_allclose(result.losses, whole.losses, rtol=1e-10)
    np.testing.assert_allclose(
        result.diagnostics["critic_losses"], whole.diagnostics["critic_losses"], rtol=1e-10
    )
    for a, b in zip(resumed.state_dict().values(), whole.model.state_dict().values()):
        torch.testing.assert_close(a, b)
    for a, b in zip(result.critic.state_dict().values(), whole.critic.state_dict().values()):
        torch.testing.assert_close(a, b)


def test_a_nan_loss_stops_with_its_name_and_keeps_the_last_checkpoint(tmp_path):
    model = _gan()
    path = tmp_path / "run.ckpt"
    calls = {"n": 0}
    forward = model.generator.forward

    def poisoned(z):  # the generator breaks at its 25th call
        calls["n"] += 1
        out = forward(z)
        return out * float("nan") if calls["n"] >= 25 else out

    model.generator.forward = poisoned
    with pytest.raises(FloatingPointError, match="critic loss became nan at step 25"):
        pyrogen.fit(
            model,
            _data(),
            method="adversarial",
            num_steps=100,
            checkpoint=path,
            checkpoint_every=10,
            progress=False,
        )
    before = path.read_bytes()
    resumed = pyrogen.fit(
        _gan(), _data(), method="adversarial", num_steps=20, checkpoint=path, progress=False
    )
    assert resumed.diagnostics["resumed_from"] == 20 and path.read_bytes() == before


def test_early_stopping_on_a_held_out_score_restores_the_best_state():
    model = _gan()
    scores = iter([5.0, 3.0, 4.0, 4.5, 6.0, 1.0])
    seen = {}

    def score():
        value = next(scores)
        if value == 3.0:
            seen["best"] = {k: v.clone() for k, v in model.named_parameters()}
        return value

    stop = HeldOutScore(score, every=5, patience=3)
    result = pyrogen.fit(
        model, _data(), method="adversarial", num_steps=100, callback=stop, progress=False
    )
    assert result.num_steps == 25  # scores at 5, 10 (best), 15, 20, 25: three without a gain
    assert result.diagnostics["best_step"] == 10 and stop.best == 3.0
    for key, value in model.named_parameters():
        torch.testing.assert_close(value, seen["best"][key])


def test_the_progress_bar_shows_both_losses():
    model = _gan()
    x = torch.as_tensor(_data())
    critic = model.make_critic().double()
    engine = AdversarialEngine(model.double(), critic, x, AdversarialOptions(lr=1e-3), 64)
    engine.update()
    assert set(engine.postfix()) == {"critic"}


@pytest.mark.parametrize(
    "options, match",
    [
        ({"loss": "elbo"}, "loss"),
        ({"critic_steps": 0}, "critic_steps"),
        ({"critic_lr": -1.0}, "critic_lr"),
        ({"betas": (0.5, 1.5)}, "betas"),
        ({"guide": "mean_field"}, "guide"),
        ({"num_particles": 4}, "num_particles"),
        ({"instance_noise": -0.1}, "instance_noise"),
        ({"instance_noise": float("nan")}, "instance_noise"),
        ({"noise_steps": 0}, "noise_steps"),
        ({"optim": "sgd"}, "optim"),
        ({"jit": True}, "jit"),
        ({"fast_elbo": False}, "fast_elbo"),
        ({"convergence": "rule"}, "convergence"),
    ],
)
def test_bad_options_are_refused_by_name(options, match):
    with pytest.raises(ValueError, match=match):
        pyrogen.fit(_gan(), _data(), method="adversarial", num_steps=2, progress=False, **options)


def test_models_without_a_critic_are_refused():
    from pyrogen.models import VAE

    with pytest.raises(ValueError, match="method"):
        pyrogen.fit(
            VAE((6,), latent_dim=2, hidden=(4,)),
            np.zeros((4, 6)),
            method="adversarial",
            progress=False,
        )


def test_packing_needs_a_batch_it_divides():
    with pytest.raises(ValueError, match="pack"):
        pyrogen.fit(
            _gan(),
            _data(),
            method="adversarial",
            num_steps=2,
            batch_size=30,
            pack=4,
            progress=False,
        )
