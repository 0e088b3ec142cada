"""Normalizing flows: the change of variables to the letter, directions, closed forms."""

import math
from functools import partial

import numpy as np
import pyro.distributions.transforms as T
import pytest
import torch
from pyro.nn import DenseNN
from pyrogen.models import IAF, MAF, NICE, NSF, Glow, RealNVP

import pyrogen
from pyrogen import toy
from pyrogen.transforms import AdditiveCoupling, BoundedAffineAutoregressive, Scaling

FLOWS = {
    "nice": lambda d: NICE((d,), layers=3, hidden=(8,)),
    "nice-half": lambda d: NICE((d,), layers=3, hidden=(8,), partition="half"),
    "nice-normal": lambda d: NICE((d,), layers=2, hidden=(8,), base="normal"),
    "realnvp": lambda d: RealNVP((d,), layers=3, hidden=(8,)),
    "realnvp-sample": lambda d: RealNVP((d,), layers=3, hidden=(8,), direction="sample"),
    "maf": lambda d: MAF((d,), layers=2, hidden=(8,)),
    "iaf": lambda d: IAF((d,), layers=2, hidden=(8,)),
    "nsf": lambda d: NSF((d,), layers=2, hidden=(8,)),
    "nsf-autoregressive": lambda d: NSF((d,), layers=2, hidden=(8,), autoregressive=True),
    "nsf-linear": lambda d: NSF((d,), layers=2, hidden=(8,), order="linear"),
    "nsf-linear-autoregressive": lambda d: NSF(
        (d,), layers=2, hidden=(8,), autoregressive=True, order="linear"
    ),
}


def _randomize(model, scale=0.3):
    """Weights away from their start (zero scalings, identity splines)."""
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn_like(p))
    return model


def _logdet_by_autograd(fn, x):
    """log |det d fn / dx| at each row of x, from the full Jacobian."""
    out = []
    for row in x:
        jacobian = torch.autograd.functional.jacobian(fn, row)
        out.append(torch.linalg.slogdet(jacobian).logabsdet)
    return torch.stack(out)


@pytest.mark.parametrize("name", sorted(FLOWS))
def test_log_prob_is_the_change_of_variables_by_autograd(name):
    torch.manual_seed(0)
    model = _randomize(FLOWS[name](3))
    x = torch.randn(5, 3)
    expected = model.base().log_prob(model.inverse(x)) + _logdet_by_autograd(model.inverse, x)
    torch.testing.assert_close(model.log_prob(x), expected, rtol=1e-8, atol=1e-8)
    z = torch.randn(5, 3)
    torch.testing.assert_close(model.inverse(model.forward(z)), z, rtol=1e-7, atol=1e-7)
    torch.testing.assert_close(model.forward(model.inverse(x)), x, rtol=1e-7, atol=1e-7)


@pytest.mark.parametrize("transform", ["additive", "scaling", "reverse", "interleave"])
def test_the_new_transforms_jacobians_and_inverses(transform):
    from pyrogen.transforms import Interleave, Reverse

    torch.manual_seed(1)
    if transform == "additive":
        t = AdditiveCoupling(2, DenseNN(2, [6], [3]))
    elif transform == "scaling":
        t = Scaling(5)
        torch.nn.init.normal_(t.log_scale)
    else:
        t = Reverse() if transform == "reverse" else Interleave()
    x = torch.randn(4, 5)
    y = t(x)
    torch.testing.assert_close(t.log_abs_det_jacobian(x, y), _logdet_by_autograd(t, x))
    torch.testing.assert_close(t.inv(y), x)
    if transform == "additive":  # volume-preserving, and the first part passes through
        assert torch.equal(y[:, :2], x[:, :2]) and t.log_abs_det_jacobian(x, y).abs().max() == 0
    if transform == "interleave":  # the first half lands on the even places
        assert torch.equal(y[:, 0::2], x[:, :3]) and torch.equal(y[:, 1::2], x[:, 3:])


