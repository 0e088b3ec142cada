r"""Autoregressive binary models on binarized MNIST: test NLL against the papers, and
training and sampling speed against hand-written PyTorch.

1. Quality. FVSBN, NADE (500 hidden units), MADE (one hidden layer of 500, one mask),
   PixelCNN and DeepNADE (below) fitted by ``pyrogen.fit(model, x, method="mle",
   batch_size=100, ...)`` on ``train``, the epoch kept by the log-likelihood on
   ``valid`` (checked every ``--eval-every`` epochs, at most ``--max-minutes`` per
   model), reported as the exact test NLL in nats (± its standard error over the test
   images) beside the papers' figures on the same split: FVSBN 97.45 and NADE 88.86
   (Larochelle and Murray 2011), MADE 88.40 (one hidden layer, one mask; Germain et al.
   2015, Table 6, whose MNIST runs used hidden layers of 8000 units and direct
   input-to-output connections: ``--made-hidden 8000 --made-direct``), PixelCNN 81.30
   (van den Oord et al. 2016a; the default here is a 7-layer, 64-channel gated PixelCNN:
   ``--pixelcnn-layers 20 --pixelcnn-channels 32`` is the deeper, narrower one that
   beats that figure). ``*_nll_vs_paper_ratio`` is ours over theirs (above 1: worse).
   The train NLL (first 10,000 training images) is printed beside it: the gap is the
   overfit. FVSBN's weights can take a prior (``--fvsbn-prior laplace
   --fvsbn-prior-scale 0.2``: the fit is then the posterior mode, L1-penalized logistic
   regressions).
2. Speed. NADE's training step through pyrogen's engine against a hand-written PyTorch
   loop of the same network, optimizer and batches (``nade_train_time_ratio``), and
   drawing 100 images sequentially with ``NADE.sample`` against a hand-written
   sampler that keeps the running pre-activation (O(DH) per image instead of
   re-running the teacher-forced pass per pixel: ``nade_sample_time_ratio``). Then,
   for FVSBN, NADE, MADE and the gated PixelCNN (untrained weights), the
   teacher-forced log-likelihood throughput of ``log_prob`` on 1000 test images
   (images/s) against the same network written out in plain PyTorch from the model's
   weights (``*_loglik_time_ratio``; the two log-likelihoods must agree), and the time
   to draw ``--sample-images`` images with ``sample`` against the sampler such code
   usually has, a pass of the whole network per pixel (``*_sample_time_ratio``;
   FVSBN's reads its one row of weights per pixel). pyrogen's MADE carries the first
   layer's pre-activation along the ordering and its PixelCNN passes over the rows
   down to the pixel's only. The timed PixelCNN is ``--speed-pixelcnn`` 16 3
   (channels, layers): the 64-channel, 7-layer one takes seconds per pass over 100
   images on 2 CPU cores, so 784 passes would take most of an hour.

    python bench/ar_mnist.py --quick             # under a minute
    python bench/ar_mnist.py --speed-only --repeats 5 --threads 1   # the timings alone
    python bench/ar_mnist.py --speed-only --repeats 5 --threads 1 --nade-steps 20   # shorter
    python bench/ar_mnist.py --max-minutes 20    # per model
    python bench/ar_mnist.py --models fvsbn --no-speed --epochs 100 --eval-every 4 \
        --lr 1e-2 --lr-decay 0.95 --fvsbn-prior laplace --fvsbn-prior-scale 0.2
    python bench/ar_mnist.py --models made --made-hidden 8000 --made-direct --lr 3e-4 \
        --device cuda --no-speed --epochs 2000 --max-minutes 6.5 --eval-every 1 --patience 5
    python bench/ar_mnist.py --models pixelcnn --pixelcnn-layers 20 --pixelcnn-channels 32 \
        --lr 1e-3 --lr-decay 0.95 --device cuda --no-speed --epochs 2000 --max-minutes 8.2 \
        --eval-every 1 --patience 4
    python bench/ar_mnist.py --models deepnade --deepnade-steps 5 --no-speed \
        --epochs 2000 --max-minutes 30 --eval-every 5 --lr 1e-3 --lr-decay 0.99 \
        --valid-size 200 --test-size 1000 --train-scored 200 --deepnade-orderings 2 --threads 2

``--made-masks 32`` trains one network under 32 mask sets (a random one per step:
order- and connectivity-agnostic training) and scores the ensemble (1/32) sum_m p_m(x),
against the paper's 88.04 for one hidden layer and 32 masks. The paper's code trained
it with Adagrad, lr 0.01, batches of 100 and a look-ahead of 30 epochs on the
ensemble's validation log-likelihood: ``--made-hidden 8000 --made-direct --made-masks 32
--optimizer adagrad --lr 0.01 --eval-every 1 --patience 30``. ``--made-init
orthogonal`` starts it as the paper's code did. ``--made-hidden 8000
8000`` is the two-layer network of its best figure, 86.64 with 32 masks (89.59 with
one); ``made_paper_nll`` is the paper's figure for the layers and masks given.

``--models deepnade`` fits pyrogen's ``DeepNADE`` (``--deepnade-hidden``, default two
ReLU layers of 500) order-agnostically (a random ordering and observed prefix per
example and step; Uria, Murray and Larochelle 2014), selects the epoch on ``valid``
under its first ordering alone (a random one; the data's raster order with
``--deepnade-data-order``), and reports the test NLL of the ensemble over
``--deepnade-orderings`` orderings (default 8; each costs D passes of the upper layers
per image) beside each ordering's and the ensembles of the first 1, 2, 4, ...
orderings, against 84.68, the issue's figure for "EoNADE, two hidden layers". Raiko et
al. (2014, Table 1) label 84.68 "EoNADE-5 2hl": NADE-k with k = 5 refinement passes,
scored over 128 orderings, after 1000 epochs of training on every pass's loss and
3000 on the last's (their code's defaults). ``--deepnade-steps 5`` is that model
(``DeepNADE(steps=5)``; ``--deepnade-last-after E`` switches to the last pass's loss
after epoch E); the same table's figure for the one-pass model over 128 orderings,
"EoNADE 2hl", is 85.10, printed as ``deepnade_same_model_paper_nll`` for
``--deepnade-steps`` 1 (and 84.68 for 5). On a CPU ``--valid-size`` (valid images that
select the epoch), ``--train-scored`` (train images scored beside test) and
``--test-size`` (test images scored, a random subset: the first 1000 of the test file
hold 133 pixels on average against 104 over all 10,000; all by default) keep the scoring
affordable: one ordering costs D passes of the upper layers per image, D k whole
passes with k steps.

``--checkpoint DIR`` saves each model's fit to ``DIR/NAME.ckpt`` (atomically) at
every epoch's end, with the bench's own state: the best epoch so far and its weights,
the patience count and the minutes spent. Running the same command again resumes it
where it stopped (``--max-minutes`` is then this run's budget, and
``{name}_train_minutes`` counts every run's), so a protocol of thousands of epochs can
be spread over several sessions; a finished run is scored again without training.

The last line printed is one JSON object of the figures; ratios are named *_ratio.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import time
from functools import partial
from pathlib import Path

import numpy as np
import torch
from torch.nn import functional as F

PAPER = {"fvsbn": 97.45, "nade": 88.86, "made": 88.40, "pixelcnn": 81.30, "deepnade": 84.68}
# Germain et al. 2015, Table 6: (hidden layers, several masks) -> test NLL; their code's
# "best result" command trains two layers of 8000 units under 32 masks
MADE_PAPER = {(1, False): 88.40, (2, False): 89.59, (1, True): 88.04, (2, True): 86.64}
# Raiko et al. 2014, Table 1, 128 orderings: "EoNADE 2hl" (one pass), "EoNADE-5 2hl"
DEEPNADE_SAME_MODEL_PAPER = {1: 85.10, 5: 84.68}


# --quick's networks, where the sizes are not given
QUICK_SIZES = {
    "nade_hidden": 100,
    "made_hidden": [200],
    "pixelcnn_channels": 8,
    "pixelcnn_layers": 3,
    "speed_pixelcnn": [8, 2],
    "deepnade_hidden": [100],
    "deepnade_orderings": 2,
}


def _paper(name, options) -> float:
    if name == "made":
        layers = min(len(options.made_hidden), 2)  # the paper has one and two layers
        return MADE_PAPER[layers, options.made_masks > 1]
    return PAPER[name]


def made_init(model, init: str):
    """``"orthogonal"`` is the start of Germain et al.'s MNIST runs (their code's
    ``Orthogonal``): every weight matrix, the direct connections' too, (semi-)orthogonal,
    the biases zero. ``"torch"`` keeps the model's own (PyTorch's default, direct
    connections at zero)."""
    if init == "orthogonal":
        with torch.no_grad():
            for layer in [*model.layers, *([model.direct] if model.config.direct else [])]:
                torch.nn.init.orthogonal_(layer.weight)
                if layer.bias is not None:
                    layer.bias.zero_()
    return model


def _models(options):
    from pyrogen.models import FVSBN, MADE, NADE, DeepNADE, PixelCNN

    return {
        "fvsbn": lambda: FVSBN(
            (784,), prior_scale=options.fvsbn_prior_scale, prior=options.fvsbn_prior
        ),
        "nade": lambda: NADE((784,), hidden=options.nade_hidden),
        "made": lambda: made_init(
            MADE(
                (784,),
                hidden=options.made_hidden,
                num_masks=options.made_masks,
                direct=options.made_direct,
            ),
            options.made_init,
        ),
        "pixelcnn": lambda: PixelCNN(
            (28, 28), channels=options.pixelcnn_channels, layers=options.pixelcnn_layers
        ),
        "deepnade": lambda: DeepNADE(
            (784,),
            hidden=options.deepnade_hidden,
            num_orderings=options.deepnade_orderings,
            data_order=options.deepnade_data_order,
            steps=options.deepnade_steps,
        ),
    }


def _select_ll(model, valid) -> float:
    """The validation log-likelihood that selects the epoch: a DeepNADE's under its
    first ordering alone (its ensemble costs a pass per ordering), else log_prob's."""
    from pyrogen.models import DeepNADE

    if isinstance(model, DeepNADE):
        return float(model.ordering_log_probs(valid, [0]).mean())
    return float(model.log_prob(valid).mean())


