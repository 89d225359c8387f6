"""lebm: latent-space energy-based generative models.

    >>> import lebm
    >>> model = lebm.load("runs/demo")        # the latest checkpoint of a run
    >>> x = model.sample(16)                   # prior Langevin, then the generator
    >>> z = model.infer(x)                     # posterior Langevin
    >>> x_hat = model.reconstruct(x)
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from lebm._version import __version__

if TYPE_CHECKING:
    from lebm.models import LatentModel


def load(path: str | os.PathLike, map_location: str | torch.device = "cpu") -> LatentModel:
    """Load a model from a run folder (its latest checkpoint) or a model folder.

    A model folder is what ``model.save_pretrained(dir)`` writes (``config.json`` +
    ``model.safetensors``); a run folder is what ``lebm train`` writes. Any registered model
    class (``lebm.models.MODEL_CLASSES``) loads.
    """
    from lebm.errors import CheckpointError
    from lebm.models import MODEL_FORMAT, load_model
    from lebm.train.checkpoint import latest_checkpoint

    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"{p} does not exist")
    fmt = None
    if (p / "config.json").is_file():
        try:
            fmt = json.loads((p / "config.json").read_text()).get("format")
        except json.JSONDecodeError as exc:
            raise CheckpointError(f"{p / 'config.json'} is not valid JSON: {exc}") from exc
    if fmt == MODEL_FORMAT:
        return load_model(p, map_location).eval()
    if (p / "checkpoints").is_dir():
        return load_model(latest_checkpoint(p), map_location).eval()
    raise CheckpointError(f"{p} is neither a lebm run folder nor a model folder")


__all__ = ["__version__", "load"]