def test_nice_coupling_is_realnvps_with_no_scale():
    torch.manual_seed(2)
    shift = DenseNN(2, [6], [2])

    class ShiftOnly(torch.nn.Module):
        def forward(self, x1):
            m = shift(x1)
            return m, torch.zeros_like(m)

    additive, affine = AdditiveCoupling(2, shift), T.AffineCoupling(2, ShiftOnly())
    x = torch.randn(6, 4)
    torch.testing.assert_close(additive(x), affine(x))
    torch.testing.assert_close(
        affine.log_abs_det_jacobian(x, affine(x)), additive.log_abs_det_jacobian(x, additive(x))
    )


def test_realnvps_density_direction_is_zukos_coupling_with_bounded_scales():
    """Each layer maps data to noise as z_2 = x_2 exp(s) + t, s = a / (1 + |a| / b):
    by hand from its network's outputs; however large those outputs, each s stays
    within b, and the log-determinant is their sum."""
    torch.manual_seed(3)
    model = _randomize(RealNVP((4,), layers=2, hidden=(8,), partition="half", scale_bound=2.0))
    layer, x = model.layers[0], 2 * torch.randn(5, 4)
    t, a = layer.nn(x[:, :2])  # the network's outputs: the shift and the unbounded scale
    s = a / (1 + a.abs() / 2.0)
    torch.testing.assert_close(layer(x), torch.cat([x[:, :2], x[:, 2:] * s.exp() + t], -1))
    with torch.no_grad():
        for p in layer.nn.parameters():
            p.mul_(50.0)
    x = x.clone()  # not the cached input
    y = layer(x)
    scales = layer._cached_log_scale  # s per coordinate of x_2
    assert 1.9 < scales.abs().max() < 2.0  # near the bound, never past it
    torch.testing.assert_close(layer.log_abs_det_jacobian(x, y), scales.sum(-1))


def test_maf_layers_map_data_to_noise_with_softly_bounded_log_scales():
    """Each MAF layer maps data to noise as z = x exp(s) + m, s = a / (1 + |a| / b),
    from its MADE's raw outputs (m, a), by hand, with and without a context; however
    large a, each s stays within b and the log-determinant is their sum. With
    scale_bound=None the layer is Pyro's as it is, a clipped to [-5, 3]."""
    torch.manual_seed(3)
    x, context = 2 * torch.randn(5, 3), torch.randn(2)
    model = _randomize(MAF((3,), layers=1, hidden=(8,), scale_bound=2.0))
    layer = model.layers[0]
    m, a = layer.arn(x)
    s = a / (1 + a.abs() / 2.0)
    torch.testing.assert_close(layer(x), x * s.exp() + m)
    torch.testing.assert_close(layer.log_abs_det_jacobian(x, layer(x)), s.sum(-1))
    with torch.no_grad():
        for p in layer.arn.parameters():
            p.mul_(50.0)
    x = x.clone()  # not the cached input
    y = layer(x)
    scales = layer._cached_log_scale
    assert 1.9 < scales.abs().max() < 2.0  # near the bound, never past it
    torch.testing.assert_close(layer.log_abs_det_jacobian(x, y), scales.sum(-1))
    assert torch.isfinite(model.log_prob(100 * x)).all()
    conditional = MAF((3,), layers=1, hidden=(8,), context_dim=2, scale_bound=2.0)
    layer = conditional.layers[0]
    m, a = layer.nn(x, context=context.expand(5, 2))
    z = layer.condition(context.expand(5, 2))(x)
    torch.testing.assert_close(z, x * (a / (1 + a.abs() / 2.0)).exp() + m)
    plain = MAF((3,), layers=1, hidden=(8,), scale_bound=None).layers[0]
    assert type(plain) is T.AffineAutoregressive
    m, a = plain.arn(x)
    torch.testing.assert_close(plain(x), x * a.clamp(-5, 3).exp() + m)


