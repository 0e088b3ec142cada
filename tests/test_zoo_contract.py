"""One contract over the whole zoo: every model offers the same surface and keeps it.

A new family adds its constructor and a small data set to CASES; a zoo entry without
a case fails ``test_every_zoo_model_has_a_contract_case``.
"""

import dataclasses
import inspect
import json

import numpy as np
import pyro
import pytest
import torch
from pyro.poutine.util import site_is_subsample

import pyrogen
from pyrogen.distributions import Implicit, ImplicitDensityError
from pyrogen.infer.init import trace_structure
from pyrogen.infer.svi import make_elbo, make_guide, model_structure
from pyrogen.zoo import ZOO, DensityModel, get_model_class


def _faithful():
    return pyrogen.data.load("old_faithful")


def _one_d():
    return np.random.default_rng(0).normal(size=(200, 1)) * [1.0] + np.repeat(
        [[0.0], [4.0]], 100, 0
    )


def _in_interval():
    return np.tanh(_one_d()[:, 0] / 3)


def _fourier(**options):
    """A Fourier density with random coefficients, so that no check passes by symmetry."""

    def build():
        model = get_model_class("fourier")(5, **options)
        b = 0.4 * torch.randn(5, 2, generator=torch.Generator().manual_seed(1))
        with torch.no_grad():
            if model.prior is None:
                model.coefficients.copy_(b)
            else:
                model.absorb({"coefficients": torch.stack([b, 0.5 * b])})
        return model

    return build


