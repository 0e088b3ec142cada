import functools
import http.server
import json
import shutil
import threading
from pathlib import Path

import numpy as np
import pytest

import pyrogen
from pyrogen import data


def test_old_faithful_ships_in_the_package():
    x = data.load("old_faithful")
    assert x.shape == (272, 2)
    np.testing.assert_allclose(x.mean(0), [3.487783, 70.897059], atol=1e-6)


def test_unknown_names_are_refused():
    with pytest.raises(ValueError, match="name: unknown data set 'iris'"):
        data.load("iris")
    with pytest.raises(
        ValueError, match="name: posteriordb posterior 'eight_schools' needs a local"
    ):
        data.load_posteriordb("eight_schools")


def test_csv_loader_names_the_bad_column(tmp_path):
    path = tmp_path / "table.csv"
    path.write_text("a,b,label\n1,2,x\n3,4,y\n")
    with pytest.raises(ValueError, match=r"non-numeric column\(s\) \['label'\]"):
        data.load_csv(path)
    np.testing.assert_array_equal(data.load_csv(path, ["a", "b"]), [[1, 2], [3, 4]])
    with pytest.raises(ValueError, match=r"columns: \['c'\] not in"):
        data.load_csv(path, ["c"])
    with pytest.raises(ValueError, match="data: no such file"):
        data.load_csv(tmp_path / "missing.csv")
    (tmp_path / "empty.csv").write_text("a,b\n")
    with pytest.raises(ValueError, match="has no data rows"):
        data.load_csv(tmp_path / "empty.csv")


def test_amat_conversion():
    bits = np.random.default_rng(0).integers(0, 2, size=(3, 784))
    text = "\n".join(" ".join(map(str, row)) for row in bits).encode() + b"\n"
    np.testing.assert_array_equal(data.amat_to_packed(text), np.packbits(bits, axis=1))
    with pytest.raises(ValueError, match="not a whole number of 28x28 images"):
        data.amat_to_packed(b"0 1 1\n")


@pytest.fixture
def server(tmp_path):
    """A static HTTP server on 127.0.0.1 serving tmp_path/'www'."""
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(QuietHandler, directory=str(root))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture
def offline_copies(monkeypatch, tmp_path):
    """Hide the local reference copies and use an empty cache, so loads must download."""
    copies = pyrogen.data.local_data_dirs()
    monkeypatch.setattr(data, "local_data_dirs", lambda: [])
    monkeypatch.setenv("PYROGEN_CACHE", str(tmp_path / "cache"))
    return copies


def _serve_posteriordb(root: Path, copies: list[Path], name: str, corrupt: bool = False):
    source = next(d / "posteriordb" / name for d in copies if (d / "posteriordb" / name).is_dir())
    targets = {
        "data.json.zip": root / "data" / "data" / f"{name}.json.zip",
        "reference_draws.json.zip": root
        / "reference_posteriors/draws/draws"
        / f"{name}-{name}.json.zip",
    }
    for file, target in targets.items():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source / file, target)
    if corrupt:
        import zipfile

        with zipfile.ZipFile(targets["data.json.zip"], "w") as archive:
            archive.writestr(f"{name}.json", '{"N": 1, "y": [0.0]}')


def test_posteriordb_download_is_checked_and_cached(
    reference_data, server, offline_copies, tmp_path
):
    root, url = server
    _serve_posteriordb(root, offline_copies, "low_dim_gauss_mix")
    posterior = data.load_posteriordb("low_dim_gauss_mix", base_url=url)
    assert posterior.data["N"] == 1000
    assert posterior.reference("mu").shape == (10, 1000, 2)
    cached = tmp_path / "cache" / "posteriordb" / "low_dim_gauss_mix"
    assert sorted(p.name for p in cached.iterdir()) == ["data.json.zip", "reference_draws.json.zip"]
    shutil.rmtree(root / "data")  # the second load needs no network
    again = data.load_posteriordb("low_dim_gauss_mix", base_url=url)
    assert again.data == posterior.data


