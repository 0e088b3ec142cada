"""Data sets: shipped defaults, local reference copies, and checked downloads.

Where a data set is looked for, in order:

1. the directory named by ``PYROGEN_DATA`` (same layout as the project's
   ``shared/data``: ``binarized_mnist.npz``, ``posteriordb/<name>/...``);
2. a ``shared/data`` directory beside the working directory or the source tree;
3. the download cache (``PYROGEN_CACHE``, default ``~/.cache/pyrogen``), and for
   Fashion-MNIST the folder of Debian's ``dataset-fashion-mnist`` package;
4. the canonical source on the network, downloaded into the cache and checked
   against a SHA-256 checksum before it is used. A failed or mismatched download
   leaves nothing behind.

Old Faithful ships inside the package and needs none of this.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import os
import urllib.request
import zipfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from pyrogen.checkpoint import atomic_write

__all__ = [
    "CharacterData",
    "ChecksumError",
    "characters",
    "sliding_windows",
    "sunspot_windows",
    "dequantized_digits",
    "dequantize",
    "fashion_splits",
    "read_idx",
    "mnist_splits",
    "PosteriorDB",
    "cache_dir",
    "fetch",
    "list_datasets",
    "load",
    "load_csv",
    "load_posteriordb",
    "local_data_dirs",
]

POSTERIORDB_URL = "https://raw.githubusercontent.com/stan-dev/posteriordb/master/posterior_database"
MNIST_URL = "http://www.cs.toronto.edu/~larocheh/public/datasets/binarized_mnist"
FASHION_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com"
# Debian's dataset-fashion-mnist package installs the same four files here.
FASHION_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_SHA256 = {
    f"{part}-idx{dims}-ubyte.gz": digest
    for part, dims, digest in [
        ("train-images", 3, "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7"),
        ("train-labels", 1, "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056"),
        ("t10k-images", 3, "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa"),
        ("t10k-labels", 1, "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05"),
    ]
}

# SHA-256 of the JSON inside each posteriordb zip (the zip bytes themselves depend
# on the compressor, the JSON does not).
POSTERIORDB_SHA256 = {
    "arK": {
        "data": "8c561dcceb3e74654097f25f07277cd5448fc175f4a2589962bb817a54e4e742",
        "reference_draws": "178e3dec859df0c629b50d12d4fc014ce2ce3fc55014d93a1f5f983c55e1a47c",
    },
    "hmm_example": {
        "data": "8fe2ad2a4ceb9f006694dced959f4fb8190277cfaadde2a281ebef92b6a36019",
        "reference_draws": "76cdf316c239555b30f146c1964b78a2504b604eccf58a930114305e445f98d9",
    },
    "low_dim_gauss_mix": {
        "data": "9adb76f51fed5426f26090ce18c2bf732aef7695aadb57fa12e11efc5f0d9efb",
        "reference_draws": "ca6bca2404eed9d11756796ef67938307cc6e4676d1bfe0ff1428a66ea96fd9e",
    },
}
# SHA-256 of each split's pixels packed with numpy.packbits(x, axis=1), uint8 (N, 98).
MNIST_SHA256 = {
    "train": "727146c35424b019f3e350e1e69faa05644a0abaf787e3f4e1a9632220a13906",
    "valid": "a256ac44ae26be720fad8616a05ed6ecfd1619930d9a208379bb2a4405df5b6d",
    "test": "9fcd8da6f0fdf09b2ba30fe63a0bb784042a0de82563172530229b983e294ff2",
}


class ChecksumError(OSError):
    """Downloaded bytes that do not match the expected SHA-256."""


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def cache_dir() -> Path:
    return Path(os.environ.get("PYROGEN_CACHE", Path.home() / ".cache" / "pyrogen"))


def local_data_dirs() -> list[Path]:
    """Directories holding reference copies, in the order they are searched."""
    candidates = []
    if os.environ.get("PYROGEN_DATA"):
        candidates.append(Path(os.environ["PYROGEN_DATA"]))
    candidates.append(Path.cwd().parent / "shared" / "data")
    candidates.append(Path.cwd() / "shared" / "data")
    candidates.append(Path(__file__).resolve().parents[2] / "shared" / "data")
    seen, out = set(), []
    for path in candidates:
        if path.is_dir() and path.resolve() not in seen:
            seen.add(path.resolve())
            out.append(path)
    return out


def _find_local(relative: str) -> Path | None:
    for root in local_data_dirs() + [cache_dir()]:
        if (root / relative).is_file():
            return root / relative
    return None


def fetch(url: str, expected_sha256: str | None, timeout: float = 60.0) -> bytes:
    """Download ``url`` and return its bytes after checking the checksum."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            data = response.read()
    except OSError as error:
        raise OSError(f"could not download {url}: {error}") from None
    if expected_sha256 is not None and sha256(data) != expected_sha256:
        raise ChecksumError(
            f"{url}: SHA-256 {sha256(data)} does not match the expected {expected_sha256}"
        )
    return data