def _copy_zuko_maf(ours: MAF, theirs) -> None:
    """zuko's 2-D MAF weights into pyrogen's: zuko's k-th transform from the data is
    pyrogen's layer L - 1 - k; every other one meets the coordinates reversed (its
    inputs and outputs swapped), and zuko lays its outputs out as (feature, parameter)
    where Pyro's MADE lays them out as (parameter, feature)."""
    for k, transform in enumerate(theirs.transform.transforms):
        mine = ours.layers[len(ours.layers) - 1 - k].arn.layers
        linear = [m for m in transform.hyper if isinstance(m, torch.nn.Linear)]
        features = [1, 0] if k % 2 else [0, 1]
        outputs = [features[f] * 2 + p for p in range(2) for f in range(2)]
        with torch.no_grad():
            for i, (a, z) in enumerate(zip(mine[:-1], linear[:-1])):
                a.weight.copy_(z.weight[:, features] if i == 0 else z.weight)
                a.bias.copy_(z.bias)
            mine[-1].weight.copy_(linear[-1].weight[outputs])
            mine[-1].bias.copy_(linear[-1].bias[outputs])


def test_maf_is_zukos_maf_given_the_same_weights_and_steps():
    """A second implementation: pyrogen's MAF with zuko's bound (log 1000) holding
    zuko's MAF's weights gives its log-density, and still does after Adam steps on
    the same minibatches (the same function and the same gradients). With Pyro's clip
    the same weights give another density."""
    import zuko

    torch.manual_seed(0)
    ours = MAF((2,), layers=3, hidden=(16, 16), scale_bound=math.log(1000))
    theirs = zuko.flows.MAF(2, transforms=3, hidden_features=(16, 16))
    _copy_zuko_maf(ours, theirs)
    x, test = 2 * torch.randn(96, 2), 2 * torch.randn(50, 2)
    torch.testing.assert_close(ours.distribution().log_prob(test), theirs().log_prob(test))
    optimizers = [torch.optim.Adam(f.parameters(), lr=0.01) for f in (ours, theirs)]
    for batch in x.split(16):
        for optimizer, flow in zip(optimizers, (ours.distribution, theirs)):
            loss = -flow().log_prob(batch).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    torch.testing.assert_close(ours.distribution().log_prob(test), theirs().log_prob(test))
    clipped = MAF((2,), layers=3, hidden=(16, 16), scale_bound=None)
    clipped.load_state_dict(ours.state_dict())
    assert not torch.allclose(clipped.log_prob(test), ours.log_prob(test))


def test_the_rational_quadratic_spline_layers_are_the_change_of_variables():
    from pyro.nn import AutoRegressiveNN, ConditionalAutoRegressiveNN

    from pyrogen.transforms import (
        ConditionalRQSplineAutoregressive,
        RQSplineAutoregressive,
        RQSplineCoupling,
    )

    bound = 2.0  # inputs inside and outside it
    torch.manual_seed(5)
    x = 1.5 * torch.randn(6, 4)
    layers = {
        "coupling": RQSplineCoupling(4, 2, DenseNN(2, [8], [2 * 5, 2 * 5, 2 * 4]), 5, bound),
        "autoregressive": RQSplineAutoregressive(4, AutoRegressiveNN(4, [12], [5, 5, 4]), 5, bound),
    }
    conditional = ConditionalRQSplineAutoregressive(
        4, ConditionalAutoRegressiveNN(4, 3, [12], [5, 5, 4]), count_bins=5, bound=bound
    )
    layers["conditional"] = _randomize(conditional, 0.5).condition(torch.randn(3))
    for name, t in layers.items():
        if name != "conditional":
            _randomize(t, 0.5)
        y = t(x)
        logdet = t.log_abs_det_jacobian(x, y)
        torch.testing.assert_close(logdet, _logdet_by_autograd(t, x), msg=name)
        torch.testing.assert_close(t._inverse(y), x, rtol=1e-7, atol=1e-7, msg=name)