def test_mismatched_download_is_refused_and_leaves_nothing(
    reference_data, server, offline_copies, tmp_path
):
    root, url = server
    _serve_posteriordb(root, offline_copies, "low_dim_gauss_mix", corrupt=True)
    with pytest.raises(data.ChecksumError, match="does not match"):
        data.load_posteriordb("low_dim_gauss_mix", base_url=url)
    cache = tmp_path / "cache"
    assert not cache.exists() or not any(p.is_file() for p in cache.rglob("*"))


def test_unreachable_source_gives_a_clear_error(offline_copies):
    with pytest.raises(OSError, match="could not download http://127.0.0.1:9/"):
        data.fetch("http://127.0.0.1:9/missing.zip", None, timeout=2)


def test_binarized_mnist_download_matches_the_reference(
    reference_data, server, offline_copies, tmp_path
):
    """Serve the three .amat files made from the reference copy; the loader converts them
    and checks every split's pixels against the published checksums."""
    root, url = server
    source = next(
        d / "binarized_mnist.npz" for d in offline_copies if (d / "binarized_mnist.npz").is_file()
    )
    with np.load(source) as archive:
        reference = {
            k: np.unpackbits(archive[k], axis=1)[:, :784] for k in ("train", "valid", "test")
        }
    for split, pixels in reference.items():
        text = (pixels + ord("0")).astype(np.uint8)
        lines = np.full((len(text), 784 * 2), ord(" "), dtype=np.uint8)
        lines[:, 0::2] = text
        lines[:, -1] = ord("\n")
        (root / f"binarized_mnist_{split}.amat").write_bytes(lines.tobytes())
    monkeypatch_url = pytest.MonkeyPatch()
    monkeypatch_url.setattr(data, "MNIST_URL", url)
    try:
        test = data.load("binarized_mnist", split="test")
    finally:
        monkeypatch_url.undo()
    np.testing.assert_array_equal(test, reference["test"])
    assert (tmp_path / "cache" / "binarized_mnist.npz").is_file()
    assert test.mean() == pytest.approx(0.132512, abs=1e-6)


def test_dequantized_digits_keep_their_levels():
    from pyrogen.data import dequantized_digits

    x, labels = dequantized_digits(seed=3)
    assert x.shape == (1797, 64) and labels.shape == (1797,)
    assert ((x > 0) & (x < 1)).all() and set(labels.tolist()) == set(range(10))
    levels = np.floor(17 * x)  # the grey level each value was spread from
    assert levels.min() == 0 and levels.max() == 16
    again, _ = dequantized_digits(seed=3)
    assert np.array_equal(x, again) and not np.array_equal(x, dequantized_digits(seed=4)[0])


def test_mnist_splits_subsets_and_bad_sizes(reference_data):
    train, valid, test = data.mnist_splits((20, 0, 5), seed=1)
    assert train.shape == (20, 784) and valid.shape == (0, 784) and test.shape == (5, 784)
    assert str(train.dtype) == "torch.float32"
    with pytest.raises(ValueError, match="sizes: expected three"):
        data.mnist_splits((10, 10))
    with pytest.raises(ValueError, match="sizes: expected three"):
        data.mnist_splits((10, -1, 10))


def test_characters_of_the_python_docs():
    text = pyrogen.data.characters(100)
    assert len(text.alphabet) == 96 and text.alphabet[0] == "\n"
    assert text.train.shape[1] == text.valid.shape[1] == text.test.shape[1] == 100
    assert len(text.train) > 10 * len(text.test) > 0 and text.train.dtype == np.int64
    assert text.train.min() >= 0 and text.train.max() < 96
    # contiguous parts, in order: the test part is the end of the joined topics
    from pydoc_data.topics import topics

    joined = text.encode("\n".join(topics[name] for name in sorted(topics)))
    assert np.array_equal(text.train.ravel(), joined[: text.train.size])
    assert text.decode(text.encode("def f(x):\n    return x"))[0] == "def f(x):\n    return x"
    assert text.decode(text.encode("\u201cquoted\u201d \u2014 caf\u00e9"))[0] == '"quoted" - caf?'
    with pytest.raises(ValueError, match="length"):
        pyrogen.data.characters(0)
    with pytest.raises(ValueError, match="fractions"):
        pyrogen.data.characters(10, fractions=(0.5, 0.5))


