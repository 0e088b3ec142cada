"""DDPM against known answers: the schedule's Gaussian algebra, the variational bound of
a tiny chain computed by hand (Pyro's ELBOs, the closed-form bound and the one-step
loss all estimate it), Analytic-DPM's variance against the exact reverse variance of
Gaussian data, diffusers' DDIM stepping the same network, the discretized decoder."""

import math

import numpy as np
import pyro
import pytest
import torch
from pyrogen.models import DDPM

import pyrogen
from pyrogen.diffusion import NoiseSchedule, gaussian_kl
from pyrogen.distributions.discretized import DiscretizedNormal


# -- the schedule -------------------------------------------------------------------------
def test_linear_and_cosine_schedules_are_the_papers():
    linear = NoiseSchedule(1000, "linear")
    assert float(linear.betas[0]) == pytest.approx(1e-4) and float(linear.betas[-1]) == 0.02
    assert float(NoiseSchedule(100).betas[-1]) == pytest.approx(0.2)  # scaled by 1000 / T
    cosine = NoiseSchedule(50, "cosine")
    t = torch.arange(51, dtype=torch.float64) / 50
    f = torch.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2
    torch.testing.assert_close(cosine.alpha_bar[:-1], (f / f[0])[:-1])  # last beta clipped
    assert float(cosine.betas.max()) <= 0.999


def test_trajectories_run_from_1_to_T():
    schedule = NoiseSchedule(1000)
    assert schedule.trajectory(10).tolist() == [0, 1, 112, 223, 334, 445, 556, 667, 778, 889, 1000]
    assert schedule.trajectory().tolist() == list(range(1001))
    assert schedule.trajectory(1).tolist() == [0, 1000]
    assert schedule.trajectory(1000).tolist() == list(range(1001))
    path = schedule.trajectory(7).tolist()
    assert path[:2] == [0, 1] and path[-1] == 1000 and len(set(path)) == 8
    assert schedule.trajectory(range(100, 1001, 100)).tolist() == list(range(0, 1001, 100))
    with pytest.raises(ValueError, match="steps: at most the chain's 1000 steps"):
        schedule.trajectory(1001)
    with pytest.raises(ValueError, match="steps: must increase from 1 or more to 1000"):
        schedule.trajectory([10, 5, 1000])
    with pytest.raises(ValueError, match="steps: must increase"):
        schedule.trajectory([10, 500])


@pytest.mark.parametrize("eta", [0.0, 0.5, 1.0])
def test_the_forward_posterior_keeps_the_marginals(eta):
    """q(x_s | x_t, x_0) averaged over q(x_t | x_0) is q(x_s | x_0), for every lambda."""
    schedule = NoiseSchedule(1000, "cosine")
    s, t = torch.tensor([0, 10, 300, 700]), torch.tensor([5, 40, 500, 1000])
    pair = schedule.pair(s, t, eta)
    root_t, sd_t = schedule.marginal(t)
    root_s, sd_s = schedule.marginal(s)
    torch.testing.assert_close(pair.a + pair.b * root_t, root_s)
    torch.testing.assert_close(pair.b**2 * sd_t**2 + pair.lambda2, sd_s**2)


def test_consecutive_steps_give_ho_et_al_posterior():
    schedule = NoiseSchedule(100)
    t = torch.arange(2, 101)
    pair = schedule.pair(t - 1, t)
    beta, alpha_bar, previous = (
        schedule.betas[t - 1],
        schedule.alpha_bar[t],
        schedule.alpha_bar[t - 1],
    )
    torch.testing.assert_close(pair.a, previous.sqrt() * beta / (1 - alpha_bar))  # Eq. 7
    torch.testing.assert_close(pair.b, (1 - beta).sqrt() * (1 - previous) / (1 - alpha_bar))
    torch.testing.assert_close(pair.lambda2, (1 - previous) / (1 - alpha_bar) * beta)
    torch.testing.assert_close(pair.beta, beta)


# -- the bound of a tiny chain, by hand --------------------------------------------------------
class _ExactNoise(torch.nn.Module):
    """E[eps | x_t] for data N(m, s^2): the perfect noise predictor, linear in x_t."""

    def __init__(self, schedule, m, s):
        super().__init__()
        self.alpha_bar, self.m, self.s = schedule.alpha_bar.float(), m, s
        self.unused = torch.nn.Parameter(torch.zeros(()))

    def forward(self, y, t):
        ab = self.alpha_bar[t.long()].reshape(-1, *([1] * (y.dim() - 1)))
        v = ab * self.s**2 + 1 - ab
        return (1 - ab).sqrt() / v * (y - ab.sqrt() * self.m) + 0 * self.unused