CASES = {
    "gmm-full": ("gmm", lambda: get_model_class("gmm")(2), _faithful),
    "gmm-diag": ("gmm", lambda: get_model_class("gmm")(3, covariance="diag"), _faithful),
    "gmm-spherical-1d": ("gmm", lambda: get_model_class("gmm")(2, covariance="spherical"), _one_d),
    "fourier-mle": ("fourier", _fourier(smoothness=1e-3), _one_d),
    "fourier-prior-draws": ("fourier", _fourier(prior={"scale": 1.0, "decay": 1.0}), _one_d),
    "fourier-interval": ("fourier", _fourier(domain="interval"), _in_interval),
    "ar-2": ("ar", lambda: get_model_class("ar")(2), lambda: _ar_series()),
    "hmm-2": (
        "hmm",
        lambda: get_model_class("hmm")(2, mu_loc=[0.0, 2.0]),
        lambda: _ar_series()[:30],
    ),
    "vae": (
        "vae",
        lambda: get_model_class("vae")((6,), latent_dim=2, hidden=(8,)),
        lambda: (np.random.default_rng(0).random((40, 6)) < 0.3).astype(float),
    ),
    "vae-iaf-maf-prior": (
        "vae",
        lambda: get_model_class("vae")(
            (6,), latent_dim=2, hidden=(8,), posterior_flow=2, prior_flow=1, flow_hidden=8
        ),
        lambda: (np.random.default_rng(0).random((40, 6)) < 0.3).astype(float),
    ),
    "hvae-vamp": (
        "hvae",
        lambda: get_model_class("hvae")((6,), 2, 2, hidden=(8,), prior="vamp", num_pseudo=3),
        lambda: (np.random.default_rng(0).random((40, 6)) < 0.3).astype(float),
    ),
    "fvsbn": ("fvsbn", lambda: get_model_class("fvsbn")((6,)), lambda: _binary(6)),
    "nade": ("nade", lambda: get_model_class("nade")((6,), hidden=5), lambda: _binary(6)),
    "made-2": (
        "made",
        lambda: get_model_class("made")((6,), hidden=(8,), num_masks=2),
        lambda: _binary(6),
    ),
    "deepnade-2": (
        "deepnade",
        lambda: get_model_class("deepnade")((6,), hidden=(8, 5), num_orderings=2),
        lambda: _binary(6),
    ),
    "nade-k2": (
        "deepnade",
        lambda: get_model_class("deepnade")((6,), hidden=(8,), num_orderings=2, steps=2),
        lambda: _binary(6),
    ),
    "pixelcnn": (
        "pixelcnn",
        lambda: get_model_class("pixelcnn")((3, 3), channels=4, layers=2, first_kernel=3),
        lambda: _binary(9).reshape(40, 3, 3),
    ),
    "pixelcnn-basic": (
        "pixelcnn",
        lambda: get_model_class("pixelcnn")(
            (3, 3), channels=4, layers=2, first_kernel=3, gated=False
        ),
        lambda: _binary(9).reshape(40, 3, 3),
    ),
    "wavenet": (
        "wavenet",
        lambda: get_model_class("wavenet")((6,), channels=4),
        lambda: _binary(6),
    ),
    "wavenet-mixture": (
        "wavenet",
        lambda: get_model_class("wavenet")(
            (2,), channels=4, likelihood="normal_mixture", components=2
        ),
        lambda: np.random.default_rng(0).normal(size=(40, 2)),
    ),
    "rnn-categorical": (
        "rnn",
        lambda: get_model_class("rnn")(
            (6,), cell="gru", hidden=5, embedding=3, likelihood="categorical", num_classes=4
        ),
        lambda: np.random.default_rng(0).integers(0, 4, size=(40, 6)),
    ),
    "transformer": (
        "transformer",
        lambda: get_model_class("transformer")((6,), dim=8, heads=2, layers=1),
        lambda: _binary(6),
    ),
    "transformer-mixture": (
        "transformer",
        lambda: get_model_class("transformer")(
            (2,), dim=8, heads=2, layers=1, likelihood="normal_mixture", components=2
        ),
        lambda: np.random.default_rng(0).normal(size=(40, 2)),
    ),
    "rnade": (
        "rnade",
        lambda: get_model_class("rnade")((2,), hidden=4, components=2),
        lambda: np.random.default_rng(0).normal(size=(40, 2)),
    ),
    "nice": (
        "nice",
        lambda: get_model_class("nice")((2,), layers=2, hidden=(8,)),
        lambda: _moons(),
    ),
    "realnvp": ("realnvp", lambda: get_model_class("realnvp")((2,), hidden=(8,)), lambda: _moons()),
    "maf": ("maf", lambda: get_model_class("maf")((2,), layers=2, hidden=(8,)), lambda: _moons()),
    "iaf": ("iaf", lambda: get_model_class("iaf")((2,), layers=2, hidden=(8,)), lambda: _moons()),
    "nsf": ("nsf", lambda: get_model_class("nsf")((2,), layers=2, hidden=(8,)), lambda: _moons()),
    "maf-conditional-act": (
        "maf",
        lambda: get_model_class("maf")((2,), layers=2, hidden=(8,), norm="act", context_dim=1),
        lambda: (_moons(), np.random.default_rng(1).normal(size=(40, 1))),
    ),
    "glow": (
        "glow",
        lambda: _off_identity(get_model_class("glow")((1, 4, 4), levels=2, steps=1, hidden=4)),
        lambda: np.random.default_rng(0).uniform(size=(40, 1, 4, 4)),
    ),
    "ddpm": (
        "ddpm",
        lambda: get_model_class("ddpm")((2,), timesteps=8, hidden=(8,)),
        lambda: _moons(),
    ),
    "ddpm-images-v": (
        "ddpm",
        lambda: get_model_class("ddpm")(
            (1, 4, 4), timesteps=4, channels=8, data_levels=256, prediction="v"
        ),
        lambda: np.random.default_rng(0).uniform(size=(40, 1, 4, 4)),
    ),
    "gan": (
        "gan",
        lambda: get_model_class("gan")((2,), latent_dim=3, hidden=(8,), critic_hidden=(8,)),
        lambda: _moons(),
    ),
    "gan-conv": (
        "gan",
        lambda: get_model_class("gan")(
            (1, 4, 4), latent_dim=3, architecture="conv", channels=2, output="sigmoid"
        ),
        lambda: np.random.default_rng(0).uniform(size=(40, 1, 4, 4)),
    ),
    "ali": (
        "ali",
        lambda: get_model_class("ali")((2,), latent_dim=3, hidden=(8,), critic_hidden=(8,)),
        lambda: _moons(),
    ),
    "aae": (
        "aae",
        lambda: get_model_class("aae")((6,), latent_dim=2, hidden=(8,), critic_hidden=(8,)),
        lambda: _binary(6),
    ),
    "deep-factorized": (
        "deep-factorized",
        lambda: get_model_class("deep-factorized")(init_scale=3.0),
        _one_d,
    ),
}


def _off_identity(model):
    """Glow's couplings start as the identity (last convolution zero), so no gradient
    reaches their first layers at the start: move them off it."""
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model


def _moons():
    return pyrogen.toy.sample("moons", 40, seed=0)


def _binary(d):
    return (np.random.default_rng(0).random((40, d)) < 0.3).astype(float)


def _ar_series():
    rng = np.random.default_rng(0)
    y = np.zeros(120)
    for t in range(2, 120):
        y[t] = 0.3 + 0.6 * y[t - 1] - 0.2 * y[t - 2] + rng.normal()
    return y