def test_sunspots_and_sliding_windows():
    series = pyrogen.data.load("sunspots")
    assert series.shape == (309,) and series[0] == 5.0 and (series >= 0).all()
    windows = pyrogen.data.sliding_windows(series, 10, stride=3)
    assert windows.shape == (100, 10)
    assert np.array_equal(windows[1], series[3:13])
    with pytest.raises(ValueError, match="length"):
        pyrogen.data.sliding_windows(series, 400)
    with pytest.raises(ValueError, match="stride"):
        pyrogen.data.sliding_windows(series, 4, stride=0)
    with pytest.raises(ValueError, match="series"):
        pyrogen.data.sliding_windows(np.zeros((3, 3)), 2)
    train, test = pyrogen.data.sunspot_windows(16, train_years=220)
    assert train.shape == (205, 16) and test.shape == (89, 16)
    scaled = (np.sqrt(series) - np.sqrt(series[:220]).mean()) / np.sqrt(series[:220]).std()
    assert np.allclose(test[:, -1], scaled[220:])  # one window per later year
    assert np.allclose(train[-1], scaled[204:220])
    with pytest.raises(ValueError, match="train_years"):
        pyrogen.data.sunspot_windows(16, train_years=400)


def _fashion_sources(copies):
    return next(d / "fashion_mnist" for d in copies if (d / "fashion_mnist").is_dir())


def test_fashion_mnist_splits_follow_the_protocol(reference_data):
    splits = data.load("fashion_mnist")
    assert {k: v[0].shape for k, v in splits.items()} == {
        "train": (50000, 28, 28),
        "valid": (10000, 28, 28),
        "test": (10000, 28, 28),
    }
    assert splits["test"][0].dtype == np.uint8 and set(np.unique(splits["test"][1])) == set(
        range(10)
    )
    # the published class balance: 6,000 of each class in the 60,000 training images
    labels = np.concatenate([splits["train"][1], splits["valid"][1]])
    assert np.bincount(labels).tolist() == [6000] * 10
    train, valid, test = data.fashion_splits((100, 20, 30), seed=1)
    assert (train.shape, valid.shape, test.shape) == ((100, 28, 28), (20, 28, 28), (30, 28, 28))
    with pytest.raises(ValueError, match="sizes"):
        data.fashion_splits((1, 2))


def test_fashion_mnist_download_is_checked_and_cached(
    reference_data, server, offline_copies, tmp_path, monkeypatch
):
    root, url = server
    for file in data.FASHION_SHA256:
        shutil.copy(_fashion_sources(offline_copies) / file, root / file)
    monkeypatch.setattr(data, "FASHION_URL", url)
    monkeypatch.setattr(data, "FASHION_SYSTEM_DIR", tmp_path / "no-such-dir")
    images, labels = data.load("fashion_mnist", split="valid")
    assert images.shape == (10000, 28, 28) and labels.shape == (10000,)
    cached = tmp_path / "cache" / "fashion_mnist"
    assert sorted(p.name for p in cached.iterdir()) == sorted(data.FASHION_SHA256)
    for file in data.FASHION_SHA256:  # the second load needs no network
        (root / file).unlink()
    again, _ = data.load("fashion_mnist", split="valid")
    np.testing.assert_array_equal(again, images)