def test_nices_scaling_is_the_top_layer():
    """Dinh et al. (2014, Sec. 3.3): h = S g(x), the scaling on the couplings' output
    (the base's end), so the codes of x are the unscaled codes times one factor per
    dimension, whatever x."""
    torch.manual_seed(4)
    model = _randomize(NICE((4,), layers=3, hidden=(8,)))
    x = torch.randn(6, 4)
    with torch.no_grad():
        model.scaling.log_scale.zero_()
        unscaled = model.inverse(x)
        model.scaling.log_scale.copy_(torch.tensor([0.5, -1.0, 0.2, 0.0]))
    torch.testing.assert_close(
        model.inverse(x), unscaled * torch.tensor([0.5, -1.0, 0.2, 0.0]).neg().exp()
    )


def _calls(module, fn):
    count = [0]
    handle = module.register_forward_hook(lambda *args: count.__setitem__(0, count[0] + 1))
    try:
        fn()
    finally:
        handle.remove()
    return count[0]


def test_maf_scores_in_one_pass_and_iaf_samples_in_one_pass():
    """Pyro's AffineAutoregressive is the IAF direction; MAF uses its inverse."""
    torch.manual_seed(3)
    d, x = 4, torch.randn(7, 4)
    maf, iaf = MAF((d,), layers=1, hidden=(8,)), IAF((d,), layers=1, hidden=(8,))
    maf_net, iaf_net = maf.layers[0].arn, iaf.layers[0].arn
    assert _calls(maf_net, lambda: maf.log_prob(x)) == 1
    assert _calls(maf_net, lambda: maf.sample(3)) == d
    assert _calls(iaf_net, lambda: iaf.sample(3)) == 1
    assert _calls(iaf_net, lambda: iaf.log_prob(x)) == d


@pytest.mark.parametrize("cls", [RealNVP, MAF])
def test_a_flow_fitted_to_a_gaussian_reaches_its_density(cls):
    """The truth is Gaussian: KL(truth || fit) on held-out draws ends near 0."""
    torch.manual_seed(4)
    cov = np.array([[1.0, 0.8], [0.8, 1.0]])
    rng = np.random.default_rng(0)
    train = rng.multivariate_normal([1.0, -1.0], cov, size=4000)
    test = rng.multivariate_normal([1.0, -1.0], cov, size=4000)
    flow = cls((2,), layers=4, hidden=(32, 32))
    pyrogen.fit(flow, train, method="mle", lr=3e-3, batch_size=256, num_epochs=40, progress=False)
    truth = torch.distributions.MultivariateNormal(torch.tensor([1.0, -1.0]), torch.tensor(cov))
    true_log_p = truth.log_prob(torch.as_tensor(test)).mean()
    kl = float(true_log_p - flow.log_prob(test).mean())
    assert -0.02 < kl < 0.03, kl


def test_bad_options_are_refused_by_name():
    with pytest.raises(ValueError, match="data_shape: NICE couples two halves"):
        NICE((1,))
    with pytest.raises(ValueError, match="base: must be one of"):
        NICE((2,), base="uniform")
    with pytest.raises(ValueError, match="hidden: RealNVP needs at least one hidden layer"):
        RealNVP((2,), hidden=())
    with pytest.raises(ValueError, match="bound: must be a positive number"):
        NSF((2,), bound=-1.0)
    with pytest.raises(ValueError, match="order: must be one of"):
        NSF((2,), order="cubic")
    with pytest.raises(ValueError, match="direction: must be one of"):
        RealNVP((2,), direction="up")
    with pytest.raises(ValueError, match="scale_bound: must be a positive number"):
        RealNVP((2,), scale_bound=0.0)
    with pytest.raises(ValueError, match="data_shape: flows here take vectors"):
        MAF((2, 2))
    for bad in (0.0, -1.0, float("inf"), float("nan"), "5", True):
        with pytest.raises(ValueError, match="scale_bound: must be a positive number"):
            IAF((2,), scale_bound=bad)
    with pytest.raises(ValueError, match="scale_bound: must be a positive number"):
        BoundedAffineAutoregressive(MAF((2,), scale_bound=None).layers[0].arn, scale_bound=0)
    # Pyro's MADE needs each hidden layer at least D wide; the error names hidden
    for flow in (MAF, IAF, partial(NSF, autoregressive=True)):
        with pytest.raises(ValueError, match=r"hidden: .* at least D = 8 .*got \[8, 7\]"):
            flow((8,), hidden=(8, 7))
    MAF((8,), hidden=(8, 8))
    with pytest.raises(ValueError, match="contains NaN"):
        RealNVP((2,), hidden=(4,)).log_prob(np.array([[0.0, np.nan]]))
    with pytest.raises(ValueError, match="context: RealNVP is unconditional"):
        RealNVP((2,), hidden=(4,)).distribution(context=torch.zeros(2))