def _optimizer(options):
    """Adam (pyrogen's, one torch optimizer over every parameter) or Adagrad (MADE's
    paper code: lr 0.01), each with ``set_lr`` for the per-epoch decay."""
    import pyro

    from pyrogen.infer.svi import SharedAdam

    if options.optimizer == "adam":
        return SharedAdam(options.lr, weight_decay=options.weight_decay)

    class Adagrad(pyro.optim.PyroOptim):
        def set_lr(self, lr: float) -> None:
            self.pt_optim_args["lr"] = lr  # for parameters met later
            for optimizer in self.optim_objs.values():
                for group in optimizer.param_groups:
                    group["lr"] = lr

    return Adagrad(torch.optim.Adagrad, {"lr": options.lr, "weight_decay": options.weight_decay})


# options that shape a run beyond what pyrogen.fit's checkpoint records (the model's
# config, the optimizer and its arguments, the batch, the seed, the data): a checkpoint
# is resumed only under the values it was written with. --epochs and --max-minutes
# may change, to extend a run.
RUN_OPTIONS = (
    "lr_decay",
    "patience",
    "eval_every",
    "valid_size",
    "deepnade_last_after",
    "made_init",
)


class Selector:
    """The bench's callback at each epoch's end: the learning-rate schedule, NADE-k's
    switch to the last pass's loss, and the epoch kept by the validation
    log-likelihood, with a patience and a time budget. It is checkpointed with the run
    (``state_dict``/``load_state_dict``), so ``--checkpoint`` resumes all of it."""

    def __init__(self, name, model, optim, valid, options, steps_per_epoch):
        self.name, self.model, self.optim, self.valid = name, model, optim, valid
        self.options, self.steps_per_epoch = options, steps_per_epoch
        self.best = {"ll": -math.inf, "epoch": 0, "state": None}
        self.epoch, self.stale, self.minutes_before, self.resumed_epoch = 0, 0, 0.0, None
        self.began = time.perf_counter()  # this run's clock: --max-minutes is per run

    def schedule(self, epoch: int) -> None:
        options = self.options
        self.optim.set_lr(options.lr * options.lr_decay**epoch)
        if self.name == "deepnade" and options.deepnade_last_after is not None:
            if epoch >= options.deepnade_last_after:  # NADE-k's fine-tuning phase
                self.model.config.step_loss = "last"

    def minutes(self) -> float:
        """This run's minutes (what --max-minutes bounds)."""
        return (time.perf_counter() - self.began) / 60

    def total_minutes(self) -> float:
        """Every run's minutes, when resumed."""
        return self.minutes_before + self.minutes()

    def __call__(self, step: int, loss: float) -> bool:
        if step % self.steps_per_epoch:
            return False
        options, epoch = self.options, step // self.steps_per_epoch
        self.epoch = epoch
        self.schedule(epoch)
        out_of_time = options.max_minutes is not None and self.minutes() > options.max_minutes
        if epoch % options.eval_every and epoch != options.epochs and not out_of_time:
            return False
        ll = _select_ll(self.model, self.valid)
        minutes = self.total_minutes()
        print(
            f"{self.name} epoch {epoch:4d}  {minutes:6.1f} min  valid log-lik {ll:8.2f}", flush=True
        )
        if ll > self.best["ll"]:
            state = copy.deepcopy(self.model.state_dict())
            self.best.update(ll=ll, epoch=epoch, state=state)
            self.stale = 0
        else:
            self.stale += 1
        return out_of_time or self.stale >= options.patience

    def run_options(self) -> dict:
        return {key: getattr(self.options, key) for key in RUN_OPTIONS}

    def state_dict(self) -> dict:
        return {
            "best": self.best,
            "epoch": self.epoch,
            "stale": self.stale,
            "minutes": self.total_minutes(),
            "options": self.run_options(),
        }

    def load_state_dict(self, state: dict) -> None:
        saved = state.get("options", {})  # checkpoints of earlier versions lack them
        for key, value in self.run_options().items():
            if key in saved and saved[key] != value:
                flag = "--" + key.replace("_", "-")
                raise SystemExit(
                    f"{flag}: the checkpoint of {self.name} was written with {saved[key]}, "
                    f"this run has {value}; resume with its options or give another "
                    "--checkpoint directory"
                )
        self.best, self.stale, self.minutes_before = state["best"], state["stale"], state["minutes"]
        self.epoch = self.resumed_epoch = state["epoch"]
        self.schedule(self.epoch)

    def restore_best(self) -> None:
        if self.best["state"] is not None:
            self.model.load_state_dict(self.best["state"])


