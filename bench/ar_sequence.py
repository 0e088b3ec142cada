"""Sequence decoders (LSTM, transformer, WaveNet) on real text and a real time series:
quality against simple baselines, speed against hand-written PyTorch.

1. Text. Character-level LSTM and GPT-style transformer on the Python documentation's
   help topics (``pyrogen.data.characters``: contiguous 90/5/5 split, sequences of
   ``--length`` characters), fitted by ``pyrogen.fit(model, x, method="mle", ...)``,
   the epoch kept by the valid likelihood; test bits per character beside a bigram
   and a trigram model (counts with add-1/2 smoothing on the same training text) and
   lzma (the extra compressed size of the test text after the training text, in
   bits per character): ``*_bpc_vs_trigram_ratio`` (below 1: better than trigram).
2. Time series. Yearly sunspot numbers (square root, standardized on 1700-1919):
   WaveNet with Gaussian-mixture conditionals on 16-year windows of 1700-1919,
   scored by the one-step-ahead predictive log density of each year 1920-2008 given
   the 15 before it, against the Gaussian AR(9) fitted by least squares on the same
   windows (``sunspots_wavenet_minus_ar9_nats``: above 0, WaveNet predicts better).
3. Speed. A training step (forward, backward, Adam) through pyrogen's engine against a
   hand-written PyTorch loop over the same network and batches (cross-entropy on its
   logits): ``lstm_train_time_ratio``, ``transformer_train_time_ratio``; drawing
   ``--sample-n`` sequences: pyrogen's LSTM sampler against a hand-written loop that
   carries the state (``lstm_sample_time_ratio``), the transformer with its key/value
   cache against recomputing the prefix (``transformer_cache_speedup_ratio``, above 1:
   the cache is faster) and Fast WaveNet against recomputing the prefix
   (``wavenet_fast_speedup_ratio``). Each pair is timed in ``--repeats`` interleaved
   rounds (the order alternating) and compared by medians.

    python bench/ar_sequence.py --quick            # under a minute
    python bench/ar_sequence.py --max-minutes 15   # per language model
    python bench/ar_sequence.py --speed-only       # the timings alone (untrained weights)

The last line printed is one JSON object of the figures; ratios are named *_ratio.
"""

from __future__ import annotations

import argparse
import copy
import json
import lzma
import math
import time

import numpy as np
import torch
from torch.nn import functional as F


def ngram_bits(train: np.ndarray, test: np.ndarray, order: int, size: int) -> float:
    """Bits per character of an order-n count model with add-1/2 smoothing, each
    sequence starting from a start symbol (as the neural models do)."""
    from collections import Counter

    def grams(rows):
        padded = np.c_[np.full((len(rows), order - 1), size), rows]
        for i in range(order - 1, padded.shape[1]):
            yield from map(tuple, padded[:, i - order + 1 : i + 1])

    counts = Counter(grams(train))
    contexts = Counter()
    for gram, c in counts.items():
        contexts[gram[:-1]] += c
    bits = [math.log2((counts[g] + 0.5) / (contexts[g[:-1]] + 0.5 * size)) for g in grams(test)]
    return -float(np.mean(bits))


def lzma_bits(text, train_codes, test_codes) -> float:
    train = "".join(text.decode(train_codes)).encode()
    both = train + "".join(text.decode(test_codes)).encode()
    extra = len(lzma.compress(both, preset=9)) - len(lzma.compress(train, preset=9))
    return 8.0 * extra / test_codes.size