@pytest.mark.parametrize("name", toy.TOY_DENSITIES)
def test_toy_densities_normalize_and_their_draws_are_in_their_support(name):
    # a box holding all but a negligible part of the mass, cells of 0.02 (sd 0.1)
    (low, high), (bottom, top) = ((-1.6, 2.6), (-1.1, 1.6)) if name == "moons" else ((-6, 6),) * 2
    gx, gy = np.arange(low, high + 1e-9, 0.02), np.arange(bottom, top + 1e-9, 0.02)
    xx, yy = np.meshgrid(gx, gy, indexing="ij")
    density = np.exp(toy.log_density(name, np.stack([xx.ravel(), yy.ravel()], -1)))
    integral = np.trapezoid(np.trapezoid(density.reshape(xx.shape), gy, axis=1), gx)
    assert integral == pytest.approx(1.0, abs=1e-2)
    draws = toy.sample(name, 2000, seed=1)
    assert draws.shape == (2000, 2) and np.isfinite(toy.log_density(name, draws)).all()
    with pytest.raises(ValueError, match="name: unknown toy density"):
        toy.sample("spiral", 10)


@pytest.mark.parametrize("name", sorted(FLOWS))
def test_flow_densities_integrate_to_one(name):
    torch.manual_seed(5)
    # weights a little off their start: further off, a density-direction affine flow's
    # tails (draws beyond 800 at 0.3) pass any grid
    model = _randomize(FLOWS[name](2), 0.2)
    # affine layers' scales and a logistic base reach far; splines (identity outside
    # [-3, 3]) have fine detail near the data
    spline = name.startswith("nsf")
    grid = torch.linspace(-8, 8, 1001) if spline else torch.linspace(-25, 25, 1001)
    xx, yy = torch.meshgrid(grid, grid, indexing="ij")
    density = model.log_prob(torch.stack([xx.ravel(), yy.ravel()], -1)).exp()
    integral = torch.trapezoid(torch.trapezoid(density.reshape(xx.shape), grid, dim=1), grid)
    assert float(integral) == pytest.approx(1.0, abs=3e-3)


CONDITIONAL = {
    "nice": lambda d, c: NICE((d,), layers=2, hidden=(8,), context_dim=c),
    "realnvp": lambda d, c: RealNVP((d,), layers=2, hidden=(8,), context_dim=c),
    "maf": lambda d, c: MAF((d,), layers=2, hidden=(8,), context_dim=c),
    "iaf": lambda d, c: IAF((d,), layers=2, hidden=(8,), context_dim=c),
    "nsf": lambda d, c: NSF((d,), layers=2, hidden=(8,), context_dim=c),
    "nsf-autoregressive": lambda d, c: NSF(
        (d,), layers=2, hidden=(8,), autoregressive=True, context_dim=c
    ),
    "nsf-linear-autoregressive": lambda d, c: NSF(
        (d,), layers=2, hidden=(8,), autoregressive=True, context_dim=c, order="linear"
    ),
}


