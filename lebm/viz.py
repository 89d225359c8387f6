"""Pictures: image grids (Pillow), training curves and 2-D scatter plots (matplotlib)."""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lebm.io import atomic_write


def image_grid(images: torch.Tensor, nrow: int | None = None, pad: int = 2) -> np.ndarray:
    """Tile ``(B, C, H, W)`` images in [-1, 1] into one uint8 ``(H', W', C)`` array."""
    if images.dim() != 4:
        raise ValueError(f"image_grid expects (B, C, H, W), got shape {tuple(images.shape)}")
    x = ((images.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    b, c, h, w = x.shape
    nrow = nrow or max(1, math.ceil(math.sqrt(b)))
    ncol = math.ceil(b / nrow)
    grid = np.full((ncol * (h + pad) + pad, nrow * (w + pad) + pad, c), 255, dtype=np.uint8)
    arr = x.permute(0, 2, 3, 1).numpy()
    for i in range(b):
        r, col = divmod(i, nrow)
        top, left = pad + r * (h + pad), pad + col * (w + pad)
        grid[top:top + h, left:left + w] = arr[i]
    return grid


def save_image_grid(images: torch.Tensor, path: str | os.PathLike, nrow: int | None = None,
                    scale: int | None = None) -> Path:
    """Save a grid of images in [-1, 1] as PNG; small images are upscaled for viewing."""
    from PIL import Image

    grid = image_grid(images, nrow)
    img = Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid)
    scale = scale or max(1, 256 // max(images.shape[-1], 1) // 4)
    if scale > 1:
        img = img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST)
    path = Path(path)
    atomic_write(path, lambda tmp: img.save(tmp, format="PNG"))
    return path


def save_pairs_grid(originals: torch.Tensor, reconstructions: torch.Tensor,
                    path: str | os.PathLike) -> Path:
    """Save (original, reconstruction) pairs side by side, about √n pairs per row."""
    if originals.shape != reconstructions.shape:
        raise ValueError("originals and reconstructions must have the same shape")
    paired = torch.stack([originals, reconstructions], 1).flatten(0, 1)
    pairs_per_row = max(1, math.ceil(math.sqrt(len(originals))))
    return save_image_grid(paired, path, nrow=2 * pairs_per_row)


def save_layer_figure(panels: Sequence[torch.Tensor], titles: Sequence[str],
                      path: str | os.PathLike) -> Path:
    """One panel per latent layer, side by side: each ``(rows, cols, C, H, W)`` images in
    [-1, 1] (a row per prior sample, its first column the sample itself and the others with
    that panel's layer redrawn)."""
    if len(panels) != len(titles) or not panels:
        raise ValueError("save_layer_figure needs one title per panel, at least one panel")
    plt = _pyplot()
    rows, cols = panels[0].shape[:2]
    fig, axes = plt.subplots(1, len(panels), figsize=(0.55 * cols * len(panels) + 0.5,
                                                        0.55 * rows + 0.6), squeeze=False)
    for ax, panel, title in zip(axes[0], panels, titles):
        grid = image_grid(panel.flatten(0, 1), nrow=cols)
        ax.imshow(grid[..., 0] if grid.shape[-1] == 1 else grid, cmap="gray",
                  interpolation="nearest")
        ax.set_title(title, fontsize=9)
        ax.set_xticks([])
        ax.set_yticks([])
    return _save_figure(fig, path)


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save_figure(fig: Any, path: str | os.PathLike) -> Path:
    """Lay out, write atomically as PNG, and close a matplotlib figure."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    path = Path(path)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
    plt.close(fig)
    return path


def _scatter_by_class(ax: Any, p: np.ndarray, classes: torch.Tensor, s: float,
                      alpha: float) -> None:
    """2-D points coloured by integer class, one fixed colour per class (tab10)."""
    c = classes.detach().cpu().numpy()
    ax.scatter(p[:, 0], p[:, 1], s=s, alpha=alpha, c=c, cmap="tab10", vmin=0,
               vmax=max(9, int(c.max())))


def save_scatter(points: dict[str, torch.Tensor], path: str | os.PathLike,
                 title: str = "", colours: dict[str, torch.Tensor] | None = None) -> Path:
    """Scatter 2-D point sets (e.g. data vs samples) side by side with shared axes.

    ``colours[name]`` (integer labels, one per point) colours a panel by class.
    """
    plt = _pyplot()
    n = len(points)
    fig, axes = plt.subplots(1, n, figsize=(4 * n, 4), sharex=True, sharey=True)
    axes = np.atleast_1d(axes)
    for ax, (name, pts) in zip(axes, points.items()):
        p = pts.detach().float().cpu().numpy()
        if colours and name in colours:
            _scatter_by_class(ax, p, colours[name], s=3, alpha=0.6)
        else:
            ax.scatter(p[:, 0], p[:, 1], s=3, alpha=0.5)
        ax.set_title(name)
        ax.set_aspect("equal")
    if title:
        fig.suptitle(title)
    return _save_figure(fig, path)


def save_density(log_density: torch.Tensor, extent: float, path: str | os.PathLike,
                 points: torch.Tensor | None = None, title: str = "",
                 point_classes: torch.Tensor | None = None) -> Path:
    """Heat map of an unnormalised 2-D log-density on ``[-extent, extent]²`` (rows = y).

    The density is normalised over the grid for display; ``points`` are overlaid, white,
    or coloured by ``point_classes`` (integer labels, one per point).
    """
    plt = _pyplot()
    logp = log_density.detach().double().cpu()
    prob = torch.exp(logp - torch.logsumexp(logp.flatten(), 0)).numpy()
    fig, ax = plt.subplots(figsize=(4.5, 4))
    im = ax.imshow(prob, origin="lower", extent=(-extent, extent, -extent, extent),
                   cmap="viridis")
    if points is not None:
        p = points.detach().float().cpu().numpy()
        if point_classes is None:
            ax.scatter(p[:, 0], p[:, 1], s=2, c="white", alpha=0.5)
        else:
            _scatter_by_class(ax, p, point_classes, s=4, alpha=0.8)
    ax.set_xlim(-extent, extent)
    ax.set_ylim(-extent, extent)
    fig.colorbar(im, ax=ax, fraction=0.046)
    ax.set_title(title, fontsize="medium" if len(title) < 40 else "small")
    return _save_figure(fig, path)


def read_metrics(path: str | os.PathLike) -> list[dict]:
    """Read ``metrics.jsonl`` (skips a torn last line)."""
    rows: list[dict] = []
    p = Path(path)
    if not p.exists():
        return rows
    for line in p.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return rows


def plot_curves(rows: Sequence[dict], groups: dict[str, Sequence[str]],
                path: str | os.PathLike, log_y: Sequence[str] = ()) -> Path | None:
    """One panel per group of metric names, against ``step``; ``None`` if nothing to plot."""
    groups = {g: [k for k in keys if any(k in r for r in rows)] for g, keys in groups.items()}
    groups = {g: ks for g, ks in groups.items() if ks}
    if not groups:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(groups), figsize=(5 * len(groups), 3.5))
    for ax, (title, keys) in zip(np.atleast_1d(axes), groups.items()):
        for k in keys:
            xs = [r["step"] for r in rows if k in r]
            ys = [r[k] for r in rows if k in r]
            ax.plot(xs, ys, label=k, lw=1)
        ax.set_title(title)
        ax.set_xlabel("step")
        if title in log_y:
            ax.set_yscale("symlog")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    return _save_figure(fig, path)


def plot_chain_traces(traces: dict[str, dict[str, np.ndarray]], path: str | os.PathLike,
                      marks: dict[str, int] | None = None) -> Path:
    """Per-step chain diagnostics, one column per chain: mean log-density (with the 10–90 %
    band over the batch) and mean ‖∇ log p‖. ``traces[name]`` holds ``(n_steps, batch)``
    arrays ``log_density`` and ``grad_norm``; ``marks[name]`` draws a line at a step (e.g.
    the training chain length)."""
    plt = _pyplot()
    fig, axes = plt.subplots(2, len(traces), figsize=(5 * len(traces), 6), squeeze=False)
    for col, (name, tr) in enumerate(traces.items()):
        for row, (key, label) in enumerate((("log_density", "log p̃ (unnormalised)"),
                                            ("grad_norm", "‖∇ log p̃‖"))):
            ax = axes[row, col]
            a = np.asarray(tr[key], dtype=np.float64)
            steps = np.arange(1, a.shape[0] + 1)
            ax.plot(steps, a.mean(1), lw=1.2, label="mean")
            lo, hi = np.percentile(a, [10, 90], axis=1)
            ax.fill_between(steps, lo, hi, alpha=0.25, label="10–90 %")
            if marks and name in marks:
                ax.axvline(marks[name], color="k", ls="--", lw=0.8, label="training length")
            ax.set_title(f"{name} chain: {label}")
            ax.set_xlabel("Langevin step")
            if key == "log_density" and np.ptp(a.mean(1)) > 50:
                ax.set_yscale("symlog")
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
    return _save_figure(fig, path)
