"""Peak memory of log p(x) against the number of examples: chunked evaluation keeps it
bounded.

Each cell runs ``model.log_prob(x)`` on N binary 28x28 images (random pixels: memory
does not depend on the values) in a fresh process and reports its peak resident memory
above what the process held before the call (the data included), beside what one
unchunked pass would hold in its largest tensors. NADE's hidden states alone are
N x 784 x 500 numbers: 15.7 GB of float32 at N = 10,000.

    python bench/memory.py            # N = 1,000 and 10,000; NADE (500 hidden), MADE
                                      # (500), PixelCNN (16 x 5), VAE (K = 100)
    python bench/memory.py --quick    # N = 200 and 2,000, smaller networks

The last line printed is one JSON object of the figures; ``*_peak_growth_ratio`` is the
peak at the largest N over the peak at the smallest (1 when memory is bounded, N_max /
N_min when it grows with N).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

MODELS = ("nade", "made", "pixelcnn", "vae")


def build(name: str, quick: bool):
    from pyrogen.models import MADE, NADE, VAE, PixelCNN

    if name == "nade":
        return NADE((784,), hidden=100 if quick else 500), 784 * (100 if quick else 500)
    if name == "made":
        return MADE((784,), hidden=(100 if quick else 500,)), 4 * 784
    if name == "pixelcnn":  # 16 channels x 5 layers keeps the CPU run to minutes
        channels = 8 if quick else 16
        return PixelCNN((28, 28), channels=channels, layers=3 if quick else 5), 4 * 784 * channels
    return VAE((784,), latent_dim=20, hidden=(200,)), 100 * (784 + 400)  # K = 100 draws


def child(name: str, n: int, quick: bool) -> None:
    import torch
    from _peak import peak_above_baseline

    torch.set_num_threads(1)
    torch.manual_seed(0)
    model, per_example = build(name, quick)
    model.eval()
    x = (torch.rand(n, 784) < 0.13).float()
    options = {"num_samples": 100} if name == "vae" else {}
    model.log_prob(x[:2], **options)  # first-call costs stay out of the figure
    log_p, seconds, peak = peak_above_baseline(lambda: model.log_prob(x, **options))
    one_pass = n * per_example * 4 / 2**20  # float32 numbers of the largest tensors
    print(json.dumps({"seconds": seconds, "peak_mib": peak, "one_pass_mib": one_pass}))
    assert log_p.shape == (n,) and bool(torch.isfinite(log_p).all())


def measure(name: str, n: int, quick: bool) -> dict:
    command = [sys.executable, __file__, "--child", name, str(n)] + (["--quick"] if quick else [])
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, under a minute")
    parser.add_argument("--models", nargs="+", choices=MODELS, default=list(MODELS))
    parser.add_argument("--sizes", nargs="+", type=int, help="N (default 1,000 and 10,000)")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], int(args.child[1]), args.quick)
        return
    sizes = args.sizes or ([200, 2000] if args.quick else [1000, 10000])
    print(f"{'model':<10}{'N':>8}{'seconds':>10}{'peak MiB':>10}{'one pass MiB':>14}")
    figures = {"quick": args.quick, "sizes": sizes}
    for name in args.models:
        peaks = []
        for n in sizes:
            cell = measure(name, n, args.quick)
            peaks.append(cell["peak_mib"])
            figures[f"{name}_{n}"] = cell
            print(
                f"{name:<10}{n:>8}{cell['seconds']:>10.2f}{cell['peak_mib']:>10.1f}"
                f"{cell['one_pass_mib']:>14.1f}"
            )
        figures[f"{name}_peak_growth_ratio"] = peaks[-1] / max(peaks[0], 1.0)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