def _zip_member(data: bytes) -> bytes:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = [n for n in archive.namelist() if not n.endswith("/")]
        if len(names) != 1:
            raise ValueError(f"expected one file in the archive, found {names}")
        return archive.read(names[0])


# -- Old Faithful -----------------------------------------------------------------------


def _old_faithful() -> np.ndarray:
    text = resources.files("pyrogen.datasets").joinpath("old_faithful.csv").read_text()
    rows = list(csv.reader(io.StringIO(text)))[1:]
    return np.array(rows, dtype=np.float64)


# -- binarized MNIST ----------------------------------------------------------------------


def amat_to_packed(text: bytes) -> np.ndarray:
    """Larochelle's ``.amat`` text (one image of 784 '0'/'1' a line) -> packed uint8."""
    digits = np.frombuffer(text, dtype=np.uint8)
    bits = digits[(digits == ord("0")) | (digits == ord("1"))] - ord("0")
    if bits.size % 784:
        raise ValueError(f"amat: {bits.size} pixels is not a whole number of 28x28 images")
    return np.packbits(bits.reshape(-1, 784), axis=1)


def _binarized_mnist(base_url: str | None = None) -> dict[str, np.ndarray]:
    path = _find_local("binarized_mnist.npz")
    if path is None:
        base_url = base_url or MNIST_URL
        splits = {}
        for split, digest in MNIST_SHA256.items():
            packed = amat_to_packed(fetch(f"{base_url}/binarized_mnist_{split}.amat", None))
            if sha256(np.ascontiguousarray(packed).tobytes()) != digest:
                raise ChecksumError(f"binarized_mnist_{split}: pixels do not match the reference")
            splits[split] = packed
        path = cache_dir() / "binarized_mnist.npz"
        atomic_write(path, lambda handle: np.savez_compressed(handle, **splits))
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        raise ValueError(
            f"binarized_mnist: {str(path)!r} is not a readable .npz ({error})"
        ) from None
    with archive:
        missing = sorted(set(MNIST_SHA256) - set(archive.files))
        if missing:
            raise ValueError(
                f"binarized_mnist: {str(path)!r} lacks the split(s) {missing}; it holds "
                f"{sorted(archive.files)} (expected bit-packed uint8 arrays {sorted(MNIST_SHA256)})"
            )
        # unpackbits along rows returns a column-major array: copy to rows, so that a
        # minibatch of images is contiguous (a row-major matrix product is faster)
        return {
            k: np.ascontiguousarray(np.unpackbits(archive[k], axis=1)[:, :784])
            for k in MNIST_SHA256
        }


# -- Fashion-MNIST -----------------------------------------------------------------------


def read_idx(data: bytes, name: str = "idx") -> np.ndarray:
    """An IDX file's array (gzipped or not): a big-endian header of two zero bytes, the
    type code (0x08: uint8) and the number of dimensions, then each size, then the
    values."""
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    if len(data) < 4 or data[:2] != b"\x00\x00" or data[2] != 0x08:
        raise ValueError(f"{name}: not an IDX file of unsigned bytes")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise ValueError(f"{name}: header says {shape}, body holds {body.size} values")
    return body.reshape(shape).copy()


def _fashion_file(file: str, base_url: str | None) -> bytes:
    """One of the four gzipped IDX files: a local copy (``fashion_mnist/`` under the
    data directories, the Debian package's folder, the cache), else downloaded into
    the cache; every copy's SHA-256 is checked."""
    digest = FASHION_SHA256[file]
    path = _find_local(f"fashion_mnist/{file}")
    if path is None and (FASHION_SYSTEM_DIR / file).is_file():
        path = FASHION_SYSTEM_DIR / file
    if path is not None:
        data = path.read_bytes()
        if sha256(data) != digest:
            raise ChecksumError(f"{path}: SHA-256 {sha256(data)} does not match {digest}")
        return data
    data = fetch(f"{base_url or FASHION_URL}/{file}", digest)
    atomic_write(cache_dir() / "fashion_mnist" / file, lambda handle: handle.write(data))
    return data