@pytest.mark.parametrize("name", sorted(CONDITIONAL))
def test_conditional_log_prob_is_the_change_of_variables_given_the_context(name, monkeypatch):
    torch.manual_seed(6)
    model = _randomize(CONDITIONAL[name](3, 2))
    x, context = torch.randn(5, 3), torch.randn(5, 2)
    whole = model.log_prob(x, context)
    monkeypatch.setattr(model, "_numbers_per_example", lambda: 2**23)  # 2 rows a chunk
    torch.testing.assert_close(model.log_prob(x, context), whole)
    expected = []
    for row, c in zip(x, context):
        z = model.inverse(row, c)
        jacobian = torch.autograd.functional.jacobian(lambda r, c=c: model.inverse(r, c), row)
        expected.append(model.base().log_prob(z) + torch.linalg.slogdet(jacobian).logabsdet)
    torch.testing.assert_close(model.log_prob(x, context), torch.stack(expected))
    torch.testing.assert_close(model.forward(model.inverse(x, context), context), x)
    # the context matters: another context gives another density
    assert not torch.allclose(model.log_prob(x, context), model.log_prob(x, context + 1.0))
    assert model.sample(4, context[0]).shape == (4, 3)
    assert model.sample(5, context).shape == (5, 3)
    with pytest.raises(TypeError, match="is conditional"):
        model.log_prob(x)
    with pytest.raises(ValueError, match="context: 4 rows for 5 examples"):
        model.log_prob(x, context[:4])
    with pytest.raises(ValueError, match=r"context: expected shape \(2,\) or \(3, 2\)"):
        model.sample(3, torch.zeros(4))


def test_a_conditional_flow_learns_a_conditional_gaussian():
    """x | c ~ N(A c, diag(0.3, 0.5)^2): KL(truth || fit) averaged over c ends near 0."""
    rng = np.random.default_rng(7)
    a = np.array([[1.0, -0.5], [0.5, 2.0]])

    def draw(n):
        c = rng.normal(size=(n, 2))
        return c @ a.T + rng.normal(size=(n, 2)) * [0.3, 0.5], c

    (x, c), (x_test, c_test) = draw(4000), draw(4000)
    flow = MAF((2,), layers=3, hidden=(32, 32), context_dim=2)
    pyrogen.fit(flow, x, c, method="mle", lr=1e-3, batch_size=256, num_epochs=80, progress=False)
    truth = torch.distributions.Normal(torch.as_tensor(c_test @ a.T), torch.tensor([0.3, 0.5]))
    true_log_p = truth.log_prob(torch.as_tensor(x_test)).sum(-1).mean()
    kl = float(true_log_p - flow.log_prob(x_test, c_test).mean())
    assert -0.03 < kl < 0.05, kl  # ignoring the context would cost over a nat
    marginal = torch.distributions.MultivariateNormal(torch.zeros(2), torch.as_tensor(a @ a.T))
    assert float(true_log_p - marginal.log_prob(torch.as_tensor(x_test)).mean()) > 1.0


@pytest.mark.parametrize("norm", ["act", "batch"])
def test_normalized_flows_are_the_change_of_variables_and_start_standardized(norm):
    torch.manual_seed(8)
    x = 5.0 + 3.0 * torch.randn(64, 3)
    model = MAF((3,), layers=2, hidden=(8,), norm=norm)
    model.train()
    z = model.inverse(x)  # the first call in training sets ActNorm's start
    if norm == "act":  # the layer data meet first standardizes them from the start
        first = model.norms[-1]._inverse(x)
        torch.testing.assert_close(first.mean(0), torch.zeros(3))
        torch.testing.assert_close(first.std(0), torch.ones(3))
    assert z.shape == x.shape
    _randomize(model).eval()
    if norm == "batch":
        for layer in model.norms:
            layer.moving_mean.normal_()
            layer.moving_variance.uniform_(0.5, 2.0)
    expected = model.base().log_prob(model.inverse(x)) + _logdet_by_autograd(model.inverse, x)
    torch.testing.assert_close(model.log_prob(x), expected)


def _image_jacobian_check(step, shape):
    x = torch.randn(shape)
    z, logdet = step.encode(x)
    jacobian = torch.autograd.functional.jacobian(
        lambda v: step.encode(v.reshape(shape))[0].reshape(-1), x.reshape(-1)
    )
    torch.testing.assert_close(logdet, torch.linalg.slogdet(jacobian).logabsdet)
    torch.testing.assert_close(step.decode(z), x)
    # as a Pyro transform: _call decodes, and its log-determinant is minus the encoding's
    torch.testing.assert_close(step.log_abs_det_jacobian(z, x), -logdet)