def fit_and_score(name, make, options, data) -> dict:
    import pyrogen

    train, valid, test = data
    valid = valid[: options.valid_size]
    if options.test_size is not None:  # a random subset: the test file is not shuffled
        pick = torch.randperm(len(test), generator=torch.Generator().manual_seed(options.seed))
        test = test[pick[: options.test_size]]
    torch.manual_seed(options.seed)
    model = make()
    steps_per_epoch = math.ceil(len(train) / options.batch_size)
    optim = _optimizer(options)
    select = Selector(name, model, optim, valid, options, steps_per_epoch)
    checkpoint = None
    if options.checkpoint is not None:  # one file per model; an existing one resumes
        checkpoint = Path(options.checkpoint) / f"{name}.ckpt"
    fit = pyrogen.fit(
        model,
        train,
        method="mle",
        optim=optim,
        batch_size=options.batch_size,
        num_epochs=options.epochs,
        callback=select,
        checkpoint=checkpoint,
        checkpoint_every=steps_per_epoch,
        progress=False,
        seed=options.seed,
        device=options.device,
    )
    minutes = select.total_minutes()
    select.restore_best()
    extra = {}
    if name == "deepnade":  # each ordering once: the ensemble of the first m, m = 1, 2, 4..
        per_ordering = model.ordering_log_probs(test)
        count = len(per_ordering)
        sizes = sorted({*(2**i for i in range(count.bit_length())), count})
        by_size = {m: per_ordering[:m].logsumexp(0) - math.log(m) for m in sizes}
        per_image = -by_size[count]
        nll_by_size = {m: float(-v.mean()) for m, v in by_size.items()}
        extra["deepnade_test_nll_one_ordering"] = nll_by_size[1]  # the first alone
        extra["deepnade_test_nll_each_ordering"] = [float(-v.mean()) for v in per_ordering]
        extra["deepnade_test_nll_by_orderings"] = nll_by_size
        extra["deepnade_orderings"] = count
        extra["deepnade_k"] = options.deepnade_steps  # passes per conditional
        same = DEEPNADE_SAME_MODEL_PAPER.get(options.deepnade_steps)
        if same is not None:  # 128 orderings there, --deepnade-orderings here
            extra["deepnade_same_model_paper_nll"] = same
    else:
        per_image = -model.log_prob(test)
    nll = float(per_image.mean())
    se = float(per_image.std() / math.sqrt(len(per_image)))  # over the test images
    train_nll = -float(model.log_prob(train[: options.train_scored]).mean())  # the overfit
    return {
        **extra,
        f"{name}_test_nll": nll,
        f"{name}_test_nll_se": se,
        f"{name}_train_nll": train_nll,
        f"{name}_paper_nll": _paper(name, options),
        f"{name}_nll_vs_paper_ratio": nll / _paper(name, options),
        f"{name}_test_images": len(per_image),
        f"{name}_best_epoch": select.best["epoch"],
        f"{name}_train_minutes": minutes,  # every run's, when resumed
        f"{name}_resumed_from_epoch": select.resumed_epoch,
        f"{name}_steps": fit.num_steps,
    }