def test_fashion_mnist_from_the_debian_folder_and_corrupt_downloads(
    reference_data, server, offline_copies, tmp_path, monkeypatch
):
    system = tmp_path / "debian"
    shutil.copytree(_fashion_sources(offline_copies), system)
    monkeypatch.setattr(data, "FASHION_SYSTEM_DIR", system)
    monkeypatch.setattr(data, "FASHION_URL", "http://127.0.0.1:9")  # unused
    images, _ = data.load("fashion_mnist", split="test")
    assert images.shape == (10000, 28, 28)
    # a corrupt download is refused and leaves nothing in the cache
    root, url = server
    (root / "train-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b not the images")
    monkeypatch.setattr(data, "FASHION_SYSTEM_DIR", tmp_path / "no-such-dir")
    monkeypatch.setattr(data, "FASHION_URL", url)
    with pytest.raises(data.ChecksumError, match="does not match"):
        data.load("fashion_mnist", split="train")
    cache = tmp_path / "cache"
    assert not cache.exists() or not any(p.is_file() for p in cache.rglob("*"))


def test_idx_reader_checks_its_header():
    header = bytes([0, 0, 8, 2, 0, 0, 0, 2, 0, 0, 0, 3])
    np.testing.assert_array_equal(
        data.read_idx(header + bytes(range(6))), np.arange(6).reshape(2, 3)
    )
    with pytest.raises(ValueError, match="body holds 5"):
        data.read_idx(header + bytes(5), "x")
    with pytest.raises(ValueError, match="not an IDX"):
        data.read_idx(b"PK\x03\x04", "x")


def make_checkout(root: Path, name: str, reference: bool = True) -> Path:
    """A posteriordb checkout's layout (posterior_database/...) holding one posterior,
    made from the shared copy's files."""
    source = next(
        d / "posteriordb" / name
        for d in pyrogen.data.local_data_dirs()
        if (d / "posteriordb" / name).is_dir()
    )
    base = root / "posterior_database"
    info = json.loads((source / "posterior.json").read_text())
    if not reference:
        info["reference_posterior_name"] = None
    files = {
        base / "posteriors" / f"{info['name']}.json": None,
        base / "data" / "data" / f"{name}.json.zip": source / "data.json.zip",
        base / "reference_posteriors/draws/draws" / f"{name}-{name}.json.zip": source
        / "reference_draws.json.zip",
        base / "models" / "stan" / f"{name}.stan": source / "model.stan",
    }
    for target, origin in files.items():
        target.parent.mkdir(parents=True, exist_ok=True)
        if origin is None:
            target.write_text(json.dumps(info))
        else:
            shutil.copy(origin, target)
    return root


def test_any_posterior_of_a_posteriordb_checkout(tmp_path, monkeypatch):
    """A checkout given by path (the repository or its posterior_database folder) or
    by POSTERIORDB_PATH gives the posterior by its full or short name, the same as the
    checked copy of the three posteriors pyrogen knows."""
    root = make_checkout(tmp_path / "posteriordb", "arK")
    known = data.load_posteriordb("arK")
    for loaded in (
        data.load_posteriordb("arK-arK", path=root),
        data.load_posteriordb("arK", path=root / "posterior_database"),
    ):
        assert loaded.name == "arK-arK"
        assert loaded.data == known.data
        assert loaded.reference_draws.keys() == known.reference_draws.keys()
        np.testing.assert_array_equal(loaded.reference("beta"), known.reference("beta"))
        assert "ar" in loaded.stan_code.lower()
    monkeypatch.setenv("POSTERIORDB_PATH", str(root))
    assert data.load_posteriordb("arK").name == "arK-arK"


def test_posteriordb_checkout_errors_name_the_problem(tmp_path):
    root = make_checkout(tmp_path / "db", "arK")
    with pytest.raises(ValueError, match="name: no posterior 'ar' in .*names like it: arK-arK"):
        data.load_posteriordb("ar", path=root)
    with pytest.raises(ValueError, match="path: .* is not a posteriordb checkout"):
        data.load_posteriordb("arK", path=tmp_path)
    bare = make_checkout(tmp_path / "bare", "arK", reference=False)
    with pytest.raises(ValueError, match="has no reference draws"):
        data.load_posteriordb("arK-arK", path=bare)
