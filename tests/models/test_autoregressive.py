"""Autoregressive binary models against exact answers: with D = 10 the 1,024 binary
vectors can be enumerated, so normalization (no mask leaks the future), sampling and
the chain rule are checked exactly."""

import itertools
import math

import numpy as np
import pyro
import pytest
import torch
from pyrogen.models import (
    FVSBN,
    MADE,
    NADE,
    RNADE,
    DeepNADE,
    PixelCNN,
    RNNDecoder,
    TransformerDecoder,
    WaveNet,
)
from pyrogen.models.autoregressive import _Autoregressive

import pyrogen
from pyrogen.metrics import auroc


def _all_binary(d):
    return torch.tensor(list(itertools.product([0.0, 1.0], repeat=d)))


def _randomized(model, scale=1.5):
    torch.manual_seed(1)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, scale)
    return model.eval()


MODELS = {
    "fvsbn": lambda: FVSBN((10,)),
    "nade": lambda: NADE((10,), hidden=8),
    "made": lambda: MADE((10,), hidden=(16, 16)),
    "made-3-masks": lambda: MADE((10,), hidden=(16, 16), num_masks=3),
    "made-image": lambda: MADE((2, 5), hidden=(12,)),
    "made-direct": lambda: MADE((10,), hidden=(16,), direct=True),
    "made-direct-3-masks": lambda: MADE((10,), hidden=(16, 16), num_masks=3, direct=True),
    "deepnade": lambda: DeepNADE((10,), hidden=(16, 12)),
    "deepnade-3-orderings": lambda: DeepNADE((2, 5), hidden=(16,), num_orderings=3),
    "nade-k3": lambda: DeepNADE((10,), hidden=(16, 12), num_orderings=2, steps=3),
    "pixelcnn": lambda: PixelCNN((2, 5), channels=8, layers=3, first_kernel=3, kernel=3),
    "pixelcnn-basic": lambda: PixelCNN((2, 5), channels=8, layers=3, first_kernel=3, gated=False),
    "wavenet": lambda: WaveNet((10,), channels=8),
    "wavenet-k3": lambda: WaveNet((10,), channels=8, kernel=3, layers=2),
    "lstm": lambda: RNNDecoder((10,), hidden=8, embedding=4),
    "gru": lambda: RNNDecoder((10,), cell="gru", hidden=8, embedding=4, layers=2),
    "transformer": lambda: TransformerDecoder((10,), dim=8, heads=2, layers=2),
}


