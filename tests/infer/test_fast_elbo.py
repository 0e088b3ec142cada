"""pyrogen's trace-free ELBO equals Pyro's Trace_ELBO / TraceMeanField_ELBO at the same
draws, and the SVI engine takes the same steps with it as with Pyro's."""

import copy
import math

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro import poutine
from pyro.infer import Trace_ELBO, TraceMeanField_ELBO
from pyro.infer.autoguide import AutoIAFNormal, AutoNormal
from pyrogen.models import MAF, NADE, VAE, HierarchicalVAE

import pyrogen
from pyrogen.infer.fast_elbo import FastELBO, UnsupportedModel, fast_twin
from pyrogen.infer.svi import SharedAdam, SVIEngine


def _binary(n, d, seed=0):
    return (torch.rand(n, d, generator=torch.Generator().manual_seed(seed)) < 0.3).double()


def _same_draws(pyro_elbo, fast, model, guide, *args, **kwargs):
    """Both losses and their gradients from the same random state."""
    out = []
    for elbo in (pyro_elbo, fast):
        pyro.set_rng_seed(7)
        loss = elbo.differentiable_loss(model, guide, *args, **kwargs)
        params = [p for _, p in sorted(pyro.get_param_store().named_parameters())]
        grads = torch.autograd.grad(loss, params, allow_unused=True)
        out.append((loss.detach(), grads))
    return out


def _conjugate_model(y):
    mu = pyro.sample("mu", dist.Normal(0.0, 2.0))
    sigma = pyro.sample("sigma", dist.LogNormal(0.0, 1.0))
    with pyro.plate("data", len(y)):
        pyro.sample("y", dist.Normal(mu, sigma), obs=y)


def _auxiliary_guide(y):  # a guide-only site, marked auxiliary as Pyro requires
    loc = pyro.param("loc", torch.tensor(0.3))
    u = pyro.sample("u", dist.Normal(loc, 1.0), infer={"is_auxiliary": True})
    pyro.sample("mu", dist.Normal(u, 0.5))
    pyro.sample("sigma", dist.LogNormal(pyro.param("s", torch.tensor(0.1)), 0.3))


CASES = {
    "vae": lambda: (VAE((12,), latent_dim=3, hidden=(8,)), (_binary(20, 12),)),
    "vae-beta": lambda: (VAE((12,), latent_dim=3, hidden=(8,), beta=2.5), (_binary(20, 12),)),
    "vae-beta0": lambda: (VAE((12,), latent_dim=3, hidden=(8,), beta=0.0), (_binary(20, 12),)),
    "vamp": lambda: (
        VAE((12,), latent_dim=3, hidden=(8,), prior="vamp", num_pseudo=4),
        (_binary(20, 12),),
    ),
    "hvae": lambda: (HierarchicalVAE((12,), 3, 2, hidden=(8,)), (_binary(20, 12),)),
    "vae-iaf-maf-prior": lambda: (
        VAE((12,), latent_dim=3, hidden=(8,), posterior_flow=2, prior_flow=2, flow_hidden=8),
        (_binary(20, 12),),
    ),
    "maf": lambda: (MAF((4,), layers=2, hidden=(8,), norm="act"), (torch.randn(20, 4),)),
    "nade": lambda: (NADE((12,), hidden=5), (_binary(20, 12),)),
}