def _fashion_mnist(base_url: str | None = None) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """The protocol's splits: the last 10,000 training images are ``valid``."""
    parts = {}
    for prefix in ("train", "t10k"):
        images = read_idx(_fashion_file(f"{prefix}-images-idx3-ubyte.gz", base_url), prefix)
        labels = read_idx(_fashion_file(f"{prefix}-labels-idx1-ubyte.gz", base_url), prefix)
        if images.shape[1:] != (28, 28) or len(images) != len(labels):
            raise ValueError(
                f"fashion_mnist {prefix}: images {images.shape}, labels {labels.shape}"
            )
        parts[prefix] = images, labels
    (x, y), test = parts["train"], parts["t10k"]
    return {"train": (x[:-10000], y[:-10000]), "valid": (x[-10000:], y[-10000:]), "test": test}


def dequantize(images, levels: int = 256, seed: int = 0) -> np.ndarray:
    """Integer images of ``levels`` grey levels (0 .. levels-1) as float32 densities'
    data on [0, 1): (k + u) / levels, u ~ U(0, 1) (Uria, Murray and Larochelle 2013;
    Theis, van den Oord and Bethge 2016), with a channel axis added to (N, H, W).
    A continuous model's log-likelihood of these, plus D log(levels), bounds the
    discrete images' from below."""
    images = np.asarray(images)
    if images.size == 0:
        raise ValueError("images: empty")
    if not np.issubdtype(images.dtype, np.integer):
        raise TypeError(f"images: expected integer grey levels, got {images.dtype}")
    if images.min() < 0 or images.max() >= levels:
        raise ValueError(
            f"images: grey levels must be in [0, {levels}), got [{images.min()}, {images.max()}]"
        )
    rng = np.random.default_rng(seed)
    x = (images + rng.uniform(size=images.shape)) / levels
    return (x[:, None] if x.ndim == 3 else x).astype(np.float32)


def fashion_splits(sizes: tuple[int, int, int] | None = None, seed: int = 0):
    """Fashion-MNIST's (train, valid, test) images as uint8 arrays (N, 28, 28), with
    ``sizes`` a random subset of each of that many; the labels are in
    ``load("fashion_mnist", split)``."""
    if sizes is not None and (
        len(sizes) != 3 or any(not isinstance(n, int) or n < 0 for n in sizes)
    ):
        raise ValueError(f"sizes: expected three non-negative integers, got {sizes!r}")
    splits = [load("fashion_mnist", s)[0] for s in SPLITS]
    if sizes is None:
        return tuple(splits)
    rng = np.random.default_rng(seed)
    return tuple(s[rng.permutation(len(s))[:n]] for s, n in zip(splits, sizes))


# -- posteriordb -------------------------------------------------------------------------


@dataclass
class PosteriorDB:
    """A posteriordb posterior: its data and Stan's reference draws."""

    name: str
    data: dict
    reference_draws: dict[str, np.ndarray]  # Stan name (e.g. "beta[1]") -> (chain, draw)
    stan_code: str | None = None

    def reference(self, site: str) -> np.ndarray:
        """Draws of a whole site stacked Stan-style: ``beta`` -> (chain, draw, K)."""
        names = [n for n in self.reference_draws if n == site or n.startswith(site + "[")]
        if not names:
            raise KeyError(f"site: {site!r} is not in the reference draws of {self.name}")
        if names == [site]:
            return self.reference_draws[site]
        return np.stack([self.reference_draws[n] for n in names], axis=-1)


POSTERIORDB_ENV = "POSTERIORDB_PATH"  # a local checkout of stan-dev/posteriordb