def _gaussian_ddpm(m=0.5, s=0.3, num_steps=100, variance="beta"):
    model = DDPM([1], timesteps=num_steps, hidden=(4,), variance=variance)
    model.network = _ExactNoise(model.schedule, m, s)
    model.standardized.fill_(True)  # shift 0, scale 1: the chain's space is the data's
    return model


def _hand_bound(model, x0: float, m: float, s: float) -> float:
    """E_q[log p(x_{0:T}) - log q(x_{1:T} | x_0)] from the Gaussian moments of q, for
    the network of N(m, s^2) data: every reverse mean is linear in x_t."""
    sch = model.schedule
    T = sch.num_steps
    ab = sch.alpha_bar.tolist()
    beta = sch.betas.tolist()
    mu = [math.sqrt(a) * x0 for a in ab]
    var = [1 - a for a in ab]

    def line(t):  # the reverse mean slope * x_t + intercept, from Ho et al.'s posterior
        a = math.sqrt(ab[t - 1]) * beta[t - 1] / (1 - ab[t])
        b = math.sqrt(1 - beta[t - 1]) * (1 - ab[t - 1]) / (1 - ab[t])
        v = ab[t] * s**2 + 1 - ab[t]  # x0_hat = E[x_0 | x_t], linear in x_t
        return a * (1 - (1 - ab[t]) / v) / math.sqrt(ab[t]) + b, a * (1 - ab[t]) * m / v

    bound = -0.5 * math.log(2 * math.pi) - 0.5 * (mu[T] ** 2 + var[T])  # log p(x_T)
    bound += 0.5 * math.log(2 * math.pi * math.e * var[T])  # entropy of q(x_T | x_0)
    for t in range(T, 0, -1):
        (slope, intercept), sigma2 = line(t), beta[t - 1]  # variance "beta": beta_t
        cov = math.sqrt(ab[t] / ab[t - 1]) * var[t - 1]  # Cov(x_{t-1}, x_t) under q
        second = (mu[t - 1] - slope * mu[t] - intercept) ** 2 + var[t - 1] + slope**2 * var[t]
        second -= 2 * slope * cov
        bound += -0.5 * math.log(2 * math.pi * sigma2) - 0.5 * second / sigma2
        if t > 1:  # the entropy of q(x_{t-1} | x_t, x_0): beta-tilde_t
            beta_tilde = (1 - ab[t - 1]) / (1 - ab[t]) * beta[t - 1]
            bound += 0.5 * math.log(2 * math.pi * math.e * beta_tilde)
    return bound


def _within(estimates: torch.Tensor, value: float, sds: float = 4.0) -> None:
    mean = float(estimates.mean())
    error = float(estimates.std()) / math.sqrt(len(estimates))
    assert abs(mean - value) < sds * error, (mean, value, error)


def _trace_elbo_per_example(model, x):
    """Trace_ELBO's estimate example by example: log p - log q at one guide draw."""
    guide = pyro.poutine.trace(model.guide).get_trace(x)
    joint = pyro.poutine.trace(pyro.poutine.replay(model.model, trace=guide)).get_trace(x)
    total = 0.0
    for name, site in joint.nodes.items():
        if site["type"] == "sample":
            total = total + site["fn"].log_prob(site["value"])
            if name in guide.nodes:
                total = total - guide.nodes[name]["fn"].log_prob(site["value"])
    return total.detach()


@pytest.mark.parametrize("num_steps", [1, 3, 6])
def test_pyro_elbos_the_bound_and_the_one_step_loss_estimate_the_hand_bound(num_steps):
    torch.manual_seed(0)
    m, s, x0 = 0.5, 0.3, 0.7
    model = _gaussian_ddpm(m, s, num_steps)
    exact = _hand_bound(model, x0, m, s)
    x = torch.full((40000, 1), x0)
    _within(model.log_prob(x, seed=1), exact)  # the closed-form bound
    per_example = _trace_elbo_per_example(model, x)  # Pyro's Trace_ELBO, example by example
    _within(per_example, exact)
    assert -pyro.infer.Trace_ELBO().loss(model.model, model.guide, x) / len(x) == pytest.approx(
        float(per_example.mean()), abs=4 * float(per_example.std()) / math.sqrt(len(x))
    )
    # TraceMeanField_ELBO: closed-form KLs, less variance than Trace_ELBO's
    mean_field = -pyro.infer.TraceMeanField_ELBO().loss(model.model, model.guide, x) / len(x)
    assert abs(mean_field - exact) < 4 * float(per_example.std()) / math.sqrt(len(x))
    with torch.no_grad():  # the one-step estimate the engine trains with (loss="elbo")
        _within(-model.loss_terms(x, "elbo"), exact)