def fit_language_model(name, model, options, text, train) -> dict:
    import pyrogen

    valid, test = text.valid, text.test
    steps_per_epoch = math.ceil(len(train) / options.batch_size)
    best = {"bits": math.inf, "epoch": 0, "state": None}
    began = time.perf_counter()

    def callback(step, loss):
        if step % steps_per_epoch:
            return False
        bits = float(model.bits_per_dim(valid).mean())
        minutes = (time.perf_counter() - began) / 60
        print(f"{name} epoch {step // steps_per_epoch:3d} {minutes:5.1f} min  valid {bits:.3f} bpc")
        if bits < best["bits"]:
            best.update(bits=bits, epoch=step // steps_per_epoch)
            best["state"] = copy.deepcopy(model.state_dict())
        return options.max_minutes is not None and minutes > options.max_minutes

    pyrogen.fit(model, train, method="mle", lr=options.lr, batch_size=options.batch_size,
                num_epochs=options.epochs, callback=callback, progress=False,
                seed=options.seed)  # fmt: skip
    minutes = (time.perf_counter() - began) / 60
    model.load_state_dict(best["state"])
    sample = text.decode(model.sample(1))[0]
    print(f"{name} sample: {sample!r}")
    return {
        f"{name}_test_bpc": float(model.bits_per_dim(test).mean()),
        f"{name}_best_epoch": best["epoch"],
        f"{name}_train_minutes": minutes,
    }


def sunspots(options) -> dict:
    from pyrogen.models import WaveNet

    import pyrogen

    length = 16
    train, test = map(torch.tensor, pyrogen.data.sunspot_windows(length, train_years=220))
    # AR(9) by least squares on the training windows' last ten values
    lags = 9
    design = torch.cat([train[:, -1 - lags : -1], torch.ones(len(train), 1)], 1)
    coef = torch.linalg.lstsq(design, train[:, -1:]).solution
    sd = (train[:, -1:] - design @ coef).std()
    test_design = torch.cat([test[:, -1 - lags : -1], torch.ones(len(test), 1)], 1)
    ar = torch.distributions.Normal((test_design @ coef)[:, 0], sd).log_prob(test[:, -1])
    torch.manual_seed(options.seed)
    model = WaveNet((length,), channels=16, likelihood="normal_mixture", components=3).double()
    pyrogen.fit(model, train, method="mle", lr=3e-3, batch_size=32, num_epochs=10,
                progress=False, seed=options.seed)  # fmt: skip
    with torch.no_grad():
        wavenet = model.conditionals(test).log_prob(test)[:, -1]
    return {
        "sunspots_test_years": len(test),
        "sunspots_ar9_nats": float(ar.mean()),
        "sunspots_wavenet_nats": float(wavenet.mean()),
        "sunspots_wavenet_minus_ar9_nats": float(wavenet.mean() - ar.mean()),
    }


def _median_times(first, second, repeats) -> tuple[float, float]:
    """Median seconds of two runs over ``repeats`` interleaved rounds (after one warm-up
    of each), the order alternating from round to round, so that this machine's drift
    over a minute falls on both alike."""
    first(), second()  # warm-up
    times = ([], [])
    for r in range(repeats):
        order = (0, 1) if r % 2 == 0 else (1, 0)
        for i in order:
            began = time.perf_counter()
            (first, second)[i]()
            times[i].append(time.perf_counter() - began)
    return float(np.median(times[0])), float(np.median(times[1]))


def train_speed(name, template, x, options) -> dict:
    """pyrogen.fit steps against a hand-written loop over the same network."""
    import pyro

    import pyrogen

    def by_hand():
        model = copy.deepcopy(template).train()
        optimizer = torch.optim.Adam(model.parameters(), lr=options.lr)
        for batch in x.split(options.batch_size):
            logits = model.head.linear(model.features(model.inputs(batch)))  # (B, T, V)
            loss = F.cross_entropy(logits.transpose(1, 2), batch.long(), reduction="none")
            loss = loss.sum(-1).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

    def through_pyrogen():
        pyro.clear_param_store()
        pyrogen.fit(copy.deepcopy(template), x, method="mle", lr=options.lr,
                    batch_size=options.batch_size, num_epochs=1, progress=False)  # fmt: skip

    ours, theirs = _median_times(through_pyrogen, by_hand, options.repeats)
    return {
        f"{name}_train_seconds": ours,
        f"{name}_train_torch_seconds": theirs,
        f"{name}_train_time_ratio": ours / theirs,
    }


def sample_speed(models, options) -> dict:
    n = options.sample_n
    lstm, transformer, wavenet = models

    def lstm_by_hand():
        with torch.no_grad():
            inputs, state = lstm.inputs.start.expand(n, -1), None
            for _ in range(lstm.dim):
                out, state = lstm.rnn(inputs[:, None], state)
                probs = F.softmax(lstm.head.linear(out[:, 0]), -1)
                inputs = lstm.inputs.embed(torch.multinomial(probs, 1)[:, 0])

    figures = {"sample_n": n}
    ours, theirs = _median_times(lambda: lstm.sample(n), lstm_by_hand, options.repeats)
    figures.update(lstm_sample_seconds=ours, lstm_sample_torch_seconds=theirs)
    figures["lstm_sample_time_ratio"] = ours / theirs
    cached, uncached = _median_times(
        lambda: transformer.sample(n), lambda: transformer.sample(n, cache=False), options.repeats
    )
    figures.update(transformer_sample_cached_seconds=cached)
    figures.update(transformer_sample_uncached_seconds=uncached)
    figures["transformer_cache_speedup_ratio"] = uncached / cached
    fast, slow = _median_times(
        lambda: wavenet.sample(n), lambda: wavenet.sample(n, cache=False), options.repeats
    )
    figures.update(wavenet_sample_fast_seconds=fast, wavenet_sample_recompute_seconds=slow)
    figures["wavenet_fast_speedup_ratio"] = slow / fast
    return figures


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="a small run, under a minute")
    parser.add_argument("--length", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--max-minutes", type=float, default=None, help="per language model")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=2e-3)
    parser.add_argument("--hidden", type=int, default=256, help="LSTM state size")
    parser.add_argument("--dim", type=int, default=128, help="transformer width")
    parser.add_argument("--layers", type=int, default=4, help="transformer blocks")
    parser.add_argument("--sample-n", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--speed-only",
        action="store_true",
        help="only the training and sampling timings (untrained weights; no quality figures)",
    )
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    options = parser.parse_args(argv)
    if options.threads:
        torch.set_num_threads(options.threads)
    from pyrogen.models import RNNDecoder, TransformerDecoder, WaveNet

    import pyrogen

    text = pyrogen.data.characters(options.length)
    train = text.train
    if options.quick:
        options.length, options.epochs, options.repeats, options.sample_n = 64, 1, 1, 10
        options.hidden, options.dim, options.layers = 64, 32, 2
        text = pyrogen.data.characters(options.length)
        train, text.valid, text.test = text.train[:600], text.valid[:50], text.test[:50]
    size = len(text.alphabet)
    figures = {"quick": options.quick, "speed_only": options.speed_only}
    figures["threads"] = torch.get_num_threads()
    figures["test_characters"] = int(text.test.size)
    figures["bigram_test_bpc"] = ngram_bits(train, text.test, 2, size)
    figures["trigram_test_bpc"] = ngram_bits(train, text.test, 3, size)
    figures["lzma_test_bpc"] = lzma_bits(text, train, text.test)
    options_by_model = {"likelihood": "categorical", "num_classes": size}
    torch.manual_seed(options.seed)
    lstm = RNNDecoder((options.length,), hidden=options.hidden, **options_by_model)
    transformer = TransformerDecoder(
        (options.length,), dim=options.dim, layers=options.layers, **options_by_model
    )
    # the timings below do not depend on the weights: --speed-only skips the training
    if not options.speed_only:
        for name, model in (("lstm", lstm), ("transformer", transformer)):
            figures.update(fit_language_model(name, model, options, text, train))
            figures[f"{name}_bpc_vs_trigram_ratio"] = (
                figures[f"{name}_test_bpc"] / figures["trigram_test_bpc"]
            )
            print(
                f"{name}: test {figures[f'{name}_test_bpc']:.3f} bits/char; bigram "
                f"{figures['bigram_test_bpc']:.3f}, trigram {figures['trigram_test_bpc']:.3f}, "
                f"lzma {figures['lzma_test_bpc']:.3f}"
            )
        figures.update(sunspots(options))
        print(
            f"sunspots 1920-2008, one-step-ahead log density per year: WaveNet "
            f"{figures['sunspots_wavenet_nats']:.3f}, AR(9) {figures['sunspots_ar9_nats']:.3f}"
        )
    x = torch.as_tensor(train[: 20 * options.batch_size], dtype=torch.float32)
    for name, model in (("lstm", lstm), ("transformer", transformer)):
        figures.update(train_speed(name, model, x, options))
        print(
            f"{name} training, {len(x)} sequences: pyrogen {figures[f'{name}_train_seconds']:.2f}"
            f" s, PyTorch {figures[f'{name}_train_torch_seconds']:.2f} s"
        )
    wavenet = WaveNet((options.length,), channels=32, likelihood="categorical", num_classes=size)
    figures.update(sample_speed((lstm.eval(), transformer.eval(), wavenet.eval()), options))
    f = figures
    print(
        f"sampling {f['sample_n']} sequences of {options.length}: LSTM "
        f"{f['lstm_sample_seconds']:.2f} s (hand-written "
        f"{f['lstm_sample_torch_seconds']:.2f} s); transformer cached "
        f"{f['transformer_sample_cached_seconds']:.2f} s, uncached "
        f"{f['transformer_sample_uncached_seconds']:.2f} s; WaveNet fast "
        f"{f['wavenet_sample_fast_seconds']:.2f} s, recomputed "
        f"{f['wavenet_sample_recompute_seconds']:.2f} s"
    )
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