# time series have a predictive density per step, not a density over one space; the
# binary spaces are summed exactly in tests/models/test_vae.py and
# tests/models/test_autoregressive.py
NOT_DENSITIES = {"ar-2", "hmm-2", "vae", "hvae-vamp", "fvsbn", "nade", "made-2", "deepnade-2"}
NOT_DENSITIES |= {"nade-k2", "vae-iaf-maf-prior"}
NOT_DENSITIES |= {"pixelcnn"}
NOT_DENSITIES |= {"pixelcnn-basic", "wavenet", "rnn-categorical", "transformer"}
# flows' tails (a logistic base, the layers' scalings) reach past the grid of 6 data sds:
# tests/models/test_flows.py integrates them on a wider one
NOT_DENSITIES |= {"nice", "realnvp", "maf", "iaf", "nsf", "maf-conditional-act", "glow"}
# a DDPM's log_prob is its variational bound, which integrates to less than one
NOT_DENSITIES |= {"ddpm", "ddpm-images-v"}


# implicit models (x = G(z)) have samples and no density: log_prob is refused
IMPLICIT = {"gan", "gan-conv", "ali"}
NOT_DENSITIES |= IMPLICIT | {"aae"}


def _implicit(model) -> bool:
    return bool(getattr(model, "implicit", False))


def _guide(model, args):
    """The model's own guide; else AutoDelta over its latent sites; else none (MLE)."""
    if model.guide is not None:
        return model.guide
    structure = model_structure(model.model, args)
    if not structure.continuous:
        return lambda *args: None
    return make_guide(None, model.model, structure, method="map", init_values=model.point_values())


def test_every_zoo_model_has_a_contract_case():
    get_model_class("gmm")
    covered = {name for name, _, _ in CASES.values()}
    assert set(ZOO) <= covered, f"zoo models without a contract case: {set(ZOO) - covered}"


def _build(name):
    _, build, data = CASES[name]
    model = build()
    values = data()
    args = model.prepare(*values) if isinstance(values, tuple) else model.prepare(values)
    model.initialize(*args)
    return model, args


@pytest.fixture(params=sorted(CASES))
def case(request):
    return _build(request.param)


@pytest.fixture(params=sorted(set(CASES) - NOT_DENSITIES))
def density_case(request):
    return _build(request.param)


def test_trace_shapes(case):
    model, args = case
    trace = trace_structure(model.model, args, values=model.point_values())
    trace.compute_log_prob(lambda name, site: not isinstance(site["fn"], Implicit))
    sites = {k: s for k, s in trace.nodes.items() if s["type"] == "sample"}
    observed = [
        s
        for s in sites.values()
        if s["is_observed"]
        and not site_is_subsample(s)
        and not s["infer"].get("is_auxiliary")
        and not s["infer"].get("_deterministic")
    ]
    # one site for all examples, or one per time step (a Markov chain)
    per_example = int(np.prod(args[0].shape[1:], dtype=int))
    assert sum(s["value"].numel() for s in observed) == model.num_examples(*args) * per_example
    assert len({s["value"].shape for s in observed}) == 1
    for name, value in model.point_values().items():
        assert sites[name]["value"].shape == value.shape, name
    for site in sites.values():
        if isinstance(site["fn"], Implicit):  # a generated value: no density to score
            assert _implicit(model) and site["is_observed"]
            continue
        assert torch.isfinite(site["log_prob"]).all(), site["name"]


def test_finite_loss_and_a_gradient_on_every_parameter(case):
    model, args = case
    if model.default_method == "adversarial":  # the critic's loss and the players'
        from pyrogen.infer.adversarial import critic_loss, player_loss

        critic, sites = model.make_critic().to(args[0].dtype), model.critic_sites
        p, q, nll = model.adversarial_draws(args[0])
        loss = critic_loss(critic, p, q, sites, "wgan-gp")
        loss.backward()
        players = player_loss(critic, p, q, sites, "ns") + (0 if nll is None else nll.mean())
        players.backward()
        assert torch.isfinite(loss) and torch.isfinite(players)
        for name, value in [*model.named_parameters(), *critic.named_parameters()]:
            assert value.grad is not None and torch.isfinite(value.grad).all(), name
            assert value.grad.abs().sum() > 0, name
        return
    structure = model_structure(model.model, args)
    elbo = make_elbo(None, enumerated=structure.enumerated, nesting=structure.nesting)
    loss = elbo.differentiable_loss(model.model, _guide(model, args), *args)
    assert torch.isfinite(loss)
    loss.backward()
    params = dict(pyro.get_param_store().named_parameters())
    assert params
    for name, value in params.items():
        assert value.grad is not None and torch.isfinite(value.grad).all(), name
        assert value.grad.abs().sum() > 0, name