def load_posteriordb(
    name: str, path: str | os.PathLike | None = None, base_url: str | None = None
) -> PosteriorDB:
    """Data, Stan program and reference draws of a posteriordb posterior.

    ``name`` is a posterior's name (``"eight_schools-eight_schools_noncentered"``) or,
    where data and model share it, the short one (``"arK"`` for ``"arK-arK"``). Any
    posterior with reference draws is read from a local checkout of posteriordb: the
    repository (or its ``posterior_database`` folder) at ``path``, else at the
    environment variable ``POSTERIORDB_PATH``. Without a checkout, the posteriors
    whose checksums pyrogen knows (arK, hmm_example, low_dim_gauss_mix) come from
    ``PYROGEN_DATA``/``../shared/data``, the cache, or a download checked against
    them (``base_url``: another host with posteriordb's layout)."""
    root = _posteriordb_root(path)
    if root is not None:
        return _load_from_checkout(root, name)
    short = name.split("-")[0] if name.count("-") == 1 and len(set(name.split("-"))) == 1 else name
    if short not in POSTERIORDB_SHA256:
        known = ", ".join(sorted(POSTERIORDB_SHA256))
        raise ValueError(
            f"name: posteriordb posterior {name!r} needs a local checkout of posteriordb "
            f"(path=... or {POSTERIORDB_ENV}); without one pyrogen knows the checksums of "
            f"{known} only"
        )
    return _load_known(short, base_url)


def _posteriordb_root(path) -> Path | None:
    """The ``posterior_database`` folder of a checkout at ``path`` or the environment
    variable; None where neither is given; an error naming a folder that is none."""
    given = path if path is not None else os.environ.get(POSTERIORDB_ENV)
    if not given:
        return None
    where = "path" if path is not None else POSTERIORDB_ENV
    folder = Path(given).expanduser()
    for candidate in (folder / "posterior_database", folder):
        if (candidate / "posteriors").is_dir():
            return candidate
    raise ValueError(
        f"{where}: {str(folder)!r} is not a posteriordb checkout (no posteriors/ folder "
        "in it or in its posterior_database/)"
    )


def _load_from_checkout(root: Path, name: str) -> PosteriorDB:
    posterior_file = root / "posteriors" / f"{name}.json"
    if not posterior_file.is_file() and "-" not in name:
        posterior_file = root / "posteriors" / f"{name}-{name}.json"
    if not posterior_file.is_file():
        names = sorted(p.stem for p in (root / "posteriors").glob("*.json"))
        close = [n for n in names if name.lower() in n.lower()][:8]
        hint = f"; names like it: {', '.join(close)}" if close else ""
        raise ValueError(f"name: no posterior {name!r} in {root}{hint}")
    info = json.loads(posterior_file.read_text())
    reference = info.get("reference_posterior_name")
    if not reference:
        raise ValueError(f"name: posterior {info['name']!r} has no reference draws in posteriordb")
    data = json.loads(
        _zip_member((root / "data" / "data" / f"{info['data_name']}.json.zip").read_bytes())
    )
    draws_file = root / "reference_posteriors" / "draws" / "draws" / f"{reference}.json.zip"
    chains = json.loads(_zip_member(draws_file.read_bytes()))
    draws = {k: np.array([chain[k] for chain in chains]) for k in chains[0]}
    stan = root / "models" / "stan" / f"{info['model_name']}.stan"
    return PosteriorDB(info["name"], data, draws, stan.read_text() if stan.is_file() else None)


def _load_known(name: str, base_url: str | None) -> PosteriorDB:
    """One of the posteriors whose checksums pyrogen keeps: local copy, cache or download."""
    remote = {
        "data": f"data/data/{name}.json.zip",
        "reference_draws": f"reference_posteriors/draws/draws/{name}-{name}.json.zip",
    }
    parts = {}
    for part, digest in POSTERIORDB_SHA256[name].items():
        relative = f"posteriordb/{name}/{part}.json.zip"
        path = _find_local(relative)
        if path is not None:
            source, raw = str(path), path.read_bytes()
        else:
            source = f"{base_url or POSTERIORDB_URL}/{remote[part]}"
            raw = fetch(source, None)
        content = _zip_member(raw)
        if sha256(content) != digest:
            raise ChecksumError(f"{source}: content does not match SHA-256 {digest}")
        if path is None:  # cache only what passed the check
            atomic_write(cache_dir() / relative, lambda handle, raw=raw: handle.write(raw))
        parts[part] = json.loads(content)
    chains = parts["reference_draws"]
    draws = {k: np.array([chain[k] for chain in chains]) for k in chains[0]}
    stan = _find_local(f"posteriordb/{name}/model.stan")
    return PosteriorDB(name, parts["data"], draws, stan.read_text() if stan else None)


# -- CSV and the registry -------------------------------------------------------------------


