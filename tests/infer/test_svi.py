"""SharedAdam: one torch Adam over every parameter takes Pyro's per-parameter steps."""

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import SVI, Trace_ELBO

from pyrogen.infer.svi import SharedAdam


def model(x):
    loc = pyro.param("loc", torch.zeros(3))
    scale = pyro.param("scale", torch.ones(3), constraint=dist.constraints.positive)
    with pyro.plate("data", len(x)):
        pyro.sample("x", dist.Normal(loc, scale).to_event(1), obs=x)


def guide(x):
    pass


def run(optim, x, steps, lr_at=None):
    pyro.clear_param_store()
    svi = SVI(model, guide, optim, Trace_ELBO())
    for step in range(steps):
        if lr_at is not None and step == lr_at[0]:
            lr_at[1]()
        svi.step(x)
    store = pyro.get_param_store()
    return store["loc"].detach().clone(), store["scale"].detach().clone()


def test_shared_adam_takes_pyro_adams_steps():
    x = torch.randn(50, 3) * 2 + 1
    ours = run(SharedAdam(0.05), x, 30)
    pyros = run(pyro.optim.Adam({"lr": 0.05}), x, 30)
    for a, b in zip(ours, pyros):
        assert torch.allclose(a, b, atol=1e-6)
    assert not torch.allclose(ours[0], torch.zeros(3))  # it moved


def test_set_lr_changes_the_steps_from_then_on():
    x = torch.randn(50, 3) * 2 + 1
    shared = SharedAdam(0.05)
    ours = run(shared, x, 30, lr_at=(10, lambda: shared.set_lr(0.005)))
    # the same schedule by hand: Pyro's Adam, its torch optimizers' lr lowered at step 10
    adam = pyro.optim.Adam({"lr": 0.05})

    def lower():
        for optimizer in adam.optim_objs.values():
            for group in optimizer.param_groups:
                group["lr"] = 0.005

    pyros = run(adam, x, 30, lr_at=(10, lower))
    for a, b in zip(ours, pyros):
        assert torch.allclose(a, b, atol=1e-6)
    constant = run(SharedAdam(0.05), x, 30)
    assert not torch.allclose(ours[0], constant[0], atol=1e-3)
    assert shared.optimizer.param_groups[0]["lr"] == 0.005


@pytest.mark.parametrize("lr", [0.0, -1.0, float("nan"), float("inf")])
def test_set_lr_refuses_a_bad_rate(lr):
    with pytest.raises(ValueError, match="lr"):
        SharedAdam(0.01).set_lr(lr)


def test_fused_kernel_where_the_parameters_allow_and_foreach_after_one_it_cannot_take():
    pyro.clear_param_store()
    real = pyro.param("real", torch.ones(4)).unconstrained()
    adam = SharedAdam(0.1)
    real.grad = torch.ones(4)
    adam([real])
    assert adam.optimizer.param_groups[0]["fused"]
    moved = real.detach().clone()
    # a complex parameter: the fused kernel refuses it, so the optimizer moves to the
    # foreach kernel and keeps the first parameter's moments
    z = pyro.param("z", torch.ones(2, dtype=torch.complex64)).unconstrained()
    real.grad, z.grad = torch.ones(4), torch.ones(2, dtype=torch.complex64)
    adam([real, z])
    assert not any(g["fused"] for g in adam.optimizer.param_groups)
    step = adam.optimizer.state[real]["step"]
    assert float(step) == 2.0  # the first step's state was carried over
    assert torch.all(real.detach() < moved)
    assert torch.all(z.detach().real < 1)
    unfused = SharedAdam(0.1, fused=False)
    real.grad = torch.ones(4)
    unfused([real])
    assert not unfused.optimizer.param_groups[0]["fused"]
