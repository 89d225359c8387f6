"""Data sets for lebm: images, toy 2-D densities, tables (wine, breast-cancer, any CSV),
with download and cache helpers.

Stands alone: imports nothing from the rest of ``lebm``.

>>> import torch
>>> from lebm.data import load_dataset
>>> ds = load_dataset("digits", "train")
>>> x = ds.batch(torch.arange(64))      # float32 (64, 1, 8, 8) in [-1, 1]
"""

from .dataset import ArrayDataset, DatasetNotFoundError
from .download import RESOURCES, DownloadError, Resource, cache_dir, download
from .formats import CorruptFileError
from .load import DATASETS, load_dataset, splits

__all__ = [
    "DATASETS",
    "RESOURCES",
    "ArrayDataset",
    "CorruptFileError",
    "DatasetNotFoundError",
    "DownloadError",
    "Resource",
    "cache_dir",
    "download",
    "load_dataset",
    "splits",
]