def test_sample_shapes_and_log_prob_per_example(case):
    model, args = case
    # a conditional density's draws given one context
    draws = model.sample(7, args[1][0]) if len(args) > 1 else model.sample(7)
    assert draws.shape == (7,) + args[0].shape[1:]
    if _implicit(model):
        with pytest.raises(ImplicitDensityError, match="implicit"):
            model.log_prob(*args)
        return
    log_prob = model.log_prob(*args)
    assert log_prob.shape == (model.num_examples(*args),) and torch.isfinite(log_prob).all()


def test_save_load_round_trip(case, tmp_path):
    model, args = case
    model.save(tmp_path / "model.pt")
    loaded = type(model).load(tmp_path / "model.pt")
    if _implicit(model):  # the same draws from the same seed
        torch.manual_seed(0)
        before = model.sample(5)
        torch.manual_seed(0)
        torch.testing.assert_close(loaded.sample(5).to(before.dtype), before)
        return
    torch.testing.assert_close(loaded.log_prob(*args), model.log_prob(*args))


def test_log_prob_normalizes(density_case):
    """The density integrates to one (quadrature on a wide grid, 1-D or 2-D)."""
    model, args = density_case
    x = args[0]
    x = x[:, None] if x.dim() == 1 else x
    width = 40 if x.shape[1] == 1 else 6  # in data sds: 1-D models may have exponential tails
    lo, hi = x.min(0).values - width * x.std(0), x.max(0).values + width * x.std(0)
    if x.shape[1] == 1:
        grid = torch.linspace(lo[0], hi[0], 200001)
        grid = grid[:, None] if args[0].dim() == 2 else grid
        integral = torch.trapezoid(model.log_prob(grid).exp(), grid.reshape(-1))
    else:
        gx = torch.linspace(lo[0], hi[0], 801)
        gy = torch.linspace(lo[1], hi[1], 801)
        xx, yy = torch.meshgrid(gx, gy, indexing="ij")
        density = model.log_prob(torch.stack([xx.ravel(), yy.ravel()], -1)).exp().reshape(xx.shape)
        integral = torch.trapezoid(torch.trapezoid(density, gy, dim=1), gx)
    assert integral.item() == pytest.approx(1.0, abs=2e-3)


def test_fit_returns_a_fit_with_arviz(case):
    model, args = case
    result = pyrogen.fit(model, *args, method=model.default_method, num_steps=5, progress=False)
    idata = result.to_arviz()
    if _implicit(model):
        assert {"posterior", "observed_data"} <= set(idata.groups())
        assert "log_likelihood" not in idata.groups()
        return
    assert {"posterior", "log_likelihood", "observed_data"} <= set(idata.groups())


# -- the contract itself ----------------------------------------------------------------
def test_fit_refuses_a_method_the_model_cannot_run_before_any_work():
    from pyrogen.models import NADE, VAE

    nan_data = np.full((4, 6), np.nan)  # refused for the method first, not for the data
    with pytest.raises(
        ValueError,
        match=r"method: vae cannot be fitted with method='em' \(no closed-form EM.*"
        r"its methods: svi, map$",
    ):
        pyrogen.fit(VAE((6,), latent_dim=2, hidden=(8,)), nan_data, method="em")
    with pytest.raises(ValueError, match="method: nade cannot be fitted with method='nuts'"):
        pyrogen.fit(NADE((6,), hidden=3), nan_data, method="nuts")
    with pytest.raises(TypeError, match="pass an instance"):
        pyrogen.fit(NADE, nan_data)


def test_register_refuses_a_model_without_the_required_surface():
    from pyrogen.zoo import ZooModel, register

    class Half(ZooModel):
        def model(self, x):
            pass

    with pytest.raises(
        TypeError, match=r"register\('half'\): Half does not define log_prob, sample"
    ):
        register("half")(Half)
    with pytest.raises(TypeError, match="not a ZooModel subclass"):
        register("thing")(dict)
    assert "half" not in ZOO