def test_image_transforms_jacobians_and_inverses():
    from pyrogen.transforms import GlowCoupling, InvertibleConv1x1, MultiscaleFlow, Squeeze
    from pyrogen.transforms.image import _ActNormStep, squeeze

    torch.manual_seed(9)
    image = torch.arange(16.0).reshape(1, 4, 4)
    # space to depth: each 2x2 block's four pixels become four channels
    assert squeeze(image)[:, 0, 0].tolist() == [0.0, 1.0, 4.0, 5.0]
    _image_jacobian_check(Squeeze(), (2, 4, 4))
    conv = InvertibleConv1x1(3)
    with torch.no_grad():
        conv.log_s.normal_()  # away from a rotation (log|det| = 0)
    _image_jacobian_check(conv, (3, 2, 2))
    steps = [GlowCoupling(4, 8), _ActNormStep(3), MultiscaleFlow((1, 4, 4), 2, 2, 8)]
    for step, shape in zip(steps, [(4, 2, 2), (3, 2, 2), (1, 4, 4)]):
        _randomize(step).eval()
        _image_jacobian_check(step, shape)


def test_conditional_transforms_are_their_plain_ones_given_the_context():
    from pyro.nn import ConditionalDenseNN

    from pyrogen.transforms import ConditionalAdditiveCoupling, ConditionalSplineCoupling

    torch.manual_seed(10)
    x, context = torch.randn(4, 5), torch.randn(4, 3)
    additive = ConditionalAdditiveCoupling(2, ConditionalDenseNN(2, 3, [6], [3]))
    spline = _randomize(
        ConditionalSplineCoupling(5, 2, ConditionalDenseNN(2, 3, [6], [24, 24, 21]))
    )
    linear = _randomize(
        ConditionalSplineCoupling(
            5, 2, ConditionalDenseNN(2, 3, [6], [24, 24, 21, 24]), order="linear"
        )
    )
    for t in (additive, spline, linear):
        for row, c in zip(x, context):
            plain = t.condition(c)
            y = plain(row)
            jacobian = torch.autograd.functional.jacobian(plain, row)
            torch.testing.assert_close(
                plain.log_abs_det_jacobian(row, y), torch.linalg.slogdet(jacobian).logabsdet
            )
            torch.testing.assert_close(plain.inv(y), row)


@pytest.mark.parametrize("name", ["realnvp", "maf", "nsf", "nsf-autoregressive"])
def test_a_used_flow_can_be_copied(name):
    """Transforms cache their last output (part of a graph); copies drop it."""
    import copy

    model = FLOWS[name](3)
    loss = -model.distribution().log_prob(torch.randn(4, 3)).sum()
    loss.backward()
    twin = copy.deepcopy(model)
    x = torch.randn(5, 3)
    torch.testing.assert_close(twin.log_prob(x), model.log_prob(x))


def test_glow_maps_pixels_to_latents_and_back_and_checks_its_inputs():

    torch.manual_seed(11)
    glow = _randomize(Glow((1, 4, 4), levels=2, steps=1, hidden=4), 0.1).eval()
    x = torch.rand(3, 1, 4, 4) * 0.9 + 0.05
    torch.testing.assert_close(glow.forward(glow.inverse(x)), x)
    assert glow.inverse(x.numpy()).shape == (3, 1, 4, 4)  # arrays are taken, checked
    with pytest.raises(ValueError, match=r"x: expected shape \(\.\.\., 1, 4, 4\), got \(3, 16\)"):
        glow.inverse(x.reshape(3, 16))
    with pytest.raises(ValueError, match="x: contains NaN"):
        glow.inverse(np.full((1, 1, 4, 4), np.nan))
    with pytest.raises(ValueError, match="context: Glow is unconditional"):
        glow.inverse(x, torch.zeros(3, 2))