def test_the_mean_field_elbo_equals_the_closed_form_terms_draw_for_draw():
    """TraceMeanField_ELBO's KLs at the guide's draws are the closed-form step KLs."""
    torch.manual_seed(1)
    model = DDPM([2], timesteps=4, hidden=(8,))
    x = torch.randn(6, 2)
    model.initialize(x)
    trace = pyro.poutine.trace(model.guide).get_trace(x)
    replayed = pyro.poutine.trace(pyro.poutine.replay(model.model, trace=trace)).get_trace(x)
    y0 = model.to_chain(x)
    total = 0.0
    for t in range(4, 1, -1):
        q = trace.nodes[f"x_{t - 1}"]["fn"]
        p = replayed.nodes[f"x_{t - 1}"]["fn"]
        pyro_kl = torch.distributions.kl_divergence(q, p)
        ours = model.step_kl(y0, trace.nodes[f"x_{t}"]["value"], t - 1, t, t + 1 if t < 4 else None)
        torch.testing.assert_close(pyro_kl, ours)
        total += ours.sum()
    assert torch.isfinite(total)


def test_the_simple_loss_is_the_bound_reweighted():
    """For noise prediction, each step's KL is w_t ||eps - eps_hat||^2 (sigma^2 = beta-tilde)."""
    torch.manual_seed(2)
    model = DDPM([3], timesteps=50, hidden=(16,), variance="beta_tilde")
    model.initialize(torch.randn(10, 3))
    y0 = torch.randn(10, 3)
    t = 20
    y_t, eps = model.diffuse(y0, torch.full((10,), t))
    eps_hat, _ = model.predict(y_t, torch.full((10,), t))
    pair = model.schedule.pair(torch.tensor(t - 1), torch.tensor(t))
    weight = float(pair.a**2 * (1 - pair.alpha_bar_t) / (2 * pair.lambda2 * pair.alpha_bar_t))
    expected = weight * ((eps - eps_hat) ** 2).sum(1)
    torch.testing.assert_close(model.step_kl(y0, y_t, t - 1, t), expected, rtol=1e-4, atol=1e-6)


# -- Analytic-DPM against Gaussian data -------------------------------------------------------
def test_the_analytic_variance_is_the_exact_reverse_variance_of_gaussian_data():
    """With the perfect noise predictor of N(m, s^2) data, Var(x_s | x_t) is
    lambda^2 + a^2 Var(x_0 | x_t): Theorem 1 of Analytic-DPM at the exact Gamma_t, for
    DDPM, DDIM and between; and the Monte Carlo Gamma_t is within its error."""
    torch.manual_seed(3)
    m, s = 0.5, 0.3
    model = _gaussian_ddpm(m, s)
    ab = model.schedule.alpha_bar
    exact_gap = ab * s**2 / (ab * s**2 + 1 - ab)  # 1 - Gamma_t = 1 - E eps_hat^2
    x = m + s * torch.randn(20000, 1)
    gamma = model.estimate_moments(x, steps=10, num_samples=20000)
    path = model.schedule.trajectory(10).tolist()
    error = (1 - gamma[path[1:]]) - exact_gap[path[1:]]
    # Monte Carlo error: about 2e-3 sd per step at M = 20,000 with the control variate
    assert error.abs().max() < 1e-2 and error.abs().mean() < 3e-3, error
    model.gamma_gap.copy_(exact_gap)  # the exact Gamma_t: the theorem to the letter
    for eta in (1.0, 0.5, 0.0):
        for k in range(2, 11):
            sp, t = path[k - 1], path[k]
            _, variance, _ = model.reverse(torch.zeros(1, 1), sp, t, variance="analytic", eta=eta)
            pair = model.schedule.pair(torch.tensor(sp), torch.tensor(t), eta)
            posterior = s**2 * (1 - ab[t]) / (ab[t] * s**2 + 1 - ab[t])  # Var(x_0 | x_t)
            exact = pair.lambda2 + pair.a**2 * posterior
            assert float(variance) == pytest.approx(float(exact), rel=1e-4), (eta, t)