def nade_speed(options, train) -> dict:
    """pyrogen's NADE training steps and sampler against hand-written PyTorch."""
    import pyro
    from pyrogen.models import NADE

    import pyrogen

    steps = 5 if options.quick else options.nade_steps
    x = train[: steps * options.batch_size]
    torch.manual_seed(0)
    template = NADE((784,), hidden=options.nade_hidden)

    def by_hand(model):
        optimizer = torch.optim.Adam(model.parameters(), lr=options.lr)
        began = time.perf_counter()
        logits_of = _hand_logits("nade", model)
        for batch in x.split(options.batch_size):
            logits = logits_of(batch)
            loss = F.binary_cross_entropy_with_logits(logits, batch, reduction="none")
            loss = loss.sum(-1).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        return time.perf_counter() - began

    def through_pyrogen(model):
        pyro.clear_param_store()
        began = time.perf_counter()
        pyrogen.fit(model, x, method="mle", lr=options.lr, batch_size=options.batch_size,
                    num_epochs=1, progress=False)  # fmt: skip
        return time.perf_counter() - began

    by_hand(copy.deepcopy(template))  # warm-up
    times = {"torch": [], "pyrogen": []}
    for _ in range(options.repeats):
        times["torch"].append(by_hand(copy.deepcopy(template)))
        times["pyrogen"].append(through_pyrogen(copy.deepcopy(template)))

    def sample_by_hand(model, n):
        with torch.no_grad():
            a = model.c.expand(n, -1).clone()
            out = torch.empty(n, 784)
            for d in range(784):
                p = torch.sigmoid(torch.sigmoid(a) @ model.V[d] + model.b[d])
                out[:, d] = torch.bernoulli(p)
                a += out[:, d : d + 1] * model.W[:, d]
        return out

    n = 10 if options.quick else 100
    began = time.perf_counter()
    template.sample(n)
    ours = time.perf_counter() - began
    began = time.perf_counter()
    sample_by_hand(template, n)
    theirs = time.perf_counter() - began
    train_torch, train_ours = np.median(times["torch"]), np.median(times["pyrogen"])
    return {
        "nade_train_steps": steps,
        "nade_train_seconds": float(train_ours),
        "nade_train_torch_seconds": float(train_torch),
        "nade_train_time_ratio": float(train_ours / train_torch),
        "nade_sample_images": n,
        "nade_sample_seconds": ours,
        "nade_sample_torch_seconds": theirs,
        "nade_sample_time_ratio": ours / theirs,
    }


