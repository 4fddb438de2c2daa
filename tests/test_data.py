"""Datasets, the held-out split, augmentation and loaders (naslid.data)."""
from __future__ import annotations

import pickle
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import SHARED_DATA
from naslid import data as D


pytestmark = pytest.mark.usefixtures("one_thread")


# ------------------------------------------------------------------------------------------------
# helpers: tiny datasets whose images encode their own index
# ------------------------------------------------------------------------------------------------
def _coded_images(n: int, h: int = 8, w: int = 8, c: int = 3, seed: int = 0) -> np.ndarray:
    """uint8 (n, h, w, c) random images whose pixel (0, 0) channels 0/1 encode the index."""
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(n, h, w, c), dtype=np.uint8)
    x[:, 0, 0, 0] = np.arange(n) % 256
    x[:, 0, 0, 1 % c] = np.arange(n) // 256
    return x


def _decode(imgs: torch.Tensor) -> list[int]:
    """Inverse of _coded_images on uint8 (N, C, H, W)."""
    c = imgs.shape[1]
    return (imgs[:, 0, 0, 0].long() + 256 * imgs[:, 1 % c, 0, 0].long()).tolist()


def _write_npz(path: Path, n_train=200, n_test=40, classes=4, **overrides) -> dict:
    arrays = {
        "x_train": _coded_images(n_train),
        "y_train": (np.arange(n_train) % classes).astype(np.uint8),
        "x_test": _coded_images(n_test, seed=1),
        "y_test": (np.arange(n_test) % classes).astype(np.uint8),
    }
    arrays.update(overrides)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    np.savez(path, **arrays)
    return arrays


# ------------------------------------------------------------------------------------------------
# stratified selection
# ------------------------------------------------------------------------------------------------
def test_stratified_take_proportional_seeded_disjoint():
    labels = torch.tensor([0] * 50 + [1] * 30 + [2] * 20)
    g = torch.Generator().manual_seed(3)
    taken, rest = D.stratified_take(labels, 50, g)
    assert taken.numel() == 50 and rest.numel() == 50
    assert set(taken.tolist()).isdisjoint(rest.tolist())
    assert sorted(taken.tolist() + rest.tolist()) == list(range(100))
    assert torch.bincount(labels[taken]).tolist() == [25, 15, 10]
    again, _ = D.stratified_take(labels, 50, torch.Generator().manual_seed(3))
    other, _ = D.stratified_take(labels, 50, torch.Generator().manual_seed(4))
    assert torch.equal(taken, again) and not torch.equal(taken, other)


def test_stratified_take_largest_remainder():
    labels = torch.tensor([0] * 5 + [1] * 3 + [2] * 2)  # 7 of 10: exact 3.5, 2.1, 1.4
    taken, _ = D.stratified_take(labels, 7, torch.Generator().manual_seed(0))
    assert torch.bincount(labels[taken], minlength=3).tolist() == [4, 2, 1]
    with pytest.raises(ValueError, match="n=11"):
        D.stratified_take(labels, 11, torch.Generator())


# ------------------------------------------------------------------------------------------------
# npz
# ------------------------------------------------------------------------------------------------
def test_npz_splits_balanced_disjoint_seeded(tmp_path):
    p = tmp_path / "tiny.npz"
    arrays = _write_npz(p)
    s = D.load_splits("npz", p, seed=5)
    assert (len(s.train), len(s.valid), len(s.test)) == (100, 100, 40)
    assert s.image_shape == (3, 8, 8) and s.num_classes == 4
    tr, va = _decode(s.train.images), _decode(s.valid.images)
    assert set(tr).isdisjoint(va) and sorted(tr + va) == list(range(200))
    # labels travel with their images; balanced per class
    assert all(int(s.train.labels[i]) == tr[i] % 4 for i in range(len(tr)))
    assert torch.bincount(s.valid.labels).tolist() == [25] * 4
    # NHWC -> NCHW exactly
    i = tr[7]
    assert np.array_equal(s.train.images[7].permute(1, 2, 0).numpy(), arrays["x_train"][i])
    # test split untouched and in order
    assert _decode(s.test.images) == list(range(40))
    # seeded
    assert _decode(D.load_splits("npz", p, seed=5).valid.images) == va
    assert _decode(D.load_splits("npz", p, seed=6).valid.images) != va
    # normalisation = float64 per-channel stats of the train split
    x = arrays["x_train"][tr].astype(np.float64) / 255
    np.testing.assert_allclose(s.mean, x.mean(axis=(0, 1, 2)), rtol=1e-9)
    np.testing.assert_allclose(s.std, x.std(axis=(0, 1, 2), ddof=1), rtol=1e-9)