def test_config_is_the_constructor_signature_recorded():
    from pyrogen.models import MADE, NADE, HierarchicalVAE

    get_model_class("gmm")  # fills the registry
    for name, cls in ZOO.items():  # one source of truth: the fields are the arguments
        params = list(inspect.signature(cls.__init__).parameters)[1:]
        assert [f.name for f in dataclasses.fields(cls.Config)] == params, name
    assert NADE((2, 3), hidden=5).config == NADE.Config(data_shape=[2, 3], hidden=5)
    first, second = MADE((4,)), MADE((4,))
    assert first.config.hidden == [500] and first.config.hidden is not second.config.hidden
    assert MADE((4,), hidden=(8, 6)).config.hidden == [8, 6]  # normalized to a list
    with pytest.raises(TypeError, match="NADE: got an unexpected keyword argument 'hiden'"):
        NADE((6,), hiden=3)
    hvae = HierarchicalVAE((6,), latent_dim=3, bottom_dim=2, hidden=(8,))
    assert (hvae.config.latent_dim, hvae.config.bottom_dim, hvae.config.hidden) == (3, 2, [8])
    rebuilt = HierarchicalVAE(**dataclasses.asdict(hvae.config))
    assert rebuilt.config == hvae.config


def test_fit_params_have_one_meaning():
    from pyrogen.models import VAE

    x = (np.random.default_rng(0).random((30, 6)) < 0.3).astype(float)
    vae = VAE((6,), latent_dim=2, hidden=(8,))
    result = pyrogen.fit(vae, x, num_steps=3, progress=False)
    # no global latent site: the networks' parameters, not one guide draw of z per example
    assert "z" not in result.params
    assert set(result.params) == {name for name, _ in vae.named_parameters()}
    gmm = get_model_class("gmm")(2)
    result = pyrogen.fit(gmm, _faithful(), method="map", num_steps=20, progress=False)
    assert set(result.params) == {"weights", "locs", "scales", "corr_tril"}


def test_map_chunks_equals_one_pass():
    from pyrogen.chunks import map_chunks, rows_per_chunk

    x = torch.randn(11, 3)
    calls = []

    def fn(part):
        calls.append(len(part))
        return part.sum(-1)

    torch.testing.assert_close(map_chunks(fn, x, numbers_per_row=10, budget=25), x.sum(-1))
    assert calls == [2, 2, 2, 2, 2, 1] and rows_per_chunk(10, 25, minimum=4) == 4


class _Gaussian(DensityModel):
    """A diagonal Gaussian density: the smallest family, written as a new one would be."""

    cli_data = "table"

    def __init__(self, dim: int = 2):
        super().__init__()
        self.loc = torch.nn.Parameter(torch.zeros(dim))
        self.log_scale = torch.nn.Parameter(torch.zeros(dim))

    def prepare(self, *data):
        return (pyrogen.validation.as_data_tensor(data[0], "x", ndim=2),)

    def initialize(self, x):
        with torch.no_grad():
            self.loc.copy_(x.mean(0))

    def distribution(self, context=None):
        return pyro.distributions.Normal(self.loc, self.log_scale.exp()).to_event(1)


def test_a_new_family_is_one_class_fitted_by_fit_and_the_command(tmp_path):
    """A DensityModel subclass gets model, log_prob, sample and ``pyrogen fit NAME``
    without any other edit; its maximum-likelihood fit is the closed form."""
    from pyrogen.cli import main
    from pyrogen.zoo import register

    x = _faithful()
    register("test-gaussian")(_Gaussian)
    try:
        model = _Gaussian(2)
        pyrogen.fit(model, x, method="mle", num_steps=3000, lr=0.05, progress=False)
        torch.testing.assert_close(
            model.loc.detach(), torch.as_tensor(x.mean(0)), rtol=1e-3, atol=0
        )
        torch.testing.assert_close(
            model.log_scale.exp().detach(), torch.as_tensor(x.std(0)), rtol=1e-2, atol=0
        )
        exact = torch.distributions.Normal(torch.as_tensor(x.mean(0)), torch.as_tensor(x.std(0)))
        expected = exact.log_prob(torch.as_tensor(x)).sum(-1)
        torch.testing.assert_close(model.log_prob(x), expected, rtol=2e-3, atol=0)
        assert model.sample(5).shape == (5, 2)
        out = tmp_path / "gauss"
        argv = ["fit", "test-gaussian", "--num-steps", "3000", "--lr", "0.05", "--out", str(out)]
        assert main(argv) == 0
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["mean_log_likelihood"] == pytest.approx(float(expected.mean()), abs=0.01)
        assert (out / "density.png").stat().st_size > 0
    finally:
        ZOO.pop("test-gaussian")
