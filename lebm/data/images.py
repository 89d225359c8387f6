"""Image operations with Pillow: resizing uint8 arrays and loading folders of image files."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
PROGRESS_THRESHOLD = 2000  # show a progress bar when loading more files than this

_BILINEAR = getattr(Image, "Resampling", Image).BILINEAR


def _to_pil(image: np.ndarray) -> Image.Image:
    """(C, H, W) uint8 with C in {1, 3} -> a Pillow image."""
    if image.shape[0] == 1:
        return Image.fromarray(np.ascontiguousarray(image[0]))
    return Image.fromarray(np.ascontiguousarray(image.transpose(1, 2, 0)))


def _from_pil(image: Image.Image, channels: int) -> np.ndarray:
    """A Pillow image -> (C, H, W) uint8."""
    array = np.asarray(image, dtype=np.uint8)
    if channels == 1:
        return array[None]
    return array.transpose(2, 0, 1)


def resize_images(images: np.ndarray, size: int) -> np.ndarray:
    """Resize ``(N, C, H, W)`` uint8 images to ``size x size`` with Pillow's bilinear filter.

    Pillow's resampling filters widen with the scale factor when shrinking, so this is
    anti-aliased. Non-square images are stretched; crop first to keep the aspect ratio.
    """
    n, c, h, w = images.shape
    if (h, w) == (size, size):
        return images
    if c not in (1, 3):
        raise ValueError(f"image_size: can only resize 1- or 3-channel images, got {c} channels")
    out = np.empty((n, c, size, size), dtype=np.uint8)
    for i in range(n):
        out[i] = _from_pil(_to_pil(images[i]).resize((size, size), _BILINEAR), c)
    return out


def center_crop_square(image: Image.Image) -> Image.Image:
    """Crop the largest centred square out of ``image``."""
    w, h = image.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    return image.crop((left, top, left + side, top + side))


def list_images(folder: str | os.PathLike[str]) -> list[Path]:
    """All ``.png``/``.jpg``/``.jpeg`` files under ``folder`` (recursive), in sorted order."""
    folder = Path(folder)
    files = [p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file()]
    return sorted(files, key=lambda p: p.relative_to(folder).as_posix())


def _progress(paths: Sequence[Path], desc: str) -> Iterable[Path]:
    """Wrap ``paths`` in a tqdm bar when there are many of them (and tqdm is installed)."""
    if len(paths) <= PROGRESS_THRESHOLD:
        return paths
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency, but stay usable without it
        return paths
    return tqdm(paths, desc=desc, unit="img")


def load_image_files(paths: Sequence[Path], size: int, desc: str = "loading images") -> np.ndarray:
    """Load image files as RGB, centre-crop each to a square, resize to ``size``.

    Returns ``(N, 3, size, size)`` uint8.
    """
    out = np.empty((len(paths), 3, size, size), dtype=np.uint8)
    for i, path in enumerate(_progress(paths, desc)):
        with Image.open(path) as img:
            square = center_crop_square(img.convert("RGB"))
            if square.size != (size, size):
                square = square.resize((size, size), _BILINEAR)
            out[i] = _from_pil(square, 3)
    return out