def _resave(path, **changes):
    """The saved payload at ``path`` with keys changed (None drops a key), rewritten."""
    payload = torch.load(path, weights_only=True)
    for key, value in changes.items():
        payload.pop(key) if value is None else payload.__setitem__(key, value)
    torch.save(payload, path)


def test_files_whose_weights_now_mean_another_flow_are_refused(tmp_path):
    path = tmp_path / "flow.pt"
    nsf = NSF((2,), layers=1, hidden=(4,))
    nsf.save(path)
    assert torch.load(path, weights_only=True)["revision"] == 2
    torch.testing.assert_close(
        NSF.load(path).log_prob(torch.ones(3, 2)), nsf.log_prob(torch.ones(3, 2))
    )
    _resave(path, revision=None)  # saved before revisions were recorded
    with pytest.raises(ValueError, match=r"holds a NSF of revision 1.*order='linear'.*refit it"):
        NSF.load(path)
    NICE((2,), layers=1, hidden=(4,)).save(path)
    _resave(path, revision=1)
    with pytest.raises(ValueError, match="NICE of revision 1.*scaling layer moved"):
        NICE.load(path)
    # RealNVP: a file without a revision is told apart by its config's direction
    RealNVP((2,), layers=1, hidden=(4,)).save(path)
    _resave(path, revision=None)
    assert RealNVP.load(path).direction == "density"
    config = torch.load(path, weights_only=True)["config"]
    config.pop("direction"), config.pop("scale_bound")
    _resave(path, config=config)
    with pytest.raises(ValueError, match="RealNVP of revision 1.*direction='sample'"):
        RealNVP.load(path)
    # MAF (and IAF): a file of revision 1 is the flow with Pyro's clip, scale_bound=None
    old = _randomize(MAF((2,), layers=2, hidden=(4,), scale_bound=None))
    old.save(path)
    config = torch.load(path, weights_only=True)["config"]
    config.pop("scale_bound")
    _resave(path, revision=None, config=config)
    with pytest.raises(ValueError, match=r"MAF of revision 1.*MAF\(\*\*config, scale_bound=None"):
        MAF.load(path)
    payload = torch.load(path, weights_only=True)
    read = MAF(**payload["config"], scale_bound=None)
    read.load_state_dict(payload["state"])
    x = torch.randn(3, 2)
    torch.testing.assert_close(read.log_prob(x), old.log_prob(x))
    assert not torch.allclose(MAF(**payload["config"]).log_prob(x), old.log_prob(x))
    # a flow whose meaning never changed reads files that record no revision
    glow = Glow((1, 4, 4), levels=2, steps=1, hidden=4).eval()
    glow.save(path)
    _resave(path, revision=None)
    images = torch.rand(3, 1, 4, 4)
    torch.testing.assert_close(Glow.load(path).eval().log_prob(images), glow.log_prob(images))


def test_a_2d_autoregressive_flow_models_x2_given_x1_at_the_data_end():
    """In 2-D every MADE takes the natural order (no draw), so the layer at the data's
    end maps x_1 alone and x_2 given x_1; layers alternate through the reversals."""
    for flow in (MAF((2,), layers=3, hidden=(8, 8)), NSF((2,), 3, (8, 8), autoregressive=True)):
        last = flow.layers[-1]  # density direction: data -> base is the layer's own call
        jacobian = torch.autograd.functional.jacobian(last, torch.tensor([0.3, -0.7]))
        assert jacobian[0, 1] == 0 and jacobian[1, 0] != 0
        assert all(torch.equal(layer.arn.permutation, torch.arange(2)) for layer in flow.layers)
    # in more dimensions the orders are drawn, consecutive layers acting differently
    layers = MAF((4,), layers=4, hidden=(8, 8)).layers
    acting = [
        l.arn.permutation if i % 2 == 0 else 3 - l.arn.permutation for i, l in enumerate(layers)
    ]
    assert all(not torch.equal(a, b) for a, b in zip(acting, acting[1:]))
