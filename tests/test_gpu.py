"""The zoo on a CUDA device: every contract case fits there through
``pyrogen.fit(..., device="cuda")``, and its log-density and draws stay on the device
and agree with the same model moved back to the CPU.

These tests need a GPU: without one they are skipped (CI has none; they are run on a
GPU machine with ``pytest -m gpu``).
"""

import copy

import pytest
import torch
from test_zoo_contract import CASES, _build

import pyrogen

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device"),
]


@pytest.mark.parametrize("name", sorted(CASES))
def test_fit_log_prob_and_sample_on_cuda(name):
    model, args = _build(name)
    data = args[0]
    fit = pyrogen.fit(
        model, *args, method=model.default_method, num_steps=5, progress=False, device="cuda"
    )
    assert all(torch.isfinite(torch.as_tensor(v)).all() for v in fit.losses), name
    on_gpu = model.log_prob(data.cuda())
    assert on_gpu.is_cuda and torch.isfinite(on_gpu).all()
    draws = model.sample(7)
    assert draws.is_cuda and draws.shape == (7,) + data.shape[1:]
    on_cpu = copy.deepcopy(model).cpu()  # the same parameters, the same density
    if name.startswith(("vae", "hvae")):  # an importance-sampled estimate
        expected = on_cpu.log_prob(data.cpu(), num_samples=2000)
        got = model.log_prob(data.cuda(), num_samples=2000).cpu()
        # different devices draw different z: they agree to Monte Carlo error
        assert abs(float(got.mean()) - float(expected.mean())) < 0.3
        assert float((got - expected).abs().max()) < 3.0
    else:
        torch.testing.assert_close(on_gpu.cpu(), on_cpu.log_prob(data.cpu()))


def test_a_fit_on_cuda_ends_where_the_cpu_fit_ends():
    """Same start, same data, same steps: NADE fitted by maximum likelihood on the GPU
    ends where the CPU fit ends (float64, so only the kernels' round-off differs)."""
    from pyrogen.models import NADE

    x = (torch.rand(300, 20, generator=torch.Generator().manual_seed(0)) < 0.3).double()
    torch.manual_seed(0)
    template = NADE((20,), hidden=16)
    ends = []
    for device in ("cpu", "cuda"):
        model = copy.deepcopy(template)
        fit = pyrogen.fit(model, x, method="mle", num_steps=50, lr=0.01, progress=False,
                          device=device)  # fmt: skip
        ends.append((fit.losses, {k: v.cpu() for k, v in model.state_dict().items()}))
    (loss_cpu, state_cpu), (loss_gpu, state_gpu) = ends
    assert len(loss_cpu) == len(loss_gpu) == 50 and loss_cpu[-1] < loss_cpu[0] - 1.0
    assert loss_gpu[-1] == pytest.approx(loss_cpu[-1], rel=1e-8)
    for key in state_cpu:
        torch.testing.assert_close(state_gpu[key], state_cpu[key], rtol=1e-7, atol=1e-9)