def test_npz_subsets_and_grayscale(tmp_path):
    p = tmp_path / "g.npz"
    _write_npz(p, x_train=_coded_images(200, c=1)[..., 0], x_test=_coded_images(40, c=1)[..., 0])
    s = D.load_splits("npz", p, max_train=40, max_valid=20)
    assert s.image_shape == (1, 8, 8) and len(s.mean) == 1
    assert (len(s.train), len(s.valid)) == (40, 20)
    assert torch.bincount(s.train.labels).tolist() == [10] * 4
    assert torch.bincount(s.valid.labels).tolist() == [5] * 4


def _block_mean_uint8(x: np.ndarray, f: int) -> np.ndarray:
    """Oracle: NHWC uint8 -> NCHW uint8 means of f x f blocks by explicit loops, half-to-even."""
    n, h, w, c = x.shape
    out = np.zeros((n, c, h // f, w // f), dtype=np.uint8)
    for i in range(n):
        for ch in range(c):
            for r in range(h // f):
                for q in range(w // f):
                    block = x[i, r * f:(r + 1) * f, q * f:(q + 1) * f, ch].astype(np.int64)
                    out[i, ch, r, q] = np.round(block.sum() / (f * f))
    return out


def test_npz_image_size_block_means(tmp_path):
    p = tmp_path / "r.npz"
    _write_npz(p, n_train=40, n_test=8)
    full = D.load_splits("npz", p, seed=2)
    s = D.load_splits("npz", p, seed=2, image_size=4)
    assert s.image_shape == (3, 4, 4) and s.train.images.dtype == torch.uint8
    assert s.pad == 1 and full.pad == 1
    # the same split as without resizing (indices depend on labels only), each image averaged 2x2
    for part in ("train", "valid", "test"):
        big = getattr(full, part).images
        small = getattr(s, part).images
        assert small.shape == (big.shape[0], 3, 4, 4)
        want = _block_mean_uint8(big.permute(0, 2, 3, 1).numpy(), 2)
        assert np.array_equal(small.numpy(), want), part
    assert torch.equal(s.train.labels, full.train.labels)
    # a known array: 2x2 blocks [[0, 1], [2, 4]] -> 7/4 = 1.75 -> 2; [[1, 2], [2, 2]] -> 1.75 -> 2;
    # [[0, 0], [0, 2]] -> 0.5 -> 0 (half to even); [[255, 255], [255, 254]] -> 254.75 -> 255
    img = np.array([[0, 1, 1, 2], [2, 4, 2, 2], [0, 0, 255, 255], [0, 2, 255, 254]], dtype=np.uint8)
    got, method = D.resize_uint8(torch.from_numpy(img)[None, None], 2)
    assert method == "avg_pool" and got[0, 0].tolist() == [[2, 2], [0, 255]]
    assert s.summary()["stored_image_size"] == [8, 8] and s.summary()["image_size"] == 4
    assert s.summary()["resize"] == "avg_pool" and s.summary()["image_shape"] == [3, 4, 4]
    assert full.summary()["resize"] == "none" and full.summary()["image_size"] == 8
    # the stored size is a no-op; normalisation is computed on the resized train split
    same = D.load_splits("npz", p, seed=2, image_size=8)
    assert torch.equal(same.train.images, full.train.images)
    x = s.train.images.double() / 255
    np.testing.assert_allclose(s.mean, x.mean(dim=(0, 2, 3)).numpy(), rtol=1e-9)


def test_npz_image_size_bilinear_and_errors(tmp_path):
    p = tmp_path / "r.npz"
    _write_npz(p, n_train=40, n_test=8)
    s = D.load_splits("npz", p, image_size=6)  # 8 is not a multiple of 6: antialiased bilinear
    assert s.image_shape == (3, 6, 6) and s.summary()["resize"] == "bilinear"
    full = D.load_splits("npz", p)
    want = torch.nn.functional.interpolate(full.train.images.double(), size=(6, 6), mode="bilinear",
                                           align_corners=False, antialias=True)
    assert (s.train.images.double() - want).abs().max() <= 0.5 + 1e-4
    # a constant image stays constant
    const = torch.full((1, 1, 8, 8), 77, dtype=torch.uint8)
    assert D.resize_uint8(const, 5)[0].unique().tolist() == [77]
    with pytest.raises(ValueError, match=r"image_size 16 exceeds the npz images' 8x8; choose <= 8"):
        D.load_splits("npz", p, image_size=16)
    with pytest.raises(ValueError, match=r"image_size 3 is below 4"):
        D.load_splits("npz", p, image_size=3)


def test_cifar_image_size(tmp_path):
    _write_cifar10(tmp_path)
    s = D.load_splits("cifar10", tmp_path, image_size=16)
    full = D.load_splits("cifar10", tmp_path)
    assert s.image_shape == (3, 16, 16) and s.pad == 2 and full.pad == 4
    want = _block_mean_uint8(full.valid.images.permute(0, 2, 3, 1).numpy(), 2)
    assert np.array_equal(s.valid.images.numpy(), want)
    assert s.summary()["stored_image_size"] == [32, 32] and s.summary()["resize"] == "avg_pool"
    assert D.load_splits("cifar10", tmp_path, image_size=8).image_shape == (3, 8, 8)
    with pytest.raises(ValueError, match=r"image_size 64 exceeds the cifar10 images' 32x32; choose <= 32"):
        D.load_splits("cifar10", tmp_path, image_size=64)


def test_npz_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.npz"):
        D.load_splits("npz", tmp_path / "nope.npz")


def test_npz_truncated(tmp_path):
    p = tmp_path / "t.npz"
    _write_npz(p)
    raw = p.read_bytes()
    p.write_bytes(raw[: len(raw) // 2])
    with pytest.raises(ValueError, match=r"t\.npz.*(corrupt|truncated|cannot read)"):
        D.load_splits("npz", p)


@pytest.mark.parametrize("overrides, msg", [
    ({"y_test": None}, r"missing arrays \['y_test'\]"),
    ({"y_train": np.zeros(199, np.uint8)}, r"200 images in x_train but 199 labels"),
    ({"x_train": np.zeros((200, 8, 8, 3), np.float32)}, r"x_train must be uint8"),
    ({"x_train": np.zeros((200, 8, 8, 5), np.uint8)}, r"\(N, H, W, C\)"),
    ({"y_train": -np.ones(200, np.int64)}, r"negative class id"),
])
def test_npz_bad_contents(tmp_path, overrides, msg):
    p = tmp_path / "bad.npz"
    _write_npz(p, **overrides)
    with pytest.raises(ValueError, match=msg) as e:
        D.load_splits("npz", p)
    assert "bad.npz" in str(e.value)


def test_unknown_dataset_and_bad_args(tmp_path):
    with pytest.raises(ValueError, match="unknown dataset 'mnist'"):
        D.load_splits("mnist")
    with pytest.raises(ValueError, match="valid_fraction"):
        D.load_splits("digits", valid_fraction=1.0)
    with pytest.raises(ValueError, match="max_train"):
        D.load_splits("digits", max_train=0)
    with pytest.raises(ValueError, match="channels"):
        D.load_splits("digits", channels=2)
    p = tmp_path / "two.npz"
    _write_npz(p, n_train=2, n_test=1, classes=1)
    with pytest.raises(ValueError, match="leaves 2 train / 0 valid"):
        D.load_splits("npz", p, valid_fraction=0.2)


# ------------------------------------------------------------------------------------------------
# digits (the embedded default)
# ------------------------------------------------------------------------------------------------
def test_digits_default_and_exact_pixels():
    from sklearn.datasets import load_digits

    s = D.load_splits()  # digits
    assert s.name == "digits" and s.image_shape == (3, 32, 32) and s.num_classes == 10
    assert len(s.train) + len(s.valid) + len(s.test) == 1797
    assert len(s.test) == 359 and abs(len(s.train) - len(s.valid)) <= 1
    assert s.augment is False
    # 8x8, 1 channel: exactly the sklearn pixels scaled 0..16 -> 0..255
    small = D.load_splits("digits", image_size=8, channels=1, seed=1)
    digits = load_digits()
    ref = {tuple(np.round(im * 255 / 16).astype(np.uint8).ravel()): int(t)
           for im, t in zip(digits.images, digits.target)}
    for img, lab in zip(small.train.images[:50], small.train.labels[:50]):
        assert ref[tuple(img[0].numpy().ravel())] == int(lab)
    # search view has no test split
    sd = s.search_data()
    assert not hasattr(sd, "test")
    with pytest.raises(ValueError, match="test split"):
        D.make_loader(sd, "test", 8)


# ------------------------------------------------------------------------------------------------
# CIFAR folders, download failures
# ------------------------------------------------------------------------------------------------
def _write_cifar10(root: Path, per_batch=20):
    base = root / "cifar-10-batches-py"
    base.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        d = {b"data": rng.integers(0, 256, (per_batch, 3072), dtype=np.uint8),
             b"labels": [int(v) for v in np.arange(per_batch) % 10]}
        with open(base / name, "wb") as f:
            pickle.dump(d, f)
    return base


def test_cifar10_folder(tmp_path):
    base = _write_cifar10(tmp_path)
    s = D.load_splits("cifar10", tmp_path)
    assert (len(s.train) + len(s.valid), len(s.test)) == (100, 20)
    assert s.image_shape == (3, 32, 32) and s.mean == D.CIFAR10_MEAN and s.augment
    with open(base / "data_batch_1", "rb") as f:
        first = pickle.load(f, encoding="bytes")[b"data"][0]
    full = D.load_cifar("cifar10", base)[0]  # the folder itself also works
    assert np.array_equal(full.images[0].numpy().ravel(), first)


def test_cifar_corrupt_batch(tmp_path):
    base = _write_cifar10(tmp_path)
    (base / "data_batch_3").write_bytes(b"\x80\x04garbage")
    with pytest.raises(ValueError, match="data_batch_3"):
        D.load_splits("cifar10", tmp_path)
    (base / "data_batch_3").unlink()
    with pytest.raises(FileNotFoundError, match="data_batch_3"):
        D.load_splits("cifar10", tmp_path)


def test_cifar100_folder(tmp_path):
    base = tmp_path / "cifar-100-python"
    base.mkdir()
    rng = np.random.default_rng(0)
    for name, n in (("train", 200), ("test", 50)):
        with open(base / name, "wb") as f:
            pickle.dump({b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                         b"fine_labels": [i % 100 for i in range(n)],
                         b"coarse_labels": [i % 20 for i in range(n)]}, f)
    s = D.load_splits("cifar100", tmp_path)
    assert s.num_classes == 100 and len(s.test) == 50 and s.mean == D.CIFAR100_MEAN


def test_cifar_offline_download_error(tmp_path, monkeypatch):
    calls = []

    def offline(url, *a, **k):
        calls.append(url)
        raise urllib.error.URLError("Temporary failure in name resolution")

    monkeypatch.setattr(urllib.request, "urlopen", offline)
    with pytest.raises(FileNotFoundError) as e:
        D.load_splits("cifar10", tmp_path / "data")
    msg = str(e.value)
    assert "cifar-10-python.tar.gz" in msg and "offline" in msg and "npz" in msg
    assert calls == [D.CIFAR_SOURCES["cifar10"][1]]
    assert not list((tmp_path / "data").glob("*.part"))  # no half-written download left
    with pytest.raises(FileNotFoundError, match="folder not found"):
        D.load_splits("cifar10", tmp_path / "data", download=False)


def test_cifar_download_checksum_mismatch(tmp_path, monkeypatch):
    import io

    class Resp(io.BytesIO):
        def __enter__(self):
            return self

        def __exit__(self, *a):
            return False

    monkeypatch.setattr(urllib.request, "urlopen", lambda url, *a, **k: Resp(b"not a tarball"))
    with pytest.raises(ValueError, match="MD5"):
        D.load_splits("cifar100", tmp_path)
    assert not list(tmp_path.glob("*.part"))


# ------------------------------------------------------------------------------------------------
# image folders
# ------------------------------------------------------------------------------------------------
def test_imagefolder(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", 6), ("val", 2)):
        for cls, colour in (("cat", 200), ("dog", 30)):
            d = tmp_path / split / cls
            d.mkdir(parents=True)
            for i in range(n):
                arr = np.full((12, 10, 3), colour, np.uint8)
                arr[0, 0] = rng.integers(0, 256, 3)
                Image.fromarray(arr).save(d / f"{i}.png")
    (tmp_path / "train" / "cat" / "notes.txt").write_text("ignored")
    s = D.load_splits("imagefolder", tmp_path, image_size=8)
    assert (len(s.train), len(s.valid), len(s.test)) == (6, 6, 4)
    assert s.image_shape == (3, 8, 8) and s.info["class_names"] == ["cat", "dog"]
    x = s.train.get(torch.arange(len(s.train)))
    # the centre pixel keeps the class colour after resizing
    assert all(int(x[i, 0, 4, 4]) == (200 if int(s.train.labels[i]) == 0 else 30)
               for i in range(len(s.train)))
    (tmp_path / "train" / "dog" / "broken.png").write_bytes(b"not a png")
    s2 = D.load_splits("imagefolder", tmp_path, image_size=8, valid_fraction=0.25)
    with pytest.raises(ValueError, match="broken.png"):
        s2.train.get(torch.arange(len(s2.train)))
        s2.valid.get(torch.arange(len(s2.valid)))
    with pytest.raises(FileNotFoundError):
        D.load_splits("imagefolder", tmp_path / "missing")


# ------------------------------------------------------------------------------------------------
# augmentation, normalisation, loaders
# ------------------------------------------------------------------------------------------------
def test_augment_batch_is_crop_or_flip_of_padded_input():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(1, 256, (16, 3, 6, 6), dtype=torch.uint8)
    pad = 2
    y = D.augment_batch(x, pad, g)
    assert y.shape == x.shape and y.dtype == x.dtype
    xp = torch.nn.functional.pad(x, (pad,) * 4)
    flips = shifts = 0
    for i in range(16):
        matches = [(oy, ox, f) for oy in range(2 * pad + 1) for ox in range(2 * pad + 1)
                   for f in (False, True)
                   if torch.equal((lambda c: c.flip(2) if f else c)(xp[i, :, oy:oy + 6, ox:ox + 6]), y[i])]
        assert matches, f"image {i} is not a crop/flip of its padded input"
        flips += matches[0][2]
        shifts += (matches[0][0], matches[0][1]) != (pad, pad)
    assert 0 < flips < 16 and shifts > 0


def test_normalize_oracle():
    x = torch.randint(0, 256, (2, 3, 4, 4), dtype=torch.uint8)
    mean, std = (0.1, 0.2, 0.3), (0.5, 0.25, 2.0)
    ref = (x.double() / 255 - torch.tensor(mean, dtype=torch.float64).view(1, 3, 1, 1)) / \
        torch.tensor(std, dtype=torch.float64).view(1, 3, 1, 1)
    out = D.normalize(x, mean, std)
    assert out.dtype == torch.float32
    np.testing.assert_allclose(out.double().numpy(), ref.numpy(), rtol=1e-6, atol=1e-6)


def test_loader_epochs_seeded_and_complete(tmp_path):
    p = tmp_path / "tiny.npz"
    _write_npz(p)
    s = D.load_splits("npz", p)
    sd = s.search_data()
    L = D.make_loader(sd, "train", 32, seed=1, augment=False)
    assert len(L) == 4

    def epoch(loader, e):
        loader.set_epoch(e)
        return [(x.clone(), y.clone()) for x, y in loader]

    e0, e0b, e1 = epoch(L, 0), epoch(L, 0), epoch(L, 1)
    assert all(torch.equal(a[0], b[0]) for a, b in zip(e0, e0b))
    assert not torch.equal(e0[0][0], e1[0][0])
    ys = torch.cat([y for _, y in e0])
    assert ys.numel() == 100 and torch.equal(torch.sort(ys).values, torch.sort(s.train.labels).values)
    # resuming: a fresh loader with the saved state reproduces the epoch
    L2 = D.make_loader(sd, "train", 32, seed=0)
    L2.load_state_dict(L.state_dict())
    L2.augment = False
    assert all(torch.equal(a[0], b[0]) for a, b in zip(e1, [(x, y) for x, y in L2]))
    # valid loader: no shuffle, no augmentation, index order
    V = D.make_loader(sd, "valid", 64)
    assert torch.equal(torch.cat([y for _, y in V]), s.valid.labels)


def test_loader_shards_equal_single_process(tmp_path):
    p = tmp_path / "tiny.npz"
    _write_npz(p)
    sd = D.load_splits("npz", p).search_data()
    full = D.make_loader(sd, "train", 32, seed=3, augment=True, drop_last=True)
    shards = [D.make_loader(sd, "train", 32, seed=3, augment=True, drop_last=True, num_shards=2,
                            shard_index=r) for r in range(2)]
    for (x, y), (x0, y0), (x1, y1) in zip(full, *shards):
        assert torch.equal(torch.cat([x0, x1]), x) and torch.equal(torch.cat([y0, y1]), y)
    with pytest.raises(ValueError, match="num_shards"):
        D.make_loader(sd, "train", 33, num_shards=2)


def test_fixed_batches_deterministic():
    sd = D.load_splits("digits", image_size=8, max_train=64, max_valid=40).search_data()
    a = D.fixed_batches(sd, "train", 16, num_batches=2, seed=4)
    b = D.fixed_batches(sd, "train", 16, num_batches=2, seed=4)
    assert len(a) == 2 and all(torch.equal(x, y) for (x, _), (y, _) in zip(a, b))
    v = D.fixed_batches(sd, "valid", 16)
    assert sum(y.numel() for _, y in v) == 40 and v[0][0].dtype == torch.float32


# ------------------------------------------------------------------------------------------------
# the real CIFAR-10 npz (`naslid data cifar10` builds it)
# ------------------------------------------------------------------------------------------------
@pytest.mark.data
def test_shared_cifar10_npz_nb201_protocol():
    path = SHARED_DATA / "cifar10.npz"
    if not path.is_file():
        pytest.skip(f"{path.name} absent (`naslid data cifar10` builds it): real-data test skipped")
    s = D.load_splits("npz", path, seed=0)
    assert (len(s.train), len(s.valid), len(s.test)) == (25000, 25000, 10000)
    assert torch.bincount(s.train.labels).tolist() == [2500] * 10
    assert torch.bincount(s.valid.labels).tolist() == [2500] * 10
    assert s.image_shape == (3, 32, 32) and s.num_classes == 10
    # CIFAR-10 channel means are ~(0.49, 0.48, 0.45)
    np.testing.assert_allclose(s.mean, D.CIFAR10_MEAN, atol=0.01)