def test_the_analytic_variance_gives_the_best_bound_at_few_steps_and_below_the_truth():
    torch.manual_seed(4)
    m, s = 0.5, 0.3
    model = _gaussian_ddpm(m, s)
    x = m + s * torch.randn(4000, 1)
    model.estimate_moments(x, num_samples=4000)
    true = torch.distributions.Normal(m, s).log_prob(x[:, 0]).mean()
    for steps in (5, 10, 25):
        bounds = {
            v: model.log_prob(x, steps=steps, variance=v).mean()
            for v in ("beta", "beta_tilde", "analytic")
        }
        assert bounds["analytic"] > max(bounds["beta"], bounds["beta_tilde"]), (steps, bounds)
        assert bounds["analytic"] < true + 0.01, (steps, bounds, true)  # a lower bound
    full = model.log_prob(x, variance="analytic").mean()
    assert abs(full - true) < 0.05


def test_sampling_with_the_perfect_network_and_variance_draws_the_exact_chain():
    """Gaussian data have Gaussian reverse conditionals: with the exact mean and the
    exact (analytic) variance, the samplers over 10 steps draw x_tau1 from q(x_tau1),
    so the last step's output, the mean E[x_0 | x_tau1], has mean m and variance
    s^4 alpha_bar / V (V = alpha_bar s^2 + 1 - alpha_bar), exactly."""
    m, s = 0.5, 0.3
    model = _gaussian_ddpm(m, s)
    ab = model.schedule.alpha_bar
    model.gamma_gap.copy_(ab * s**2 / (ab * s**2 + 1 - ab))
    model.gamma_weights.copy_(model._weights_checksum())
    first = model.schedule.trajectory(10)[1]
    sd = math.sqrt(s**4 * ab[first] / (ab[first] * s**2 + 1 - ab[first]))
    for eta in (1.0, 0.5):
        draws = model.sample(40000, steps=10, eta=eta, variance="analytic", seed=0)[:, 0]
        assert float(draws.mean()) == pytest.approx(m, abs=0.005)
        assert float(draws.std()) == pytest.approx(sd, rel=0.015)  # 0.4% Monte Carlo sd
    fixed = model.sample(40000, steps=10, variance="beta", seed=0)[:, 0]
    assert float(fixed.std()) > 1.1 * sd  # beta over 10 steps: too wide


def test_ddim_is_deterministic_and_equals_diffusers_ddim_with_the_same_network():
    diffusers = pytest.importorskip("diffusers")
    torch.manual_seed(5)
    model = DDPM([2], timesteps=100, hidden=(16,))
    model.initialize(torch.randn(50, 2))
    uniform = list(range(10, 101, 10))  # diffusers' "trailing" steps, counted from 1
    ours = model.sample(8, steps=uniform, eta=0.0, variance="beta_tilde", seed=3)
    again = model.sample(8, steps=uniform, eta=0.0, variance="beta_tilde", seed=3)
    torch.testing.assert_close(ours, again)
    scheduler = diffusers.DDIMScheduler(
        num_train_timesteps=100,
        beta_schedule="linear",
        beta_start=float(model.schedule.betas[0]),
        beta_end=float(model.schedule.betas[-1]),
        clip_sample=False,
        set_alpha_to_one=True,
        timestep_spacing="trailing",
    )
    scheduler.set_timesteps(10)
    generator = torch.Generator().manual_seed(3)
    y = torch.randn(8, 2, generator=generator)
    with torch.no_grad():
        for step in scheduler.timesteps:
            eps = model.network(y, torch.full((8,), int(step) + 1))  # diffusers counts from 0
            y = scheduler.step(eps, step, y, eta=0.0).prev_sample
    torch.testing.assert_close(model.from_chain(y), ours, rtol=1e-4, atol=1e-4)


# -- Extended-Analytic-DPM ----------------------------------------------------------------------
class _ExactHead(torch.nn.Module):
    """The perfect second network for N(m, s^2) data: the log of E[(eps - eps_hat)^2 |
    x_t] (NPR, the constant 1 - Gamma_t) or of E[eps^2 | x_t] = eps_hat^2 + 1 - Gamma_t
    (SN)."""

    def __init__(self, noise, kind):
        super().__init__()
        self.noise, self.kind = noise, kind

    def forward(self, y, t):
        ab = self.noise.alpha_bar[t.long()].reshape(-1, *([1] * (y.dim() - 1)))
        gap = ab * self.noise.s**2 / (ab * self.noise.s**2 + 1 - ab)
        return torch.log(gap.expand_as(y) + (self.noise(y, t) ** 2 if self.kind == "sn" else 0))


