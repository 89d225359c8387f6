"""The in-memory dataset every loader returns, and the error for data that is not there."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

if TYPE_CHECKING:
    from .text import Vocabulary

PAD = -1  # the padding id of token data (lebm.data.text)


class DatasetNotFoundError(FileNotFoundError):
    """A data set's files are not on this machine; the message says how to get them."""


class ArrayDataset:
    """An in-memory dataset held as one tensor (plus optional labels).

    Images are ``uint8`` tensors of shape ``(N, C, H, W)`` with values 0..255; toy and
    tabular data are ``float32`` tensors of shape ``(N, D)`` already in model space;
    sentences are ``int64`` token ids of shape ``(N, T)``, padded with ``-1``
    (:mod:`lebm.data.text`), with their ``vocab``.
    :meth:`batch` turns any of them into a batch ready for a model: images are mapped to
    ``[-1, 1]`` by ``x / 255 * 2 - 1`` (``float32``), float data is returned unchanged, and
    sentences stay ``int64``, cut to the batch's longest sentence.

    Args:
        name: data set name (for messages and run configs).
        data: ``(N, ...)`` tensor or array, ``uint8`` images or floating-point vectors.
        targets: ``(N,)`` integer labels, or ``None`` for unlabelled data. In a
            semi-supervised set the label ``-1`` marks an example whose label is hidden
            (see :meth:`labelled_indices`).
        classes: optional class names, ``classes[k]`` naming label ``k`` (e.g. the distinct
            values of a CSV file's label column); ``None`` where labels are just numbers.
        vocab: the :class:`~lebm.data.text.Vocabulary` of token data (required for it).
    """

    UNLABELLED = -1

    def __init__(
        self,
        name: str,
        data: torch.Tensor | np.ndarray,
        targets: torch.Tensor | np.ndarray | None = None,
        classes: Sequence[str] | None = None,
        vocab: Vocabulary | None = None,
    ) -> None:
        data_t = torch.as_tensor(data)
        if data_t.dim() < 2:
            raise ValueError(
                f"{name}: data must be (N, ...) with at least 2 dims, got {tuple(data_t.shape)}"
            )
        if vocab is not None:
            if data_t.dim() != 2 or data_t.is_floating_point() or data_t.dtype == torch.bool:
                raise ValueError(f"{name}: token data must be (N, T) integer ids, got "
                                 f"{tuple(data_t.shape)} {data_t.dtype}")
            data_t = data_t.to(torch.int64)
            if data_t.numel() and (int(data_t.max()) >= len(vocab) or int(data_t.min()) < PAD):
                raise ValueError(f"{name}: token ids must be in [0, {len(vocab)}) or {PAD}")
        elif data_t.dtype != torch.uint8:
            data_t = data_t.to(torch.float32)
        targets_t = None
        if targets is not None:
            targets_t = torch.as_tensor(targets).to(torch.int64).reshape(-1)
            if targets_t.shape[0] != data_t.shape[0]:
                raise ValueError(
                    f"{name}: {data_t.shape[0]} examples but {targets_t.shape[0]} targets"
                )
            if targets_t.numel() and int(targets_t.min()) < self.UNLABELLED:
                raise ValueError(
                    f"{name}: labels must be >= 0, or -1 for an unlabelled example; "
                    f"got {int(targets_t.min())}"
                )
        names = None if classes is None else [str(c) for c in classes]
        if names is not None and targets_t is not None and targets_t.numel():
            if int(targets_t.max()) >= len(names):
                raise ValueError(
                    f"{name}: label {int(targets_t.max())} but only {len(names)} class names"
                )
        self.name = name
        self.data = data_t
        self.targets = targets_t
        self.classes = names
        self.vocab = vocab

    def __len__(self) -> int:
        return int(self.data.shape[0])

    def __repr__(self) -> str:
        if self.targets is None:
            labels = "unlabelled"
        else:
            n_labelled = len(self.labelled_indices())
            labels = "labelled" if n_labelled == len(self) else f"{n_labelled} labelled"
        dtype = str(self.data.dtype).removeprefix("torch.")
        return (
            f"ArrayDataset({self.name!r}, n={len(self)}, shape={self.sample_shape}, "
            f"{dtype}, {labels})"
        )

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """Shape of one example, e.g. ``(1, 28, 28)`` or ``(2,)``."""
        return tuple(int(s) for s in self.data.shape[1:])

    @property
    def is_tokens(self) -> bool:
        """True for sentences of token ids (``(N, T)`` int64 with a ``vocab``)."""
        return self.vocab is not None

    @property
    def is_image(self) -> bool:
        """True for ``uint8`` image data (``(N, C, H, W)``)."""
        return self.data.dtype == torch.uint8

    def batch(self, idx: torch.Tensor) -> torch.Tensor:
        """Return the batch for indices ``idx``: ``float32`` (images scaled to ``[-1, 1]``),
        or ``int64`` token ids cut to the batch's longest sentence."""
        x = self.data[idx]
        if self.is_tokens:
            if x.numel() == 0:
                return x
            longest = int((x != PAD).sum(1).max())
            return x[:, :max(longest, 1)].contiguous()
        if x.dtype == torch.uint8:
            return x.to(torch.float32).div_(255.0).mul_(2.0).sub_(1.0)
        return x.to(torch.float32)

    def labels(self, idx: torch.Tensor) -> torch.Tensor | None:
        """Return the ``int64`` labels for indices ``idx`` (``-1`` where hidden), or ``None``
        if the dataset is unlabelled."""
        if self.targets is None:
            return None
        return self.targets[idx]

    def labelled_indices(self) -> torch.Tensor:
        """``int64`` indices of the examples with a label (``>= 0``), in increasing order;
        empty when the dataset has no labels."""
        if self.targets is None:
            return torch.zeros(0, dtype=torch.int64)
        return torch.nonzero(self.targets >= 0).flatten()

    def subset(self, idx: torch.Tensor) -> ArrayDataset:
        """Return a new dataset restricted to the examples ``idx`` (in that order)."""
        idx = torch.as_tensor(idx, dtype=torch.int64)
        targets = None if self.targets is None else self.targets[idx]
        return ArrayDataset(self.name, self.data[idx], targets, self.classes, self.vocab)