def _hand_logits(name, model):
    """The model's network written out in plain PyTorch from its weights: flat (N, 784)
    binary images to the 784 conditional logits (the gated PixelCNN only). Masks are
    applied at each call, as a masked layer's forward does."""
    if name == "fvsbn":
        return lambda x: F.linear(x, model.weight * model.mask, model.bias)
    if name == "nade":

        def nade(x):
            contributions = x[:, :, None] * model.W.T
            h = torch.sigmoid(model.c + contributions.cumsum(1) - contributions)
            return (h * model.V).sum(-1) + model.b

        return nade
    if name == "made":

        def made(x):
            weights = [(layer.weight * layer.mask, layer.bias) for layer in model.layers]
            direct = model.direct.weight * model.direct.mask if model.config.direct else None
            h = x
            for i, (weight, bias) in enumerate(weights):
                h = F.linear(h, weight, bias)
                h = torch.relu(h) if i < len(weights) - 1 else h
            return h if direct is None else h + F.linear(x, direct)

        return made

    def gated(a):
        a, b = a.chunk(2, 1)
        return torch.tanh(a) * torch.sigmoid(b)

    def conv(module, x):
        return F.conv2d(x, module.weight, module.bias)

    def pixelcnn(x):
        v = h = x.reshape(len(x), 1, 28, 28)
        for layer in model.stack:
            k = layer.half
            v_pre = conv(layer.vertical, F.pad(v, (k, k, k, 0)))
            h_pre = conv(layer.horizontal, F.pad(h, (k, 0, 0, 0)))
            if layer.first:  # the pixel itself and its row are not seen
                v_pre = F.pad(v_pre, (0, 0, 1, 0))[:, :, :-1]
                h_pre = F.pad(h_pre, (1, 0))[..., :-1]
            h_out = conv(
                layer.horizontal_out, gated(h_pre + conv(layer.vertical_to_horizontal, v_pre))
            )
            v, h = gated(v_pre), h_out if layer.first else h + h_out
        out = conv(model.out[3], torch.relu(conv(model.out[1], torch.relu(h))))
        return out.reshape(len(x), -1)

    return pixelcnn