@pytest.mark.parametrize(
    "name",
    ["nade", "made-3-masks", "deepnade-3-orderings", "nade-k3", "pixelcnn", "lstm", "transformer"],
)
def test_log_prob_in_chunks_equals_one_pass_and_bounds_each_chunk(name, monkeypatch):
    """log_prob takes examples in chunks of at most 2**24 numbers of the pass's largest
    tensors (NADE's (N, D, H) hidden states for 10,000 MNIST digits would be 15.7 GB at
    once); the chunks' answer is the one-pass answer."""
    model = _randomized(MODELS[name](), scale=0.7 if name == "transformer" else 1.5)
    x = _all_binary(10).reshape(-1, *model.config.data_shape)  # 1024 examples
    with torch.no_grad():
        flat = x.reshape(len(x), -1)
        conditionals = model.conditionals(flat)
        one_pass = conditionals.log_prob(model._observed(flat)).sum(-1)
    if name in ("made-3-masks", "deepnade-3-orderings", "nade-k3"):  # ensembles: per member
        one_pass = model.log_prob(x)
    monkeypatch.setattr(model, "_numbers_per_example", lambda: 2**24 // 100)  # 100 a chunk
    seen = []
    conditionals_of = model.conditionals

    def spy(part):
        seen.append(len(part))
        return conditionals_of(part)

    monkeypatch.setattr(model, "conditionals", spy)
    chunked = model.log_prob(x)
    members = getattr(model.config, "num_masks", getattr(model.config, "num_orderings", 1))
    assert max(seen) == 100 and sum(seen) == 1024 * members
    torch.testing.assert_close(chunked, one_pass, atol=1e-5, rtol=1e-6)
    big = NADE((784,), hidden=500)
    assert 2**24 // big._numbers_per_example() < 50  # digits per chunk, not all of them


@pytest.mark.parametrize("name", MODELS)
def test_probabilities_of_all_binary_vectors_sum_to_one(name):
    model = _randomized(MODELS[name](), scale=0.7 if name == "transformer" else 1.5)
    x = _all_binary(10).reshape(-1, *model.config.data_shape)
    log_p = model.log_prob(x)
    assert float(log_p.exp().sum()) == pytest.approx(1.0, abs=1e-5)
    assert float(log_p.std()) > 0.5  # far from uniform: the check has teeth


def test_a_leaking_mask_is_caught():
    """The normalization check fails when a conditional may see its own pixel."""
    model = _randomized(FVSBN((10,)))
    model.mask.fill_diagonal_(1.0)  # each pixel's conditional sees the pixel itself
    with torch.no_grad():
        model.weight.diagonal().add_(3.0)
    total = float(model.log_prob(_all_binary(10)).exp().sum())
    assert abs(total - 1.0) > 0.01


@pytest.mark.parametrize(
    "name", ["fvsbn", "nade", "made-3-masks", "deepnade-3-orderings", "nade-k2"]
)
def test_samples_follow_the_model(name):
    torch.manual_seed(2)
    small = {
        "fvsbn": lambda: FVSBN((4,)),
        "nade": lambda: NADE((4,), hidden=5),
        "made-3-masks": lambda: MADE((4,), hidden=(8,), num_masks=3),
        "deepnade-3-orderings": lambda: DeepNADE((4,), hidden=(8, 6), num_orderings=3),
        "nade-k2": lambda: DeepNADE((4,), hidden=(8, 6), num_orderings=2, steps=2),
    }[name]()
    model = _randomized(small, scale=1.0)
    draws = model.sample(40000)
    codes = (draws * torch.tensor([8.0, 4.0, 2.0, 1.0])).sum(-1).long()
    frequency = torch.bincount(codes, minlength=16).double() / len(draws)
    exact = model.log_prob(_all_binary(4)).exp().double()
    assert float((frequency - exact).abs().max()) < 0.012  # 3 sd of 40,000 draws


def test_fvsbn_is_the_chain_rule_written_out():
    model = _randomized(FVSBN((3,)))
    x = torch.tensor([[1.0, 0.0, 1.0]])
    w, b = (model.weight * model.mask).detach(), model.bias.detach()
    p1 = torch.sigmoid(b[0])
    p2 = torch.sigmoid(b[1] + w[1, 0] * 1.0)
    p3 = torch.sigmoid(b[2] + w[2, 0] * 1.0 + w[2, 1] * 0.0)
    expected = torch.log(p1) + torch.log(1 - p2) + torch.log(p3)
    assert float(model.log_prob(x)[0]) == pytest.approx(float(expected), rel=1e-6)
    assert float(model.bits_per_dim(x)[0]) == pytest.approx(-float(expected) / 3 / np.log(2))


def test_fvsbn_prior_fit_is_the_l2_penalized_logistic_regressions():
    """With a Gaussian prior on the weights, the fit is the posterior mode: for each
    pixel the logistic regression on the pixels before it with the penalty
    ||w||^2 / (2 s^2) and a free intercept, which scikit-learn computes independently
    (LogisticRegression with C = s^2)."""
    from sklearn.linear_model import LogisticRegression

    rng = np.random.default_rng(0)
    z = rng.normal(size=(400, 1))
    x = (rng.normal(size=(400, 4)) + 1.5 * z > 0.3).astype(np.float64)
    s = 0.3
    model = FVSBN((4,), prior_scale=s).double()
    pyrogen.fit(model, x, method="mle", num_steps=1500, lr=0.05, progress=False)
    w = (model.weight * model.mask).detach().numpy()
    b = model.bias.detach().numpy()
    assert b[0] == pytest.approx(np.log(x[:, 0].mean() / (1 - x[:, 0].mean())), abs=2e-3)
    for d in range(1, 4):
        reference = LogisticRegression(C=s**2, tol=1e-10, max_iter=10_000)
        reference.fit(x[:, :d], x[:, d])
        np.testing.assert_allclose(w[d, :d], reference.coef_[0], atol=2e-3)
        assert b[d] == pytest.approx(reference.intercept_[0], abs=2e-3)
        # and the prior shrinks the weights: the unpenalized fit's are larger
        unpenalized = LogisticRegression(C=np.inf, tol=1e-10, max_iter=10_000)
        unpenalized.fit(x[:, :d], x[:, d])
        assert np.abs(w[d, :d]).sum() < 0.9 * np.abs(unpenalized.coef_[0]).sum()


@pytest.mark.parametrize("prior", ["normal", "laplace"])
def test_fvsbn_prior_counts_once_per_data_set_however_minibatched(prior):
    """The model's log joint on a minibatch of B standing for N examples is
    (N / B) * sum of the batch's log-likelihoods + log p(W), the prior unscaled."""
    import pyro
    from pyro import poutine

    pyro.clear_param_store()
    model = _randomized(FVSBN((5,), prior_scale=0.8, prior=prior), scale=0.7)
    coins = torch.rand(6, 5, generator=torch.Generator().manual_seed(2))
    (x,) = model.prepare((coins < 0.5).float())
    trace = poutine.trace(model.model).get_trace(x, num_examples=30)
    expected = 30 / 6 * model.log_prob(x).sum()
    w = (model.weight * model.mask).detach()
    density = torch.distributions.Normal if prior == "normal" else torch.distributions.Laplace
    log_prior = density(0.0, 0.8).log_prob(w[model.mask.bool()]).sum()
    torch.testing.assert_close(trace.log_prob_sum(), expected + log_prior)
    torch.testing.assert_close(model.log_prior(), log_prior)
    assert FVSBN((5,)).log_prior() == 0


def test_made_direct_connections_are_an_fvsbn_term():
    """With the network's output layer at zero, a MADE with direct connections is the
    FVSBN with the same weights: in the natural order and, for a shuffled order, in
    that order."""
    made = _randomized(MADE((5,), hidden=(4,), num_masks=2, seed=1, direct=True))
    with torch.no_grad():
        made.layers[-1].weight.zero_()
        made.layers[-1].bias.zero_()
    x = _all_binary(5)
    fvsbn = FVSBN((5,)).eval()
    for m in range(2):
        made.use_mask(m)
        order = made.orders[m]
        with torch.no_grad():  # FVSBN over the reordered dimensions
            fvsbn.weight.copy_(made.direct.weight[order][:, order])
        expected = fvsbn.log_prob(x[:, order])
        torch.testing.assert_close(made.conditionals(x).log_prob(x).sum(-1), expected.to(x.dtype))
    assert "direct" not in dict(MADE((5,), hidden=(4,)).named_children())
    with pytest.raises(TypeError, match="direct: expected True or False"):
        MADE((5,), direct="yes")


def test_made_saves_weights_not_masks(tmp_path):
    """MADE's masks are drawn from its config, so its state holds only weights (32 mask
    sets of a wide layer would otherwise be most of a checkpoint); a model saved with
    its masks, as earlier versions did, still loads, and one whose orderings are not
    this config's is refused."""
    model = _randomized(MADE((6,), hidden=(8,), num_masks=3, direct=True, seed=2))
    model.use_mask(2)
    state = model.state_dict()
    assert not [key for key in state if "mask" in key or key == "orders"]
    x = _all_binary(6)
    path = tmp_path / "made.pt"
    model.save(path)
    torch.testing.assert_close(MADE.load(path).log_prob(x), model.log_prob(x))
    old = dict(state, orders=model.orders, masks_0=model.masks_0, masks_1=model.masks_1)
    old.update({"direct_masks": model.direct_masks, "layers.0.mask": model.layers[0].mask})
    again = MADE((6,), hidden=(8,), num_masks=3, direct=True, seed=2)
    again.load_state_dict(old)
    torch.testing.assert_close(again.log_prob(x), model.log_prob(x))
    other = MADE((6,), hidden=(8,), num_masks=3, direct=True, seed=3)
    with pytest.raises(ValueError, match="state_dict: its mask orderings differ"):
        other.load_state_dict(old)
    # inside a larger module too: the old keys carry the parent's prefix
    parent = torch.nn.ModuleDict(
        {"made": MADE((6,), hidden=(8,), num_masks=3, direct=True, seed=2)}
    )
    parent.load_state_dict({f"made.{k}": v for k, v in old.items()})
    torch.testing.assert_close(parent["made"].log_prob(x), model.log_prob(x))


def test_made_orderings_are_respected():
    """Output d's logit does not change when any input at or after d in its ordering
    changes (checked by the Jacobian of every mask set)."""
    model = _randomized(MADE((6,), hidden=(20, 20), num_masks=4))
    for m in range(4):
        model.use_mask(m)
        order = model._order()
        position = torch.empty(6, dtype=torch.long)
        position[order] = torch.arange(6)
        jac = torch.autograd.functional.jacobian(model.logits, torch.rand(1, 6))[0, :, 0]
        allowed = position[None, :] < position[:, None]  # input j precedes output d
        assert float(jac[~allowed].abs().max()) == 0.0
        assert float(jac[allowed].abs().max()) > 0.0


def test_pixelcnn_logits_never_see_the_current_or_later_pixels():
    model = _randomized(PixelCNN((5, 6), channels=8, layers=4, first_kernel=5, kernel=3))
    jac = torch.autograd.functional.jacobian(model.logits, torch.rand(1, 30))[0, :, 0]
    later = torch.ones(30, 30).triu()  # input j at or after output d in raster order
    assert float(jac[later.bool()].abs().max()) == 0.0
    assert float(jac[~later.bool()].abs().max()) > 0.0
    with pytest.raises(ValueError, match="data_shape"):
        PixelCNN((784,))
    with pytest.raises(ValueError, match="kernel: must be odd"):
        PixelCNN((4, 4), kernel=2)


@pytest.mark.parametrize("gated", [True, False])
def test_pixelcnn_rows_need_only_the_rows_above_and_sampling_reads_no_more(gated):
    """The first h rows' logits from those rows alone equal the whole image's, and the
    row-cropped sampler draws exactly what a pass over the whole image per pixel
    draws (the generic sampler), from the same seed."""
    model = _randomized(
        PixelCNN((5, 6), channels=8, layers=4, first_kernel=5, gated=gated), scale=0.5
    ).double()
    x = torch.bernoulli(torch.full((7, 5, 6), 0.5, dtype=torch.float64))
    whole = model.image_logits(x)
    for rows in range(1, 6):
        torch.testing.assert_close(model.image_logits(x[:, :rows]), whole[:, :rows])
    flat = x.reshape(7, 30)
    for d in range(30):  # each pixel's logit from its rows alone, the whole pass's
        torch.testing.assert_close(model._logit(flat, d), model.logits(flat)[:, d])
    torch.manual_seed(3)
    cropped = model.sample(300)
    torch.manual_seed(3)
    generic = torch.zeros(300, 30, dtype=torch.float64)
    with torch.no_grad():  # a pass of the whole image per pixel
        for d in range(30):
            generic[:, d] = torch.bernoulli(torch.sigmoid(model.logits(generic)[:, d]))
    assert torch.equal(cropped.reshape(300, 30), generic)
    assert 0.05 < float(cropped.mean()) < 0.95 and cropped.dtype == torch.float64
    for bad in (x[:, :, :5], x[:, :0], x.reshape(7, 30), torch.zeros(7, 6, 6)):
        with pytest.raises(ValueError, match="image: expected shape"):
            model.image_logits(bad)


@pytest.mark.parametrize(
    "options",
    [dict(hidden=(16,)), dict(hidden=(16, 12), direct=True), dict(hidden=(8,), num_masks=3)],
    ids=["one-layer", "two-layers-direct", "three-masks"],
)
def test_made_sampler_carries_the_first_layer_and_draws_what_a_full_pass_draws(options):
    """MADE's sampler (running first-layer pre-activation, one output row per
    dimension) gives, under every mask set and from the same seed, exactly the draws of
    the generic sampler that re-runs the whole network per dimension (float64)."""
    model = _randomized(MADE((10,), **options), scale=0.7).double()
    for m in range(model.config.num_masks):
        model.use_mask(m)
        torch.manual_seed(5)
        with torch.no_grad():
            fast = model._sample_current(400)
        torch.manual_seed(5)
        generic = _Autoregressive.sample(model, 400)
        assert torch.equal(fast, generic)
        assert 0.05 < float(fast.mean()) < 0.95
    model.use_mask(0)
    torch.manual_seed(5)
    assert model.sample(7).shape == (7, 10) and model.current == 0


def test_training_on_mnist_raises_the_likelihood(reference_data):
    x = torch.as_tensor(pyrogen.data.load("binarized_mnist", split="train")[:1000]).float()
    test = torch.as_tensor(pyrogen.data.load("binarized_mnist", split="test")[:200]).float()
    # pixels independent, at the training marginals: what a model with no dependence
    # between pixels reaches at best
    p = x.mean(0).clamp(1e-3, 1 - 1e-3)
    independent = float((test * p.log() + (1 - test) * (1 - p).log()).sum(-1).mean())
    torch.manual_seed(0)
    models = (
        NADE((784,), hidden=50),
        DeepNADE((784,), hidden=(100,)),
        MADE((784,), hidden=(200,), num_masks=2),  # the anomaly scores' model below
    )
    for model in models:
        before = float(model.log_prob(test).mean())
        fit = pyrogen.fit(model, x, method="mle", batch_size=100, num_epochs=10, lr=1e-2)
        after = float(model.log_prob(test).mean())
        assert np.isfinite(fit.losses).all() and fit.num_steps == 100
        assert before < -400 and after > independent + 20, (model, before, after, independent)
        assert model.sample(2).shape == (2, 784)
    # anomaly scores: digits with 10% of pixels flipped, and digits shifted by 4
    # pixels, are far less likely than clean ones
    flipped = (
        test - (torch.rand(test.shape, generator=torch.Generator().manual_seed(0)) < 0.1).float()
    ).abs()
    shifted = test.reshape(-1, 28, 28).roll(4, dims=2).reshape(-1, 784)
    clean_score = model.anomaly_score(test)
    assert auroc(clean_score, model.anomaly_score(flipped)) > 0.95
    assert auroc(clean_score, model.anomaly_score(shifted)) > 0.7


def test_bad_input_names_the_argument():
    model = NADE((4,), hidden=3)
    with pytest.raises(ValueError, match="x: expected binary"):
        pyrogen.fit(model, np.full((5, 4), 0.5), method="mle", num_steps=1)
    with pytest.raises(ValueError, match="x: contains NaN"):
        pyrogen.fit(model, np.full((5, 4), np.nan), method="mle", num_steps=1)
    with pytest.raises(ValueError, match=r"x: expected shape \(N, 4\)"):
        pyrogen.fit(model, np.zeros((5, 3)), method="mle", num_steps=1)
    with pytest.raises(ValueError, match="x: .*empty"):
        pyrogen.fit(model, np.zeros((0, 4)), method="mle", num_steps=1)
    with pytest.raises(ValueError, match="hidden"):
        NADE((4,), hidden=0)
    with pytest.raises(ValueError, match="hidden"):
        MADE((4,), hidden=())
    with pytest.raises(ValueError, match="num_masks"):
        MADE((4,), num_masks=0)
    with pytest.raises(ValueError, match="hidden"):
        DeepNADE((4,), hidden=())
    with pytest.raises(ValueError, match="num_orderings"):
        DeepNADE((4,), num_orderings=0)
    with pytest.raises(ValueError, match=r"index: must be in \[0, 2\)"):
        DeepNADE((4,), hidden=(3,), num_orderings=2).use_ordering(2)
    with pytest.raises(TypeError, match="data_order"):
        DeepNADE((4,), data_order="yes")
    for bad in (0, -1, 1.5, "2"):
        with pytest.raises((ValueError, TypeError), match="steps"):
            DeepNADE((4,), steps=bad)
    with pytest.raises(ValueError, match="step_loss"):
        DeepNADE((4,), steps=2, step_loss="first")
    with pytest.raises(ValueError, match="data_shape"):
        FVSBN((0,))
    for bad in (0.0, -1.0, float("nan"), float("inf"), "1"):
        with pytest.raises(ValueError, match="prior_scale"):
            FVSBN((4,), prior_scale=bad)
    with pytest.raises(ValueError, match="prior: must be one of 'normal', 'laplace'"):
        FVSBN((4,), prior_scale=1.0, prior="cauchy")


def test_rnade_density_integrates_to_one_and_its_draws_match_it():
    torch.manual_seed(0)
    model = RNADE((2,), hidden=8, components=3)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    grid = torch.linspace(-12, 12, 1201)
    xx, yy = torch.meshgrid(grid, grid, indexing="ij")
    points = torch.stack([xx.ravel(), yy.ravel()], -1)
    density = model.log_prob(points).exp().reshape(1201, 1201)
    assert float(torch.trapezoid(torch.trapezoid(density, grid), grid)) == pytest.approx(
        1.0, abs=1e-4
    )
    mean = (points * density.reshape(-1, 1)).sum(0) * float(grid[1] - grid[0]) ** 2
    draws = model.sample(50000)
    se = draws.std(0) / np.sqrt(len(draws))
    assert torch.all((draws.mean(0) - mean).abs() < 4 * se)


def test_rnade_sampler_draws_what_its_conditionals_draw():
    """The O(DH) sampler (pre-activation carried, no distribution objects) takes the
    random numbers that building each conditional from scratch and sampling it takes:
    the same draws."""
    torch.manual_seed(0)
    model = RNADE((6,), hidden=8, components=3)
    torch.manual_seed(1)
    fast = model.sample(500)
    torch.manual_seed(1)
    x = torch.zeros(500, 6)
    with torch.no_grad():
        for d in range(6):
            h = torch.sigmoid(model.c + x[:, :d] @ model.W[:, :d].T)  # (N, H), from scratch
            x[:, d] = model._mixture(h[:, None], slice(d, d + 1)).sample()[:, 0]
    torch.testing.assert_close(fast, x)


# -- sequence models: WaveNet, RNN and transformer decoders, the gated PixelCNN ----------

SEQUENCE_MODELS = {
    "wavenet": lambda **kw: WaveNet((5,), channels=8, **kw),
    "lstm": lambda **kw: RNNDecoder((5,), hidden=8, embedding=4, **kw),
    "transformer": lambda **kw: TransformerDecoder((5,), dim=8, heads=2, layers=2, **kw),
}


@pytest.mark.parametrize("name", SEQUENCE_MODELS)
def test_probabilities_of_all_sequences_of_three_symbols_sum_to_one(name):
    model = _randomized(SEQUENCE_MODELS[name](likelihood="categorical", num_classes=3), scale=0.7)
    x = torch.tensor(list(itertools.product([0.0, 1.0, 2.0], repeat=5)))
    log_p = model.log_prob(x)
    assert float(log_p.exp().sum()) == pytest.approx(1.0, abs=1e-5)
    assert float(log_p.std()) > 0.3


@pytest.mark.parametrize("name", SEQUENCE_MODELS)
@pytest.mark.parametrize("likelihood", ["bernoulli", "categorical", "normal_mixture"])
def test_the_incremental_sampler_computes_the_teacher_forced_conditionals(name, likelihood):
    """Fast WaveNet queues, the carried RNN state and the transformer's key/value cache
    give, position by position, the features of the one teacher-forced pass."""
    options = {"num_classes": 4} if likelihood == "categorical" else {}
    model = _randomized(SEQUENCE_MODELS[name](likelihood=likelihood, **options), scale=0.5)
    torch.manual_seed(0)
    x = model.sample(6).reshape(6, -1)
    with torch.no_grad():
        forced = model.features(model.inputs(x))
        state, previous, stepped = model._start(6), None, []
        for t in range(5):
            features, state = model._step(state, model.inputs.step(previous, 6), t)
            stepped.append(features)
            previous = x[:, t]
    torch.testing.assert_close(torch.stack(stepped, 1), forced, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", SEQUENCE_MODELS)
def test_sequence_samples_follow_the_model(name):
    model = _randomized(SEQUENCE_MODELS[name](), scale=0.7)
    model = _randomized(type(model)((4,), **{k: v for k, v in _small(name).items()}), 0.7)
    torch.manual_seed(3)
    draws = model.sample(40000)
    codes = (draws * torch.tensor([8.0, 4.0, 2.0, 1.0])).sum(-1).long()
    frequency = torch.bincount(codes, minlength=16).double() / len(draws)
    exact = model.log_prob(_all_binary(4)).exp().double()
    assert float((frequency - exact).abs().max()) < 0.012  # 3 sd of 40,000 draws


def _small(name):
    return {
        "wavenet": {"channels": 6},
        "lstm": {"hidden": 6, "embedding": 3},
        "transformer": {"dim": 8, "heads": 2, "layers": 2},
    }[name]


@pytest.mark.parametrize("name", SEQUENCE_MODELS)
def test_sampling_with_and_without_the_cache_draws_the_same(name):
    model = _randomized(SEQUENCE_MODELS[name](), scale=0.5)
    torch.manual_seed(5)
    cached = model.sample(50)
    torch.manual_seed(5)
    assert torch.equal(cached, model.sample(50, cache=False))


def test_attention_equals_masked_softmax_written_out():
    """The causal attention (PyTorch's fused kernel) against the textbook formula."""
    from pyrogen.nn.autoregressive import CausalSelfAttention

    torch.manual_seed(0)
    attention = CausalSelfAttention(8, heads=2)
    x = torch.randn(3, 5, 8)
    q, k, v = attention.qkv(x).split(8, 2)
    out = []
    for head in range(2):
        cols = slice(4 * head, 4 * head + 4)
        scores = q[..., cols] @ k[..., cols].transpose(1, 2) / 2.0
        scores = scores.masked_fill(torch.ones(5, 5).triu(1).bool(), float("-inf"))
        out.append(scores.softmax(-1) @ v[..., cols])
    expected = attention.proj(torch.cat(out, -1))
    torch.testing.assert_close(attention(x), expected, atol=1e-6, rtol=1e-5)
    with pytest.raises(ValueError, match="heads"):
        CausalSelfAttention(8, heads=3)


def test_lstm_decoder_equals_a_hand_written_lstm_loop():
    """log p(x) of RNNDecoder against an LSTMCell loop over x_{t-1} with the same
    weights: the shift, the start vector and the head line up."""
    model = _randomized(RNNDecoder((7,), hidden=6, embedding=3), scale=0.5)
    cell = torch.nn.LSTMCell(3, 6)
    with torch.no_grad():
        for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
            getattr(cell, name).copy_(getattr(model.rnn, name + "_l0"))
    x = _all_binary(7)[::5]
    with torch.no_grad():
        h = c = torch.zeros(len(x), 6)
        total = torch.zeros(len(x))
        for t in range(7):
            if t == 0:
                inp = model.inputs.start.expand(len(x), 3)
            else:
                inp = x[:, t - 1 : t] @ model.inputs.embed.weight.T + model.inputs.embed.bias
            h, c = cell(inp, (h, c))
            logit = model.head.linear(h)[:, 0]
            total += torch.distributions.Bernoulli(logits=logit).log_prob(x[:, t])
    torch.testing.assert_close(model.log_prob(x), total, atol=1e-5, rtol=1e-5)


def test_gated_pixelcnn_sees_every_earlier_pixel_and_the_basic_one_has_a_blind_spot():
    """The Jacobian of the logits: no later pixel is ever seen; the gated two-stack
    PixelCNN sees every earlier one, the original masked stack misses a wedge."""
    later = torch.ones(30, 30).triu().bool()  # input j at or after output d
    blind = {}
    for gated in (True, False):
        model = _randomized(
            PixelCNN((5, 6), channels=8, layers=4, first_kernel=5, gated=gated), scale=0.3
        )
        jac = torch.autograd.functional.jacobian(model.logits, torch.rand(1, 30))[0, :, 0]
        assert float(jac[later].abs().max()) == 0.0
        blind[gated] = ((jac == 0) & ~later).nonzero()  # (output, input) pairs never seen
    assert len(blind[True]) == 0
    assert len(blind[False]) > 10  # measured 35 of the 435 earlier pixels
    # every pixel the basic one misses lies above and to the right: the wedge
    output, missed = blind[False].T
    assert bool(((missed // 6 < output // 6) & (missed % 6 > output % 6)).all())


def test_wavenet_receptive_field():
    assert WaveNet((784,)).config.layers == 10  # 2^10 = 1024 >= 784
    assert WaveNet((784,)).receptive_field == 1024
    model = _randomized(WaveNet((12,), channels=4, layers=2), scale=0.5)  # sees 4 inputs
    assert model.receptive_field == 4
    jac = torch.autograd.functional.jacobian(
        lambda x: model.features(model.inputs(x))[0, :, 0], torch.rand(1, 12)
    )[:, 0]
    for t in range(12):  # position t sees x_{t-4} .. x_{t-1}
        seen = set(jac[t].nonzero().flatten().tolist())
        assert seen == set(range(max(0, t - 4), t)), (t, seen)


def test_language_models_beat_a_bigram_model_on_held_out_python_docs():
    """Character-level LSTM and transformer, trained for seconds on 2,000 sequences of
    the Python documentation, against add-1/2 bigram counts on held-out text."""
    text = pyrogen.data.characters(64)
    train, test = text.train[:2000], text.test
    size = len(text.alphabet)
    counts = np.full((size + 1, size), 0.5)  # row `size`: the start of a sequence
    np.add.at(counts, (np.c_[np.full(len(train), size), train[:, :-1]], train), 1)
    p = counts / counts.sum(1, keepdims=True)
    bigram = -np.log2(p[np.c_[np.full(len(test), size), test[:, :-1]], test]).mean()  # 3.45
    for model in (
        RNNDecoder((64,), hidden=128, embedding=32, likelihood="categorical", num_classes=size),
        TransformerDecoder(
            (64,), dim=64, heads=4, layers=2, likelihood="categorical", num_classes=size
        ),
    ):
        model.float()  # networks train in float32 (the suite's default is float64)
        torch.manual_seed(0)
        pyrogen.fit(model, train, method="mle", batch_size=50, num_epochs=5, lr=3e-3)
        bits = float(model.bits_per_dim(test).mean())  # measured 2.8 and 3.1
        assert bits < bigram - 0.2, (type(model).__name__, bits, bigram)
        sample = text.decode(model.sample(2))
        assert len(sample) == 2 and len(sample[0]) == 64
    with pytest.raises(ValueError, match=r"x: expected integer classes in \[0, 96\)"):
        model.log_prob(np.full((2, 64), 96))
    with pytest.raises(ValueError, match=r"x: expected integer classes"):
        model.log_prob(np.full((2, 64), 0.5))
    with pytest.raises(ValueError, match="x: contains NaN"):
        model.log_prob(np.full((2, 64), np.nan))


@pytest.mark.parametrize(
    "make",
    [
        lambda: RNADE((64,), hidden=50, components=5),  # measured -39.5
        lambda: WaveNet((64,), channels=32, likelihood="normal_mixture", components=5),  # -46.2
    ],
    ids=["rnade", "wavenet"],
)
def test_real_valued_models_beat_a_full_covariance_gaussian_on_digits(make):
    x, _ = pyrogen.data.dequantized_digits(seed=0)
    x = torch.as_tensor((x - x.mean(0)) / x.std(0), dtype=torch.float32)
    train, test = x[:1400], x[1400:]
    gaussian = torch.distributions.MultivariateNormal(
        train.mean(0), torch.cov(train.T) + 1e-4 * torch.eye(64)
    )
    baseline = float(gaussian.log_prob(test).mean())  # measured -72.6
    torch.manual_seed(0)
    model = make().float()
    pyrogen.fit(model, train, method="mle", lr=5e-3, batch_size=100, num_epochs=15)
    assert float(model.log_prob(test).mean()) > baseline + 15
    with pytest.raises(ValueError, match="x: contains NaN"):
        model.log_prob(torch.full((2, 64), float("nan")))


def test_sequence_models_name_bad_arguments():
    with pytest.raises(ValueError, match="likelihood"):
        WaveNet((4,), likelihood="poisson")
    with pytest.raises(ValueError, match="num_classes"):
        RNNDecoder((4,), likelihood="categorical")
    with pytest.raises(ValueError, match="num_classes"):
        RNNDecoder((4,), likelihood="categorical", num_classes=1)
    with pytest.raises(ValueError, match="cell"):
        RNNDecoder((4,), cell="rnn")
    with pytest.raises(ValueError, match="heads"):
        TransformerDecoder((4,), dim=10, heads=4)
    with pytest.raises(ValueError, match="kernel"):
        WaveNet((4,), kernel=1)
    with pytest.raises(ValueError, match="components"):
        WaveNet((4,), likelihood="normal_mixture", components=0)
    with pytest.raises(ValueError, match="components"):
        RNADE((4,), components=0)
    with pytest.raises(ValueError, match="x: expected binary"):
        WaveNet((4,)).log_prob(np.full((2, 4), 0.5))
    with pytest.raises(ValueError, match=r"x: expected shape \(N, 4\)"):
        TransformerDecoder((4,), dim=8, heads=2).log_prob(np.zeros((2, 5)))


@pytest.mark.parametrize(
    "likelihood, extra",
    [("bernoulli", {}), ("categorical", {"num_classes": 5}), ("normal_mixture", {"components": 3})],
)
def test_head_sample_draws_what_the_distribution_draws(likelihood, extra):
    """The samplers' per-position draw skips the distribution object but takes the
    same random numbers: the same values as ``head(features).sample()``."""
    from pyrogen.nn.autoregressive import DistributionHead

    torch.manual_seed(0)
    head = DistributionHead(6, likelihood, **extra)
    features = torch.randn(4000, 6)
    with torch.no_grad():
        torch.manual_seed(1)
        direct = head.sample(features)
        torch.manual_seed(1)
        through = head(features).sample()
    assert direct.shape == through.shape == (4000,)
    assert torch.equal(direct, through)
    assert direct.dtype == through.dtype
    if likelihood != "normal_mixture":  # and the frequencies follow the probabilities
        with torch.no_grad():
            probs = head(features).mean if likelihood == "bernoulli" else None
        if probs is not None:
            assert abs(float(direct.mean() - probs.mean())) < 4 * 0.5 / 4000**0.5
        else:
            with torch.no_grad():
                expected = head(features).probs.mean(0)
            observed = torch.bincount(direct, minlength=5).double() / 4000
            assert torch.allclose(observed, expected.double(), atol=0.03)


def _deepnade_by_passes(model, x, order):
    """log p_o(x) of a DeepNADE written out: one pass of the whole network per step,
    the observed set growing along the ordering (float64)."""
    observed = torch.zeros_like(x)
    total = torch.zeros(len(x), dtype=x.dtype)
    for d in order.tolist():
        logit = model.network(x, observed)[:, d]
        total += torch.distributions.Bernoulli(logits=logit).log_prob(x[:, d])
        observed[:, d] = 1.0
    return total


def test_deepnade_running_sum_gives_the_conditionals_of_a_pass_per_step():
    """logits() carries the first layer along the ordering; under every ordering its
    log-likelihood is that of D whole passes with the observed set growing."""
    model = _randomized(DeepNADE((10,), hidden=(16, 12), num_orderings=3), scale=0.7).double()
    x = _all_binary(10).double()[::7]
    for m in range(3):
        model.use_ordering(m)
        fast = torch.distributions.Bernoulli(logits=model.logits(x)).log_prob(x).sum(-1)
        torch.testing.assert_close(fast, _deepnade_by_passes(model, x, model.orders[m]))
    # three distinct random orderings by default; data_order=True puts the data's first
    assert len({tuple(o.tolist()) for o in model.orders}) == 3
    assert not any(torch.equal(o, torch.arange(10)) for o in model.orders)
    for o in model.orders:
        assert torch.equal(o.sort().values, torch.arange(10))
    with_data = DeepNADE((10,), hidden=(16, 12), num_orderings=3, data_order=True)
    assert torch.equal(with_data.orders[0], torch.arange(10))
    assert torch.equal(with_data.orders[1], model.orders[0])  # the same draws follow
    assert torch.equal(DeepNADE((10,), hidden=(4,), num_orderings=3).orders, model.orders)
    assert not torch.equal(
        DeepNADE((10,), hidden=(4,), num_orderings=3, seed=1).orders, model.orders
    )
    each = model.ordering_log_probs(x)  # (3, N), the ensemble's members
    torch.testing.assert_close(each[1], _deepnade_by_passes(model, x, model.orders[1]))
    torch.testing.assert_close(model.log_prob(x), each.logsumexp(0) - math.log(3))
    torch.testing.assert_close(model.ordering_log_probs(x, [2, 0]), each[[2, 0]])
    for bad in ([3], [], [-1], [0.5]):
        with pytest.raises(ValueError, match=r"orderings: expected indices in \[0, 3\)"):
            model.ordering_log_probs(x, bad)
    assert model.current == 2  # left as it was


@pytest.mark.parametrize("steps", [1, 3])
def test_deepnade_training_site_averages_to_the_mean_log_likelihood_over_orderings(
    steps, monkeypatch
):
    """The training site, weighted D / (D - k) on the D - k unobserved dimensions of a
    random observed set S (k = |S| ~ U{0..D-1}, S uniform given k), is an unbiased
    estimate of E_o log p_o(x) over all D! orderings: summed over every S with its
    probability 1 / (D C(D, k)) it equals the mean over the 24 orderings of D = 4.
    For NADE-k, the site of the last pass (``step_loss="last"``)."""
    model = DeepNADE((4,), hidden=(8, 6), steps=steps, step_loss="last")
    model = _randomized(model, scale=1.0).double().train()
    x = torch.tensor([[1.0, 0.0, 1.0, 1.0]], dtype=torch.float64)
    orderings = [torch.tensor(o) for o in itertools.permutations(range(4))]
    target = torch.stack([_deepnade_by_passes(model, x, o) for o in orderings]).mean()
    subsets = _all_binary(4).double()[:-1]  # every S but the full set
    probability = torch.tensor(
        [1 / (4 * math.comb(4, int(k))) for k in subsets.sum(-1)], dtype=torch.float64
    )
    assert float(probability.sum()) == pytest.approx(1.0)
    monkeypatch.setattr(model, "_random_observed", lambda flat: subsets)
    trace = pyro.poutine.trace(model.model).get_trace(x.expand(len(subsets), 4))
    site = trace.nodes["x"]
    weighted = site["fn"].log_prob(site["value"]) * site["scale"]  # (15,)
    torch.testing.assert_close((probability * weighted).sum(), target)
    # a wrong weight (none: the plain masked likelihood) misses it
    plain = site["fn"].log_prob(site["value"]).detach()
    assert abs(float((probability * plain).sum() - target.detach())) > 0.25
    sites = [name for name, node in trace.nodes.items() if node["type"] == "sample"]
    assert sites == ["data", "x"]


def test_nade_k_mean_step_loss_observes_every_pass_with_weight_one_kth(monkeypatch):
    """``step_loss="mean"``: the last pass's likelihood is the site ``x``, the earlier
    passes' are auxiliary factors (not observations of x: the data are observed once),
    each term weighted D / (D - k) / steps, each the masked likelihood of that pass's
    logits."""
    model = _randomized(DeepNADE((5,), hidden=(8,), steps=3), scale=1.0).double().train()
    x = _all_binary(5).double()[::3]
    observed = torch.rand(len(x), 5, generator=torch.Generator().manual_seed(1)) < 0.4
    observed = observed.double()
    observed[:, 0] = 0.0  # at least one unobserved dimension
    monkeypatch.setattr(model, "_random_observed", lambda flat: observed)
    trace = pyro.poutine.trace(model.model).get_trace(x)
    names = [name for name, node in trace.nodes.items() if node["type"] == "sample"]
    assert names == ["data", "x_pass1", "x_pass2", "x"]
    passes = model.passes(x, observed)
    weight = 5 / (5 - observed.sum(-1)) / 3
    for name, logits in zip(names[1:], passes):
        site = trace.nodes[name]
        expected = torch.distributions.Bernoulli(logits=logits).log_prob(x)
        expected = (expected * (1 - observed)).sum(-1)
        torch.testing.assert_close(site["fn"].log_prob(site["value"]), expected)
        torch.testing.assert_close(site["scale"], weight)
    assert not torch.allclose(passes[0], passes[2])  # the refinement changes the logits
    assert [trace.nodes[n]["infer"].get("is_auxiliary", False) for n in names[1:]] == [
        True,
        True,
        False,
    ]


def test_nade_k_passes_refine_the_filled_in_values_and_one_step_is_deepnade():
    """Pass i reads [x on S, pass i-1's probabilities off S; the mask], the first pass
    zeros off S: written out with the layers. One step is DeepNADE: its whole-pass
    prefix logits equal the running sum's. And the k-step conditionals computed as N D
    prefix rows equal those of a pass per dimension (float64)."""
    model = _randomized(DeepNADE((10,), hidden=(16, 12), num_orderings=2, steps=3), scale=0.7)
    model = model.double()
    x = _all_binary(10).double()[::11]
    observed = torch.rand(len(x), 10, generator=torch.Generator().manual_seed(0)) < 0.5
    observed = observed.double()

    def mlp(value):
        h = torch.cat([value, observed], -1)
        for layer in model.layers[:-1]:
            h = torch.relu(layer(h))
        return model.layers[-1](h)

    value, by_hand = x * observed, []
    for _ in range(3):
        by_hand.append(mlp(value))
        value = x * observed + torch.sigmoid(by_hand[-1]) * (1 - observed)
    with torch.no_grad():
        for ours, theirs in zip(model.passes(x, observed), by_hand):
            torch.testing.assert_close(ours, theirs)
        torch.testing.assert_close(model.network(x, observed), by_hand[-1])
        x_off = x * observed + (1 - observed) * 0.3  # the values off S are not read
        torch.testing.assert_close(model.network(x_off, observed), by_hand[-1])
        for m in range(2):
            model.use_ordering(m)
            fast = torch.distributions.Bernoulli(logits=model.logits(x)).log_prob(x).sum(-1)
            torch.testing.assert_close(fast, _deepnade_by_passes(model, x, model.orders[m]))
        one = DeepNADE((10,), hidden=(16, 12), num_orderings=2).double()
        one.load_state_dict(model.state_dict())
        torch.testing.assert_close(one.network(x, observed), by_hand[0])
        for m in range(2):
            one.use_ordering(m)
            torch.testing.assert_close(one.prefix_logits(x), one.logits(x))
        gap = (model.log_prob(x) - one.log_prob(x)).abs().max()
        assert float(gap) > 0.1  # three steps are another model


def test_deepnade_draws_observed_sets_of_uniform_size_and_uniform_given_the_size():
    model = DeepNADE((4,), hidden=(3,))
    torch.manual_seed(0)
    observed = model._random_observed(torch.zeros(60000, 4))
    codes = (observed * torch.tensor([8.0, 4.0, 2.0, 1.0])).sum(-1).long()
    frequency = torch.bincount(codes, minlength=16).double() / len(codes)
    sizes = _all_binary(4).sum(-1)
    expected = torch.tensor([1 / (4 * math.comb(4, int(k))) if k < 4 else 0.0 for k in sizes])
    assert float((frequency - expected.double()).abs().max()) < 0.006  # 4 sd at 1/4


@pytest.mark.parametrize("steps", [1, 3])
def test_deepnade_sampler_draws_what_a_pass_per_step_draws(steps):
    """The sampler (first layer carried along, one output row per step) draws, under
    every ordering and from the same seed, exactly what whole passes draw (float64)."""
    model = DeepNADE((10,), hidden=(16, 12), num_orderings=2, steps=steps)
    model = _randomized(model, scale=0.7).double()
    for m in range(2):
        model.use_ordering(m)
        torch.manual_seed(5)
        with torch.no_grad():
            fast = model._sample_current(300)
        torch.manual_seed(5)
        x = torch.zeros(300, 10, dtype=torch.float64)
        observed = torch.zeros_like(x)
        with torch.no_grad():
            for d in model.orders[m].tolist():
                x[:, d] = torch.bernoulli(torch.sigmoid(model.network(x, observed)[:, d]))
                observed[:, d] = 1.0
        assert torch.equal(fast, x)
        assert 0.05 < float(fast.mean()) < 0.95
    model.use_ordering(1)
    assert model.sample(9).shape == (9, 10) and model.current == 1


@pytest.mark.parametrize("steps", [1, 2])
def test_deepnade_fast_elbo_is_pyros_and_fit_trains_it(steps):
    from pyrogen.infer.fast_elbo import FastELBO, agrees_with_pyro

    model = _randomized(DeepNADE((6,), hidden=(8,), steps=steps), scale=0.5).double().train()
    x = (torch.rand(30, 6, generator=torch.Generator().manual_seed(0)) < 0.4).double()
    empty = lambda *args, **kwargs: None  # noqa: E731
    assert agrees_with_pyro(FastELBO(), pyro.infer.Trace_ELBO(), model.model, empty, (x,), {})
    eval_before = float(model.eval().log_prob(x).mean())
    fit = pyrogen.fit(model.train(), x, method="mle", num_steps=300, lr=0.03, progress=False)
    assert np.isfinite(fit.losses).all()
    assert float(model.log_prob(x).mean()) > eval_before + 0.5


def test_deepnade_set_orderings_gives_a_trained_model_another_ensemble(tmp_path):
    """The ensemble is a test-time choice: set_orderings draws M new orderings with the
    same seed (the first ones unchanged), the ensemble still normalizes, the model
    saves and loads with it, and bad arguments are refused by name."""
    model = _randomized(DeepNADE((10,), hidden=(16, 12), num_orderings=2, steps=2), scale=1.0)
    before = model.orders.clone()
    model.use_ordering(1)
    model.set_orderings(5)
    assert model.orders.shape == (5, 10) and model.config.num_orderings == 5
    assert torch.equal(model.orders[:2], before) and model.current == 0
    log_p = model.log_prob(_all_binary(10))
    assert float(log_p.exp().sum()) == pytest.approx(1.0, abs=1e-5)
    model.save(tmp_path / "m.pt")
    loaded = DeepNADE.load(tmp_path / "m.pt")
    assert torch.equal(loaded.orders, model.orders)
    torch.testing.assert_close(loaded.log_prob(_all_binary(10)), log_p)
    model.set_orderings(3, seed=1, data_order=True)
    assert torch.equal(model.orders[0], torch.arange(10))
    assert torch.equal(
        model.orders, DeepNADE((10,), num_orderings=3, seed=1, data_order=True).orders
    )
    with pytest.raises(ValueError, match="num_orderings"):
        model.set_orderings(0)
    with pytest.raises(TypeError, match="data_order"):
        model.set_orderings(2, data_order="no")