def load_csv(path: str | os.PathLike, columns: list[str] | None = None) -> np.ndarray:
    """A numeric CSV with a header row -> float64 array (N, D); non-numeric columns are
    refused with their names."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"data: no such file {str(path)!r}")
    with path.open(newline="") as handle:
        rows = list(csv.reader(handle))
    if len(rows) < 2:
        raise ValueError(f"data: {str(path)!r} has no data rows")
    header, body = rows[0], [r for r in rows[1:] if r]
    if columns is not None:
        missing = [c for c in columns if c not in header]
        if missing:
            raise ValueError(f"columns: {missing} not in {str(path)!r} (columns: {header})")
        index = [header.index(c) for c in columns]
    else:
        index = list(range(len(header)))
    bad = []
    for i in index:
        try:
            [float(r[i]) for r in body]
        except (ValueError, IndexError):
            bad.append(header[i])
    if bad:
        raise ValueError(f"data: non-numeric column(s) {bad} in {str(path)!r}")
    return np.array([[float(r[i]) for i in index] for r in body], dtype=np.float64)


SPLITS = ("train", "valid", "test")

DATASETS = {
    "old_faithful": "Old Faithful eruption lengths and waiting times (minutes), 272 x 2",
    "binarized_mnist": "statically binarized MNIST (Larochelle & Murray 2011), 50k/10k/10k x 784",
    "fashion_mnist": "Fashion-MNIST (Xiao et al. 2017), 50k/10k/10k x 28x28 uint8 with labels",
    "sunspots": "yearly mean sunspot numbers 1700-2008 (statsmodels' copy), 309",
}


def list_datasets() -> dict[str, str]:
    return dict(DATASETS)


def load(name: str, split: str | None = None):
    """Load a named data set.

    ``old_faithful`` returns a float64 array (272, 2); ``binarized_mnist`` returns a
    uint8 array (N, 784) for ``split`` in train/valid/test, or a dict of all three;
    ``fashion_mnist`` returns (images uint8 (N, 28, 28), labels) for ``split``, or a
    dict of the three (valid: the last 10,000 training images);
    ``sunspots`` the float64 series (309,) (it needs statsmodels).
    """
    if name == "old_faithful":
        return _old_faithful()
    if name == "sunspots":
        return _statsmodels_series("sunspots", "SUNACTIVITY")
    if name in ("binarized_mnist", "fashion_mnist"):
        splits = _binarized_mnist() if name == "binarized_mnist" else _fashion_mnist()
        if split is None:
            return splits
        if split not in splits:
            raise ValueError(f"split: must be one of {sorted(splits)}, got {split!r}")
        return splits[split]
    raise ValueError(f"name: unknown data set {name!r}; known: {', '.join(DATASETS)}")


def mnist_splits(sizes: tuple[int, int, int] | None = None, seed: int = 0):
    """Binarized MNIST's (train, valid, test) as float32 tensors (N, 784); with
    ``sizes``, a random subset of each of that many images (random, not the first
    ones: the test file's two halves differ in difficulty)."""
    import torch

    if sizes is not None and (
        len(sizes) != 3 or any(not isinstance(n, int) or n < 0 for n in sizes)
    ):
        raise ValueError(f"sizes: expected three non-negative integers, got {sizes!r}")
    splits = [torch.as_tensor(load("binarized_mnist", s), dtype=torch.float32) for s in SPLITS]
    if sizes is None:
        return tuple(splits)
    pick = torch.Generator().manual_seed(seed)
    return tuple(s[torch.randperm(len(s), generator=pick)[:n]] for s, n in zip(splits, sizes))


def dequantized_digits(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's 8x8 digits (1797 images of 17 grey levels) as a density problem on
    [0, 1]^64: x = (level + u) / 17 with u ~ U(0, 1), and the labels, both in a random
    order drawn with ``seed`` (the first 1400 are the usual training part)."""
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise ImportError(
            "dequantized_digits needs scikit-learn (pip install scikit-learn)"
        ) from None
    digits = load_digits()
    rng = np.random.default_rng(seed)
    x = (digits.data + rng.uniform(size=digits.data.shape)) / 17.0
    order = rng.permutation(len(x))
    return x[order], digits.target[order]


def _statsmodels_series(name: str, column: str) -> np.ndarray:
    try:
        import statsmodels.api as sm
    except ImportError:
        raise ImportError(
            f"the {name} data set needs statsmodels (pip install statsmodels)"
        ) from None
    return getattr(sm.datasets, name).load_pandas().data[column].to_numpy(dtype=np.float64)


def sliding_windows(series, length: int, stride: int = 1) -> np.ndarray:
    """The windows series[i : i + length] for i = 0, stride, 2 stride, ... as an array
    (num_windows, length): a long series as examples for a sequence density model."""
    series = np.asarray(series, dtype=np.float64)
    if series.ndim != 1:
        raise ValueError(f"series: expected a 1-D series, got shape {series.shape}")
    for value, name in ((length, "length"), (stride, "stride")):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name}: must be a positive integer, got {value!r}")
    if length > len(series):
        raise ValueError(f"length: {length} is longer than the series ({len(series)})")
    starts = np.arange(0, len(series) - length + 1, stride)
    return np.stack([series[i : i + length] for i in starts])


def sunspot_windows(length: int = 16, train_years: int = 220) -> tuple[np.ndarray, np.ndarray]:
    """Yearly sunspot numbers (1700-2008) as a forecasting problem for sequence models:
    the square root, standardized by the first ``train_years`` years; ``train`` are
    the windows of ``length`` years inside those years, ``test`` the windows that end
    at each later year (so the last value of a test window is a year to predict from
    the ``length`` - 1 before it). Two float64 arrays (N, length)."""
    series = np.sqrt(load("sunspots"))
    if isinstance(train_years, bool) or not isinstance(train_years, int):
        raise ValueError(f"train_years: must be an integer, got {train_years!r}")
    if not length <= train_years < len(series):
        raise ValueError(f"train_years: must be in [{length}, {len(series)}), got {train_years}")
    series = (series - series[:train_years].mean()) / series[:train_years].std()
    train = sliding_windows(series[:train_years], length)
    return train, sliding_windows(series[train_years - length + 1 :], length)


# newline and the 95 printable ASCII characters; the topics' few other characters are
# mapped onto these
ALPHABET = "\n" + "".join(chr(c) for c in range(32, 127))
_REPLACE = {
    "\u201c": '"',
    "\u201d": '"',
    "\u2018": "'",
    "\u2019": "'",
    "\u2013": "-",
    "\u2014": "-",
}
_REPLACE |= {"\u2026": "...", "\t": "    "}


@dataclass
class CharacterData:
    """Character sequences of a text: ``train``, ``valid`` and ``test`` int64 arrays
    (N, length) of codes into ``alphabet``."""

    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray
    alphabet: str = ALPHABET

    def decode(self, codes) -> list[str]:
        """Sequences of codes (N, length) back to strings."""
        codes = np.asarray(codes).astype(np.int64)
        return ["".join(self.alphabet[c] for c in row) for row in np.atleast_2d(codes)]

    def encode(self, text: str) -> np.ndarray:
        """A string to codes (characters outside the alphabet become '?')."""
        for old, new in _REPLACE.items():
            text = text.replace(old, new)
        index = {c: i for i, c in enumerate(self.alphabet)}
        return np.array([index.get(c, index["?"]) for c in text], dtype=np.int64)


def characters(length: int = 128, fractions=(0.9, 0.05, 0.05)) -> CharacterData:
    """The help topics of Python's own documentation (the standard library's
    ``pydoc_data.topics``: about 465,000 characters of English prose with code
    examples, shipped with every Python) as character sequences of ``length``.

    The topics are joined in the order of their names and cut into three contiguous
    parts by ``fractions`` (train, valid, test), each then into non-overlapping
    sequences, so held-out text is text the model never saw. 96 symbols: newline and
    printable ASCII (curly quotes and dashes are mapped to ASCII, others to '?')."""
    from pydoc_data.topics import topics

    if isinstance(length, bool) or not isinstance(length, int) or length < 1:
        raise ValueError(f"length: must be a positive integer, got {length!r}")
    if len(fractions) != 3 or any(f <= 0 for f in fractions) or abs(sum(fractions) - 1) > 1e-9:
        raise ValueError(
            f"fractions: expected three positive fractions summing to 1, got {fractions}"
        )
    data = CharacterData(np.empty(0), np.empty(0), np.empty(0))
    codes = data.encode("\n".join(topics[name] for name in sorted(topics)))
    ends = np.cumsum([int(f * len(codes)) for f in fractions])
    parts = np.split(codes, ends[:-1])
    for name, part in zip(SPLITS, parts):
        usable = len(part) // length * length
        if usable == 0:
            raise ValueError(f"length: {length} is longer than the {name} part ({len(part)})")
        setattr(data, name, part[:usable].reshape(-1, length))
    return data