def _loglik_by_hand(logits, x):
    with torch.no_grad():
        return -F.binary_cross_entropy_with_logits(logits(x), x, reduction="none").sum(-1)


def _sample_by_hand(name, model, logits, n):
    """n draws in raster order: a pass of the whole network per pixel (FVSBN: its one
    row of weights per pixel), the way such a sampler is usually written."""
    x = torch.zeros(n, 784)
    with torch.no_grad():
        for d in range(784):
            if name == "fvsbn":
                logit = x @ (model.weight[d] * model.mask[d]) + model.bias[d]
            else:
                logit = logits(x)[:, d]
            x[:, d] = torch.bernoulli(torch.sigmoid(logit))
    return x


def ar_speed(options, test) -> dict:
    """Teacher-forced log-likelihood throughput (images/s) of each model's ``log_prob``
    and the time to draw ``--sample-images`` images with its ``sample``, against the
    same network written out in plain PyTorch (:func:`_hand_logits`) in the same run,
    with the same (untrained) weights; the two log-likelihoods must agree. Each side's
    figure is the median over ``--repeats`` interleaved rounds of the mean time of
    enough calls to fill about 0.2 s. NADE's
    sampler is timed by :func:`nade_speed`. The PixelCNN here is ``--speed-pixelcnn``
    (channels, layers): on 2 CPU cores one pass of the 64-channel, 7-layer one over
    100 images takes seconds, so 784 passes take most of an hour."""
    from pyrogen.models import MADE, PixelCNN

    makers = _models(options)
    channels, layers = options.speed_pixelcnn
    makers["pixelcnn"] = lambda: PixelCNN((28, 28), channels=channels, layers=layers)
    hidden, direct = options.made_hidden, options.made_direct
    makers["made"] = lambda: MADE((784,), hidden=hidden, direct=direct)  # one mask
    x = test[: 100 if options.quick else 1000]
    n = 2 if options.quick else options.sample_images
    figures = {"loglik_images": len(x), "sample_images": n}
    for name in ("fvsbn", "nade", "made", "pixelcnn"):
        torch.manual_seed(options.seed)
        model = makers[name]().eval()
        with torch.no_grad():  # untrained weights, not zeros (FVSBN and NADE start at 0)
            for parameter in model.parameters():
                parameter.add_(0.05 * torch.randn_like(parameter))
        hand = _hand_logits(name, model)

        began = time.perf_counter()
        ours, theirs = model.log_prob(x), _loglik_by_hand(hand, x)  # also the warm-up
        assert torch.allclose(ours, theirs, atol=1e-3, rtol=1e-5), name
        # a round times enough calls to last about 0.2 s (FVSBN's call is 20 ms: one
        # call per round left the ratio at the mercy of the scheduler)
        calls = max(1, math.ceil(0.4 / (time.perf_counter() - began)))
        times = {"pyrogen": [], "torch": []}
        for _ in range(options.repeats):  # interleaved
            for side, run in (
                ("pyrogen", model.log_prob),
                ("torch", partial(_loglik_by_hand, hand)),
            ):
                began = time.perf_counter()
                for _ in range(calls):
                    run(x)
                times[side].append((time.perf_counter() - began) / calls)
        seconds = {side: float(np.median(t)) for side, t in times.items()}
        figures[f"{name}_loglik_images_per_s"] = len(x) / seconds["pyrogen"]
        figures[f"{name}_loglik_torch_images_per_s"] = len(x) / seconds["torch"]
        figures[f"{name}_loglik_time_ratio"] = seconds["pyrogen"] / seconds["torch"]
        figures[f"{name}_loglik_max_abs_difference"] = float((ours - theirs).abs().max())
        line = (
            f"{name}: log-likelihood {len(x) / seconds['pyrogen']:.0f} images/s, PyTorch "
            f"{len(x) / seconds['torch']:.0f} (time ratio "
            f"{seconds['pyrogen'] / seconds['torch']:.3f})"
        )
        if name != "nade":  # NADE's sampler: nade_speed
            began = time.perf_counter()
            model.sample(n)
            ours_s = figures[f"{name}_sample_seconds"] = time.perf_counter() - began
            began = time.perf_counter()
            _sample_by_hand(name, model, hand, n)
            theirs_s = figures[f"{name}_sample_torch_seconds"] = time.perf_counter() - began
            figures[f"{name}_sample_time_ratio"] = ours_s / theirs_s
            line += f"; sampling {n}: {ours_s:.2f} s, PyTorch {theirs_s:.2f} s"
        print(line, flush=True)
    figures["speed_pixelcnn"] = [channels, layers]
    return figures


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a small run, under a minute")
    parser.add_argument(
        "--models", nargs="+", default=["fvsbn", "nade", "made", "pixelcnn", "deepnade"]
    )
    parser.add_argument("--epochs", type=int, default=None, help="default 200 (--quick: 1)")
    parser.add_argument("--max-minutes", type=float, default=None, help="per model")
    parser.add_argument("--eval-every", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--lr-decay", type=float, default=1.0, help="per epoch")
    parser.add_argument("--optimizer", choices=["adam", "adagrad"], default="adam")
    parser.add_argument(
        "--weight-decay", type=float, default=0.0, help="L2 penalty added to the gradient"
    )
    parser.add_argument(
        "--patience", type=int, default=10**9, help="checks without gain before stopping"
    )
    parser.add_argument(
        "--fvsbn-prior-scale", type=float, default=None, help="sd of FVSBN's weight prior"
    )
    parser.add_argument("--fvsbn-prior", choices=["normal", "laplace"], default="normal")
    parser.add_argument("--nade-hidden", type=int, default=500)
    parser.add_argument(
        "--made-hidden", type=int, nargs="+", default=[500], help="layer widths (paper: 8000)"
    )
    parser.add_argument(
        "--made-direct", action="store_true", help="direct input-to-output connections"
    )
    parser.add_argument(
        "--made-init",
        choices=["torch", "orthogonal"],
        default="torch",
        help="MADE's start: PyTorch's default, or the paper code's orthogonal weights",
    )
    parser.add_argument(
        "--made-masks",
        type=int,
        default=1,
        help="mask sets: trained one per step, scored as an ensemble",
    )
    parser.add_argument("--deepnade-hidden", type=int, nargs="+", default=[500, 500])
    parser.add_argument(
        "--deepnade-orderings", type=int, default=8, help="orderings of the test ensemble"
    )
    parser.add_argument(
        "--deepnade-data-order",
        action="store_true",
        help="the first ordering (which selects the epoch) is the data's raster order",
    )
    parser.add_argument(
        "--deepnade-steps", type=int, default=1, help="NADE-k's k: passes per conditional"
    )
    parser.add_argument(
        "--deepnade-last-after",
        type=int,
        default=None,
        metavar="EPOCH",
        help="train on the last pass's loss only after this epoch (NADE-k's fine-tuning)",
    )
    parser.add_argument(
        "--valid-size", type=int, default=None, help="valid images that select the epoch"
    )
    parser.add_argument(
        "--test-size",
        type=int,
        default=None,
        help="test images scored, drawn at random with --seed (default all)",
    )
    parser.add_argument(
        "--train-scored", type=int, default=10000, help="train images scored beside test"
    )
    parser.add_argument("--pixelcnn-channels", type=int, default=64)
    parser.add_argument("--pixelcnn-layers", type=int, default=7)
    parser.add_argument("--device", default=None, help="e.g. cuda (the models' fits)")
    parser.add_argument(
        "--checkpoint",
        default=None,
        metavar="DIR",
        help="checkpoint each model's fit here every epoch (DIR/NAME.ckpt); a run given "
        "the same options resumes it, its best epoch, schedule and patience included",
    )
    parser.add_argument("--no-speed", action="store_true", help="skip the timings")
    parser.add_argument("--speed-only", action="store_true", help="only the timings")
    parser.add_argument(
        "--nade-steps", type=int, default=100, help="NADE training steps timed per side"
    )
    parser.add_argument(
        "--sample-images", type=int, default=100, help="images drawn in the sampling timings"
    )
    parser.add_argument(
        "--speed-pixelcnn",
        type=int,
        nargs=2,
        default=(16, 3),
        metavar=("CHANNELS", "LAYERS"),
        help="the PixelCNN of the timings",
    )
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    options = parser.parse_args(argv)
    if options.epochs is not None and options.epochs < 1:
        parser.error(f"--epochs: must be at least 1, got {options.epochs}")
    if not options.lr_decay > 0:
        parser.error(f"--lr-decay: must be positive, got {options.lr_decay}")
    if not options.weight_decay >= 0:
        parser.error(f"--weight-decay: must be at least 0, got {options.weight_decay}")
    if options.patience < 1:
        parser.error(f"--patience: must be at least 1, got {options.patience}")
    if min(options.made_hidden) < 1:
        parser.error(f"--made-hidden: widths must be positive, got {options.made_hidden}")
    if options.deepnade_orderings < 1 or min(options.deepnade_hidden) < 1:
        parser.error("--deepnade-orderings and --deepnade-hidden: must be positive")
    if options.deepnade_steps < 1:
        parser.error(f"--deepnade-steps: must be at least 1, got {options.deepnade_steps}")
    if options.deepnade_last_after is not None and options.deepnade_last_after < 0:
        parser.error(
            f"--deepnade-last-after: must be at least 0, got {options.deepnade_last_after}"
        )
    if options.checkpoint is not None and Path(options.checkpoint).is_file():
        parser.error(f"--checkpoint: must be a directory, got the file {options.checkpoint}")
    if options.test_size is not None and options.test_size < 1:
        parser.error(f"--test-size: must be at least 1, got {options.test_size}")
    if options.valid_size is not None and options.valid_size < 1:
        parser.error(f"--valid-size: must be at least 1, got {options.valid_size}")
    if options.train_scored < 1:
        parser.error(f"--train-scored: must be at least 1, got {options.train_scored}")
    if options.made_masks < 1:
        parser.error(f"--made-masks: must be at least 1, got {options.made_masks}")
    if options.speed_only and options.no_speed:
        parser.error("--speed-only and --no-speed: choose one")
    if options.nade_steps < 1:
        parser.error(f"--nade-steps: must be at least 1, got {options.nade_steps}")
    if options.sample_images < 1:
        parser.error(f"--sample-images: must be at least 1, got {options.sample_images}")
    if min(options.speed_pixelcnn) < 1:
        parser.error(f"--speed-pixelcnn: must be positive, got {options.speed_pixelcnn}")
    if options.threads:
        torch.set_num_threads(options.threads)
    import pyrogen

    sizes = (1000, 200, 200) if options.quick else None
    splits = pyrogen.data.mnist_splits(sizes, seed=options.seed)
    if options.quick:  # a smoke run of every path: small networks (unless given), one epoch
        options.eval_every, options.repeats = 1, 1
        for key, small in QUICK_SIZES.items():
            if getattr(options, key) == parser.get_default(key):
                setattr(options, key, small)
    if options.epochs is None:
        options.epochs = 1 if options.quick else 200
    figures = {"quick": options.quick, "threads": torch.get_num_threads()}
    makers = _models(options)
    for name in [] if options.speed_only else options.models:
        figures.update(fit_and_score(name, makers[name], options, splits))
        print(
            f"{name}: test NLL {figures[f'{name}_test_nll']:.2f} "
            f"(± {figures[f'{name}_test_nll_se']:.2f}) nats, paper {_paper(name, options):.2f} "
            f"(ratio {figures[f'{name}_nll_vs_paper_ratio']:.3f})"
        )
    figures["device"] = str(options.device or "cpu")
    if options.no_speed:
        print(json.dumps(figures))
        return
    figures.update(nade_speed(options, splits[0]))
    f = figures
    print(
        f"NADE training: pyrogen {f['nade_train_seconds']:.2f} s, PyTorch "
        f"{f['nade_train_torch_seconds']:.2f} s (ratio {f['nade_train_time_ratio']:.3f}); "
        f"sampling {f['nade_sample_images']} images: pyrogen {f['nade_sample_seconds']:.2f} s, "
        f"hand-written {f['nade_sample_torch_seconds']:.2f} s"
    )
    figures.update(ar_speed(options, splits[2]))
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
