"""The two training loops the flow benches compare, each keeping the epoch with the
best validation figure: ``pyrogen.fit`` (with a callback that scores every epoch's
end) and the textbook PyTorch loop a baseline flow (zuko, normflows) is trained by
(``-flow().log_prob(x).mean()``, backward, ``torch.optim.Adam``).

Both take ``score(model) -> float`` (lower is better, called in eval mode) and read
``lr``, ``batch_size``, ``seed`` and, where present, ``device`` from ``options``; both
return ``{"score", "epoch", "seconds"}`` with the best epoch's state loaded back and the
model left in eval mode. The seconds are the whole fit's, validation included.
"""

from __future__ import annotations

import copy
import math
import time

import torch


def _keep(best: dict, value: float, epoch: int, model: torch.nn.Module) -> None:
    if value < best["score"]:
        best.update(score=value, epoch=epoch, state=copy.deepcopy(model.state_dict()))


def _restore(best: dict, model: torch.nn.Module, began: float) -> dict:
    best["seconds"] = time.perf_counter() - began
    state = best.pop("state")
    if state is not None:
        model.load_state_dict(state)
    model.eval()
    return best


def fit_pyrogen(model, train, score, options, epochs: int, method: str = "mle") -> dict:
    """``pyrogen.fit(model, train, method=...)`` for ``epochs`` epochs."""
    import pyro

    import pyrogen

    steps_per_epoch = math.ceil(len(train) / options.batch_size)
    best = {"score": math.inf, "epoch": 0, "state": None}

    def select(step: int, loss: float) -> None:
        if step % steps_per_epoch == 0:
            model.eval()
            value = score(model)
            model.train()
            _keep(best, value, step // steps_per_epoch, model)

    pyro.clear_param_store()
    began = time.perf_counter()
    pyrogen.fit(model, train, method=method, lr=options.lr, batch_size=options.batch_size,
                num_epochs=epochs, seed=options.seed, progress=False, callback=select,
                device=getattr(options, "device", None))  # fmt: skip
    return _restore(best, model, began)


def fit_textbook(flow, train, score, options, epochs: int) -> dict:
    """The baseline's loop: Adam on ``-flow().log_prob(batch).mean()``, minibatches in
    an order drawn from ``options.seed``."""
    device = getattr(options, "device", None) or "cpu"
    flow, train = flow.to(device), train.to(device)
    optimizer = torch.optim.Adam(flow.parameters(), lr=options.lr)
    generator = torch.Generator().manual_seed(options.seed)
    best = {"score": math.inf, "epoch": 0, "state": None}
    began = time.perf_counter()
    for epoch in range(1, epochs + 1):
        flow.train()
        order = torch.randperm(len(train), generator=generator).to(device)
        for batch in train[order].split(options.batch_size):
            loss = -flow().log_prob(batch).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        flow.eval()
        with torch.no_grad():
            _keep(best, score(flow), epoch, flow)
    return _restore(best, flow, began)