@pytest.mark.parametrize("kind", ["npr", "sn"])
def test_a_perfect_second_network_gives_the_exact_reverse_variance(kind):
    m, s = 0.5, 0.3
    model = DDPM([1], timesteps=100, hidden=(4,), covariance=kind)
    model.network = _ExactNoise(model.schedule, m, s)
    model.covariance_net = _ExactHead(model.network, kind)
    model.covariance_fitted.fill_(True)
    model.standardized.fill_(True)
    ab = model.schedule.alpha_bar
    y_t = torch.linspace(-2, 2, 7)[:, None]
    for eta in (1.0, 0.0):
        for sp, t in ((0, 10), (10, 20), (40, 50), (90, 100)):
            _, variance, _ = model.reverse(y_t, sp, t, variance=kind, eta=eta)
            pair = model.schedule.pair(torch.tensor(sp), torch.tensor(t), eta)
            exact = pair.lambda2 + pair.a**2 * s**2 * (1 - ab[t]) / (ab[t] * s**2 + 1 - ab[t])
            torch.testing.assert_close(
                variance[:, 0].double(), exact.expand(7), rtol=1e-4, atol=1e-7
            )


def test_the_npr_network_learns_the_residual_with_the_mean_network_fixed():
    torch.manual_seed(6)
    m, s = 0.5, 0.3
    x = (m + s * torch.randn(4000, 1)).numpy()
    model = DDPM([1], timesteps=20, hidden=(32, 32), covariance="npr")
    model.network = _ExactNoise(model.schedule, m, s)
    model.standardized.fill_(True)
    before = {k: v.clone() for k, v in model.network.state_dict().items()}
    pyrogen.fit(model, x, loss="npr", num_steps=1500, batch_size=1024, lr=2e-3, progress=False)
    for k, v in model.network.state_dict().items():
        torch.testing.assert_close(v, before[k])  # only the second network moved
    ab = model.schedule.alpha_bar
    y_t = torch.linspace(-1, 1, 5)[:, None]
    for t in (2, 5, 10, 20):
        _, variance, _ = model.reverse(y_t, t - 1, t, variance="npr")
        pair = model.schedule.pair(torch.tensor(t - 1), torch.tensor(t))
        learned = (variance[:, 0].double() - pair.lambda2) / pair.eps_coefficient**2
        gap = ab[t] * s**2 / (ab[t] * s**2 + 1 - ab[t])  # E[(eps - eps_hat)^2 | x_t]
        # a regression on chi-square targets: a few hundredths of error after 1,500 steps
        assert (learned - gap).abs().max() < 0.15, (t, learned, gap)


# -- the decoder and images ----------------------------------------------------------------------
def test_the_discretized_normal_sums_to_one_over_the_levels():
    levels = 256
    centres = (torch.arange(levels, dtype=torch.float64) + 0.5) / levels
    for loc, scale in ((0.0, 0.1), (0.95, 0.02), (-1.3, 0.5), (0.2, 1e-4)):
        d = DiscretizedNormal(
            torch.tensor(loc, dtype=torch.float64), torch.tensor(scale, dtype=torch.float64), levels
        )
        mass = (d.log_prob(centres) - math.log(levels)).exp()
        assert float(mass.sum()) == pytest.approx(1.0, abs=1e-9)
        k = 100  # an inner bin by the CDF
        y = 2 * k / 255 - 1
        normal = torch.distributions.Normal(loc, scale)
        expected = normal.cdf(torch.tensor(y + 1 / 255)) - normal.cdf(torch.tensor(y - 1 / 255))
        assert float(mass[k]) == pytest.approx(float(expected), rel=1e-6, abs=1e-300)


def test_images_bits_per_dim_and_samples_on_the_grid():
    torch.manual_seed(7)
    model = DDPM([1, 4, 4], timesteps=10, channels=8, data_levels=256)
    x = torch.rand(12, 1, 4, 4)
    model.initialize(x)
    bits = model.bits_per_dim(x)
    assert bits.shape == (12,) and torch.isfinite(bits).all() and (bits > 0).all()
    draws = model.sample(3, steps=5)
    assert draws.shape == (3, 1, 4, 4)
    levels = draws * 256 - 0.5
    torch.testing.assert_close(levels, levels.round())  # bin centres