@pytest.mark.parametrize("mean_field", [True, False])
@pytest.mark.parametrize("name", sorted(CASES))
def test_equals_pyro_on_the_zoo(name, mean_field):
    model, args = CASES[name]()
    (x,) = model.prepare(*args)
    guide = model.guide or (lambda *a, **k: None)
    kwargs = {"num_examples": 50}  # a minibatch of 20 scaled up to 50
    pyro_elbo = TraceMeanField_ELBO() if mean_field else Trace_ELBO()
    (loss_p, grads_p), (loss_f, grads_f) = _same_draws(
        pyro_elbo, FastELBO(mean_field), model.model, guide, x, **kwargs
    )
    torch.testing.assert_close(loss_f, loss_p, rtol=1e-12, atol=1e-10)
    for gp, gf in zip(grads_p, grads_f):
        if gp is None:
            assert gf is None or not gf.abs().sum()
        else:
            torch.testing.assert_close(gf, gp, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("mean_field", [True, False])
def test_equals_pyro_with_constrained_params_and_auxiliary_sites(mean_field):
    y = torch.randn(15, generator=torch.Generator().manual_seed(1)) + 1.0
    iaf = AutoIAFNormal(_conjugate_model, num_transforms=1, hidden_dim=[6])
    for guide in (AutoNormal(_conjugate_model), iaf, _auxiliary_guide):
        pyro.clear_param_store()
        guide(y)  # create the guide's parameters
        pyro_elbo = TraceMeanField_ELBO() if mean_field else Trace_ELBO()
        (loss_p, grads_p), (loss_f, grads_f) = _same_draws(
            pyro_elbo, FastELBO(mean_field), _conjugate_model, guide, y
        )
        torch.testing.assert_close(loss_f, loss_p, rtol=1e-12, atol=1e-10)
        for gp, gf in zip(grads_p, grads_f):
            torch.testing.assert_close(gf, gp, rtol=1e-10, atol=1e-10)
        # the parameters Pyro's SVI would step, each once (an IAF's weights come
        # under two site names)
        _, params = FastELBO(mean_field).differentiable_loss_and_params(_conjugate_model, guide, y)
        with poutine.trace(param_only=True) as capture:
            pyro_elbo.differentiable_loss(_conjugate_model, guide, y)
        expected = {id(site["value"].unconstrained()) for site in capture.trace.nodes.values()}
        assert len(params) == len({id(p) for p in params}) and {id(p) for p in params} == expected
    # a mean-field KL really replaced the Monte Carlo term: the two estimators differ
    pyro.set_rng_seed(3)
    kl_loss = FastELBO(True).differentiable_loss(_conjugate_model, guide, y).detach()
    pyro.set_rng_seed(3)
    mc_loss = FastELBO(False).differentiable_loss(_conjugate_model, guide, y).detach()
    assert abs(kl_loss.item() - mc_loss.item()) > 1e-6


@pytest.mark.parametrize("mean_field", [True, False])
def test_equals_pyro_with_vectorized_particles(mean_field):
    y = torch.randn(15, generator=torch.Generator().manual_seed(2)) + 1.0
    kind = TraceMeanField_ELBO if mean_field else Trace_ELBO
    pyro_elbo = kind(num_particles=8, vectorize_particles=True, max_plate_nesting=1)
    fast = fast_twin(pyro_elbo)
    assert fast.num_particles == 8 and fast.dim == -pyro_elbo.max_plate_nesting
    pyro.clear_param_store()
    guide = AutoNormal(_conjugate_model)
    guide(y)
    (loss_p, grads_p), (loss_f, grads_f) = _same_draws(pyro_elbo, fast, _conjugate_model, guide, y)
    torch.testing.assert_close(loss_f, loss_p, rtol=1e-12, atol=1e-10)
    for gp, gf in zip(grads_p, grads_f):
        torch.testing.assert_close(gf, gp, rtol=1e-10, atol=1e-10)
    # 8 particles are not one: the estimate differs from one particle's at the same seed
    pyro.set_rng_seed(0)
    one = FastELBO(mean_field).differentiable_loss(_conjugate_model, guide, y).detach()
    pyro.set_rng_seed(0)
    eight = fast.differentiable_loss(_conjugate_model, guide, y).detach()
    assert abs(one.item() - eight.item()) > 1e-6


def test_refuses_what_it_cannot_compute():
    def model():
        pyro.sample("b", dist.Bernoulli(0.3))

    def score_function_guide():
        pyro.sample("b", dist.Bernoulli(pyro.param("p", torch.tensor(0.5))))

    with pytest.raises(UnsupportedModel, match="'b' is not reparameterized"):
        FastELBO().differentiable_loss(model, score_function_guide)

    def latent_model():
        pyro.sample("z", dist.Normal(0.0, 1.0))

    with pytest.raises(UnsupportedModel, match="'z' is not in the guide"):
        FastELBO().differentiable_loss(latent_model, lambda: None)
    assert fast_twin(Trace_ELBO(num_particles=2)) is None
    assert fast_twin(pyro.infer.TraceEnum_ELBO()) is None
    assert fast_twin(pyro.infer.JitTrace_ELBO()) is None
    assert isinstance(fast_twin(TraceMeanField_ELBO()), FastELBO)


def test_the_engine_takes_the_same_steps_as_with_pyros_elbo():
    """Same seed, same batches: every loss and the final weights agree, and the fast
    path was really taken."""
    x = _binary(200, 12, seed=2)
    template = VAE((12,), latent_dim=3, hidden=(8,))
    runs = []
    for fast in (True, False):
        pyro.clear_param_store()
        pyro.set_rng_seed(0)
        vae = copy.deepcopy(template)
        (data,) = vae.prepare(x)
        engine = SVIEngine(
            vae.model, vae.guide, SharedAdam(0.01), TraceMeanField_ELBO(), (data,),
            loss_scale=200.0, batch_size=50, fast=fast,
        )  # fmt: skip
        losses = [engine.update() for _ in range(12)]
        assert (engine.fast is not None) == fast
        runs.append((losses, copy.deepcopy(vae.state_dict())))
    (fast_losses, fast_state), (pyro_losses, pyro_state) = runs
    assert fast_losses == pytest.approx(pyro_losses, rel=1e-10)
    for key in fast_state:
        torch.testing.assert_close(fast_state[key], pyro_state[key], rtol=1e-9, atol=1e-12)


def test_the_engine_falls_back_to_pyro_where_the_fast_elbo_does_not_apply():
    def model(y):
        p = pyro.sample("p", dist.Beta(2.0, 2.0))
        with pyro.plate("data", len(y)):
            pyro.sample("y", dist.Bernoulli(p), obs=y)

    class NoRsampleBeta(dist.Beta):
        has_rsample = False

    def score_guide(y):  # a score-function (not reparameterized) guide
        a = pyro.param("a", torch.tensor(2.0), constraint=dist.constraints.positive)
        pyro.sample("p", NoRsampleBeta(a, 2.0))

    y = torch.tensor([1.0, 0.0, 1.0, 1.0])
    engine = SVIEngine(model, score_guide, SharedAdam(0.01), Trace_ELBO(), (y,))
    assert engine.fast is not None
    assert all(torch.isfinite(torch.tensor(engine.update())) for _ in range(3))
    assert engine.fast is None  # the first step found it unsupported


def test_a_minibatch_engine_checks_the_fast_elbo_on_two_examples_and_falls_back(monkeypatch):
    """Under minibatches the first step compares the two ELBOs on the batch's first two
    examples, still scaled to N; a model on which they differ there (a factor that
    only Pyro's trace sees) runs on Pyro's ELBO, one on which they agree on the fast one."""
    import pyrogen.infer.svi as svi_module
    from pyrogen.zoo import data_plate

    def model(y, num_examples=None, odd=False):
        p = pyro.sample("p", dist.Beta(2.0, 2.0))
        if odd:
            traced = any(isinstance(h, poutine.trace_messenger.TraceMessenger)
                         for h in poutine.runtime._PYRO_STACK)  # fmt: skip
            pyro.factor("odd", torch.tensor(1.0 if traced else 0.0))
        with data_plate(y, num_examples):
            pyro.sample("y", dist.Bernoulli(p), obs=y)

    def guide(y, num_examples=None, odd=False):
        a = pyro.param("a", torch.tensor(2.0), constraint=dist.constraints.positive)
        pyro.sample("p", dist.Beta(a, 2.0))

    seen = []
    check = svi_module.agrees_with_pyro

    def spy(fast, elbo, model, guide, args, kwargs):
        seen.append((args[0].shape[0], kwargs["num_examples"]))
        return check(fast, elbo, model, guide, args, kwargs)

    monkeypatch.setattr(svi_module, "agrees_with_pyro", spy)
    y = torch.tensor([1.0, 0.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0])
    for odd in (False, True):
        pyro.clear_param_store()
        seen.clear()
        engine = SVIEngine(
            model, guide, SharedAdam(0.01), Trace_ELBO(), (y,), {"odd": odd}, batch_size=4
        )
        assert all(math.isfinite(engine.update()) for _ in range(3))
        assert seen == [(2, 8)]  # one check, on two examples standing for all eight
        assert (engine.fast is None) == odd


def test_networks_still_show_their_parameters_to_other_handlers():
    """The zoo's module registration skips the per-parameter sites only under the fast
    ELBO alone: stock Pyro SVI (a param trace) still sees and trains every weight."""
    x = _binary(64, 12, seed=3)
    vae = VAE((12,), latent_dim=3, hidden=(8,))
    (data,) = vae.prepare(x)
    pyro.clear_param_store()
    with poutine.trace(param_only=True) as capture:
        vae.guide(data)
    assert {n for n in capture.trace.nodes} == {
        f"encoder$$${k}" for k, _ in vae.encoder.named_parameters()
    }
    before = {k: p.detach().clone() for k, p in vae.named_parameters()}
    svi = pyro.infer.SVI(vae.model, vae.guide, pyro.optim.Adam({"lr": 0.05}), Trace_ELBO())
    for _ in range(3):
        svi.step(data)
    after = dict(vae.named_parameters())
    assert before and all(not torch.equal(before[k], after[k]) for k in before)


def test_a_fit_through_pyrogen_converges():
    x = _binary(300, 12, seed=4)
    vae = VAE((12,), latent_dim=2, hidden=(16,))
    fit = pyrogen.fit(vae, x, method="svi", loss="mean_field", batch_size=50, num_epochs=20,
                      lr=0.02, progress=False)  # fmt: skip
    first, last = sum(fit.losses[:6]) / 6, sum(fit.losses[-6:]) / 6
    assert last < first - 0.5


def test_fit_names_a_bad_fast_elbo_argument():
    with pytest.raises(TypeError, match="fast_elbo: expected True or False"):
        pyrogen.fit(VAE((12,), latent_dim=2), _binary(20, 12), method="svi", fast_elbo="no",
                    num_steps=2, progress=False)  # fmt: skip