# -- the engine and the surface -----------------------------------------------------------------
def test_fit_trains_on_one_step_per_example_and_improves_the_bound():
    x = pyrogen.toy.sample("ring", 3000, seed=0)
    model = DDPM([2], timesteps=100, hidden=(64, 64))
    model.initialize(torch.as_tensor(x, dtype=torch.float32))
    before = float(model.log_prob(x[:500], steps=20).mean())
    result = pyrogen.fit(model, x, num_steps=600, batch_size=256, lr=2e-3, progress=False, seed=0)
    after = float(model.log_prob(x[:500], steps=20).mean())
    assert after > before + 1.0, (before, after)
    assert np.mean(result.losses[-50:]) < np.mean(result.losses[:50])
    with pytest.raises(ValueError, match=r"estimate_moments"):
        model.log_prob(x[:10], variance="analytic")
    model.estimate_moments(x, steps=20)
    assert float(model.log_prob(x[:500], steps=20, variance="analytic").mean()) > after
    pyrogen.fit(model, x, num_steps=2, batch_size=256, progress=False)  # the network changes
    with pytest.raises(ValueError, match=r"estimate_moments\(x_train\) after fitting"):
        model.log_prob(x[:10], steps=20, variance="analytic")


def test_bad_input_is_refused_by_name():
    model = DDPM([2], timesteps=10, hidden=(8,))
    with pytest.raises(ValueError, match="x:"):
        pyrogen.fit(model, np.array([[0.0, np.nan]] * 4), progress=False)
    with pytest.raises(ValueError, match=r"x: expected shape \(N, 2\)"):
        pyrogen.fit(model, np.zeros((4, 3)), progress=False)
    images = DDPM([1, 4, 4], timesteps=10, channels=8, data_levels=256)
    with pytest.raises(ValueError, match=r"x: images .* dequantized in \[0, 1\]"):
        images.log_prob(torch.full((2, 1, 4, 4), 1.5))
    with pytest.raises(ValueError, match="variance: 'npr' needs covariance='npr'"):
        DDPM([2], variance="npr")
    with pytest.raises(ValueError, match="prediction: must be one of"):
        DDPM([2], prediction="score")
    with pytest.raises(ValueError, match="data_shape: "):
        DDPM([2, 3])
    with pytest.raises(ValueError, match=r"variance: 'sn' needs DDPM\(..., covariance='sn'\)"):
        model.sample(2, variance="sn")
    with pytest.raises(ValueError, match=r"eta: must be in \[0, 1\]"):
        model.sample(2, eta=2.0)
    with pytest.raises(ValueError, match="steps: at most the chain's 10 steps"):
        model.log_prob(np.zeros((2, 2)), steps=11)
    with pytest.raises(ValueError, match="loss: 'npr' trains the network of covariance='npr'"):
        pyrogen.fit(model, np.zeros((4, 2)), loss="npr", num_steps=1, progress=False)


@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
def test_predictions_are_consistent(prediction):
    """eps_hat and x0_hat always satisfy x_t = sqrt(ab) x0_hat + sqrt(1 - ab) eps_hat."""
    torch.manual_seed(8)
    model = DDPM([3], timesteps=50, hidden=(8,), prediction=prediction)
    y = torch.randn(5, 3)
    t = torch.tensor([1, 10, 25, 40, 50])
    eps, x0 = model.predict(y, t)
    root, sd = model.schedule.marginal(t)
    torch.testing.assert_close(root.float()[:, None] * x0 + sd.float()[:, None] * eps, y)
    loss = model.loss_terms(torch.randn(16, 3), "simple")
    assert loss.shape == (16,) and torch.isfinite(loss).all()


def test_the_bound_uses_each_variance_and_kl_is_symmetric_where_it_should_be():
    a = torch.tensor([0.3]), torch.tensor([0.2])
    assert float(gaussian_kl(*a, *a)) == 0.0
    model = DDPM([2], timesteps=20, hidden=(8,))
    x = np.random.default_rng(0).normal(size=(50, 2))
    model.initialize(torch.as_tensor(x, dtype=torch.float32))
    full = model.log_prob(x)
    torch.testing.assert_close(full, model.log_prob(x, steps=20))
    torch.testing.assert_close(full, model.log_prob(x))  # a fixed seed: the same numbers
    assert not torch.allclose(full, model.log_prob(x, variance="beta_tilde"))
