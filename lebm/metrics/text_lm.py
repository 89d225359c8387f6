"""Forward and reverse perplexity of generated sentences, scored by an LSTM language model.

Text generators are compared (Zhao et al. 2018, ARAE; Pang et al. 2020, LEBM, Table 2) with two
numbers, both computed by an independently trained LSTM language model (LM):

* **Forward perplexity (FPPL)**: an LM trained on the *real* training corpus scores the
  *generated* sentences. It is low when the samples look like real sentences (fluency), but a
  generator that repeats a few safe sentences also gets a low FPPL.
* **Reverse perplexity (RPPL)**: an LM trained on the *generated* sentences scores the *real*
  test corpus. It is low only when the samples cover the real distribution (coverage,
  diversity): an LM that never saw some kind of real sentence gives it a small probability.

Both are ``PPL = exp(sum of NLL / number of tokens)``, where the sum runs over every real
(non-padding) target token of every sentence, the final ``<eos>`` included, and the LM predicts
``x_t`` from ``<bos>, x_1, ..., x_{t-1}``. ``nll_per_token`` is the natural log of ``PPL``.

Corpora follow the conventions of :mod:`lebm.data.text`: an integer array or tensor of shape
``(N, T)``, one sentence a row, ids in ``[0, V)`` followed by ``-1`` padding. Id 0 is ``<bos>``
(never in a row; it is the LM's first input), 1 is ``<eos>`` (a sentence's last real token),
2 is ``<unk>``. A generated sentence that was cut off before its ``<eos>`` is accepted and scored
as it stands.

Caching. The FPPL language model depends only on the real data, so
:func:`cached_language_model` stores it: the key is the sha256 of a format version, the
vocabulary size, the :class:`LMConfig` and the bytes of the training and validation corpora
(trailing all-padding columns dropped, so the padding width does not matter). The entry is the
folder ``cache_dir/<key[:16]>/`` holding ``model.safetensors`` (the weights) and ``config.json``
(format, key, vocabulary size, config, validation perplexity, training history), each written
to a temporary file in that folder and renamed into place; ``config.json`` is written last and
marks the entry complete. Weights are read with safetensors only (no pickle). An unreadable or
mismatched entry is retrained and overwritten, with a warning. Without a ``cache_dir`` nothing
is cached (``lebm eval`` passes ``lebm.data.cache_dir() / "text_lm"``). The RPPL language
model is trained on the samples and is not cached unless asked.

Training is deterministic given ``LMConfig.seed`` on a given machine and thread count: the
initial weights and dropout masks come from the seeded global generator inside
:func:`torch.random.fork_rng` (the caller's random state is left as it was) and the batch order
from a separate seeded :class:`torch.Generator`.
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
import os
import tempfile
import time
import warnings
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

# the ids of lebm.data.text (lebm.metrics imports nothing else from lebm; a test checks
# that they agree)
BOS, EOS, UNK, PAD = 0, 1, 2, -1

CACHE_FORMAT = "lebm.text_lm/1"
"""Version of the cache layout and of everything that changes a trained model for a given
key; bump it to invalidate old entries."""

SOFTMAX_CHUNK = 4096
"""Most token positions whose logits are held at once (4096 x 10k words = 160 MB)."""

WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"

Corpus = np.ndarray | torch.Tensor


@dataclass
class LMConfig:
    """Architecture and training recipe of the evaluation language model.

    The defaults are a small one-layer LSTM that trains on Penn Treebank (10k words, ~42k
    sentences) on two CPU cores in tens of minutes and reaches a validation perplexity in the
    low-to-mid 100s; the model is a measuring instrument, so what matters is that it is fixed
    and reproducible, not that it is state of the art.
    """

    embed_dim: int = 256
    """Size of the word embeddings."""
    hidden_dim: int = 256
    """Size of the LSTM hidden state."""
    num_layers: int = 1
    """Number of stacked LSTM layers."""
    dropout: float = 0.3
    """Dropout on the embeddings, on the LSTM output and (if ``num_layers > 1``) between
    LSTM layers; in ``[0, 1)``."""
    tie_weights: bool = True
    """Share the input embedding with the output softmax weights. Applied only when
    ``embed_dim == hidden_dim``; otherwise the output layer has its own weights."""
    lr: float = 1e-3
    """Adam learning rate."""
    batch_size: int = 64
    """Sentences per training batch (each batch is trimmed to its longest sentence)."""
    max_epochs: int = 20
    """Most passes over the training corpus; fewer when early stopping ends training."""
    grad_clip: float = 5.0
    """Clip the gradients' global L2 norm to this value (0 disables clipping)."""
    patience: int = 2
    """With a validation corpus, stop after this many epochs without a new best validation
    perplexity; the best epoch's weights are kept."""
    seed: int = 0
    """Seed of the initial weights, the dropout masks and the batch order."""

    def __post_init__(self) -> None:
        for name in ("embed_dim", "hidden_dim", "num_layers", "batch_size", "max_epochs"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"LMConfig.{name} must be a positive integer, got {value!r}")
        if isinstance(self.patience, bool) or not isinstance(self.patience, int) \
                or self.patience < 1:
            raise ValueError(f"LMConfig.patience must be a positive integer, got {self.patience!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise ValueError(f"LMConfig.seed must be an integer, got {self.seed!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"LMConfig.dropout must be in [0, 1), got {self.dropout!r}")
        if not self.lr > 0:
            raise ValueError(f"LMConfig.lr must be positive, got {self.lr!r}")
        if not self.grad_clip >= 0:
            raise ValueError(f"LMConfig.grad_clip must be >= 0, got {self.grad_clip!r}")

    def to_dict(self) -> dict[str, Any]:
        """The fields as a JSON-ready dict."""
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> LMConfig:
        """Inverse of :meth:`to_dict`; an unknown key is a ValueError, a missing one takes
        its default."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise ValueError(f"unknown LMConfig fields: {', '.join(unknown)}")
        return cls(**d)


@dataclass
class TrainingSummary:
    """What :func:`train_language_model` did; stored as ``model.summary`` and in the cache."""

    history: list[dict[str, Any]] = field(default_factory=list)
    """Per epoch: ``epoch`` (1-based), ``train_nll_per_token`` and ``valid_ppl`` (or None)."""
    best_epoch: int = 0
    """The epoch whose weights were kept (the last one without a validation corpus)."""
    valid_ppl: float | None = None
    """Validation perplexity of the kept weights (None without a validation corpus)."""
    n_train_sentences: int = 0
    n_train_tokens: int = 0
    seconds: float = 0.0
    """Wall-clock training time."""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TrainingSummary:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known})


# --------------------------------------------------------------------------- corpora


def as_corpus(corpus: Corpus, vocab_size: int, name: str = "corpus") -> torch.Tensor:
    """``corpus`` checked and converted to a contiguous CPU int64 tensor, with the trailing
    columns that are padding in every row removed.

    Raises ValueError (naming ``name`` and the problem) unless it is a non-empty 2-D integer
    array whose entries are ids in ``[0, vocab_size)`` or ``-1`` padding, every row holding at
    least one real token and no real token after padding.
    """
    if isinstance(vocab_size, bool) or not isinstance(vocab_size, int | np.integer) \
            or vocab_size < 1:
        raise ValueError(f"vocab_size must be a positive integer, got {vocab_size!r}")
    if isinstance(corpus, torch.Tensor):
        t = corpus.detach()
        if t.dtype.is_floating_point or t.dtype.is_complex or t.dtype == torch.bool:
            raise ValueError(f"{name} must hold integer token ids, got dtype {t.dtype}")
        t = t.to("cpu", torch.int64)
    elif isinstance(corpus, np.ndarray):
        if corpus.dtype.kind not in "iu":
            raise ValueError(f"{name} must hold integer token ids, got dtype {corpus.dtype}")
        t = torch.from_numpy(corpus.astype(np.int64, copy=False))
    else:
        raise ValueError(f"{name} must be a numpy array or torch tensor of token ids, "
                         f"got {type(corpus).__name__}")
    if t.ndim != 2:
        raise ValueError(f"{name} must be 2-D (sentences, positions), got shape "
                         f"{tuple(t.shape)}")
    if t.shape[0] == 0 or t.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {tuple(t.shape)})")
    bad = (t < PAD) | (t >= vocab_size)
    if bool(bad.any()):
        row, col = (int(i) for i in bad.nonzero()[0])
        raise ValueError(f"{name} has ids out of range: {int(t[row, col])} at [{row}, {col}]; "
                         f"ids must be in [0, {vocab_size}) (vocab_size) or {PAD} for padding")
    real = t != PAD
    lengths = real.sum(1)
    if bool((lengths == 0).any()):
        row = int((lengths == 0).nonzero()[0, 0])
        raise ValueError(f"{name} row {row} has no real tokens (all padding)")
    # Padding must be a suffix: position j is real exactly when j < length.
    positions = torch.arange(t.shape[1])
    if not bool((real == (positions < lengths[:, None])).all()):
        row = int((real != (positions < lengths[:, None])).any(1).nonzero()[0, 0])
        raise ValueError(f"{name} row {row} has a real token after padding ({PAD}); "
                         "padding must come after the sentence's last token")
    return t[:, : int(lengths.max())].contiguous()


def _lengths(x: torch.Tensor) -> torch.Tensor:
    return (x != PAD).sum(1)


def _inputs(x: torch.Tensor) -> torch.Tensor:
    """The LM's inputs for targets ``x``: ``<bos>`` then ``x`` shifted right, padding → 0.

    The LSTM is causal and padding only ever follows a sentence, so what stands in for the
    padding inputs only affects outputs at padding positions, which are ignored.
    """
    bos = torch.full((x.shape[0], 1), BOS, dtype=x.dtype, device=x.device)
    return torch.cat([bos, x[:, :-1]], 1).clamp_min(0)


# --------------------------------------------------------------------------- model


class LSTMLanguageModel(nn.Module):
    """A word-level LSTM language model: embedding, LSTM, linear softmax layer."""

    summary: TrainingSummary | None

    def __init__(self, vocab_size: int, config: LMConfig | None = None) -> None:
        super().__init__()
        config = config if config is not None else LMConfig()
        if vocab_size < 1:
            raise ValueError(f"vocab_size must be positive, got {vocab_size}")
        self.vocab_size = int(vocab_size)
        self.config = config
        self.embedding = nn.Embedding(vocab_size, config.embed_dim)
        self.lstm = nn.LSTM(config.embed_dim, config.hidden_dim, config.num_layers,
                            batch_first=True,
                            dropout=config.dropout if config.num_layers > 1 else 0.0)
        self.drop = nn.Dropout(config.dropout)
        self.decoder = nn.Linear(config.hidden_dim, vocab_size)
        self.tied = config.tie_weights and config.embed_dim == config.hidden_dim
        nn.init.uniform_(self.embedding.weight, -0.1, 0.1)
        nn.init.zeros_(self.decoder.bias)
        if self.tied:
            self.decoder.weight = self.embedding.weight
        else:
            nn.init.uniform_(self.decoder.weight, -0.1, 0.1)
        self.summary = None

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        """LSTM outputs ``(B, T, hidden_dim)`` (after dropout) for the targets ``x``."""
        h, _ = self.lstm(self.drop(self.embedding(_inputs(x))))
        return self.drop(h)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(B, T, V)`` for the targets ``x`` ``(B, T)`` (teacher forcing: position
        ``t`` sees ``<bos>, x_1, ..., x_{t-1}``); rows at padding positions are meaningless."""
        return self.decoder(self.hidden(x))

    def token_nll(self, x: torch.Tensor) -> torch.Tensor:
        """NLL (nats) of each target token, ``(B, T)``, 0 at padding positions.

        The softmax layer (the costly part for a large vocabulary) runs on the real
        positions only, ``SOFTMAX_CHUNK`` of them at a time to bound the memory."""
        h = self.hidden(x)
        mask = x != PAD
        out = h.new_zeros(x.shape)
        h_real, targets = h[mask], x[mask]
        out[mask] = torch.cat([
            F.cross_entropy(self.decoder(hc), tc, reduction="none")
            for hc, tc in zip(h_real.split(SOFTMAX_CHUNK), targets.split(SOFTMAX_CHUNK))])
        return out

    def nll(self, x: torch.Tensor) -> torch.Tensor:
        """Summed NLL (nats) of each sentence, ``(B,)``, padding ignored."""
        return self.token_nll(x).sum(1)

    @staticmethod
    def token_counts(x: torch.Tensor) -> torch.Tensor:
        """Number of real (scored) tokens of each sentence, ``(B,)``."""
        return _lengths(x)


def _device_of(model: nn.Module) -> torch.device:
    return next(model.parameters()).device


def perplexity(model: LSTMLanguageModel, corpus: Corpus,
               batch_size: int = 256) -> dict[str, float | int]:
    """Perplexity of ``model`` on ``corpus``: ``ppl``, ``nll_per_token`` (nats),
    ``n_tokens`` and ``n_sentences``. Runs in eval mode without gradients (the model's mode
    is restored afterwards); sentences are batched by length, sums kept in float64."""
    x = as_corpus(corpus, model.vocab_size)
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    device = _device_of(model)
    lengths = _lengths(x)
    order = torch.argsort(lengths, descending=True, stable=True)
    was_training = model.training
    model.eval()
    total = 0.0
    try:
        with torch.no_grad():
            for start in range(0, x.shape[0], batch_size):
                idx = order[start:start + batch_size]
                batch = x[idx, : int(lengths[idx].max())].to(device)
                total += float(model.nll(batch).double().sum())
    finally:
        model.train(was_training)
    n_tokens = int(lengths.sum())
    nll = total / n_tokens
    return {"ppl": float(math.exp(nll)), "nll_per_token": float(nll), "n_tokens": n_tokens,
            "n_sentences": int(x.shape[0])}


# --------------------------------------------------------------------------- training


def _batches(x: torch.Tensor, lengths: torch.Tensor, batch_size: int,
             generator: torch.Generator) -> Iterator[torch.Tensor]:
    order = torch.randperm(x.shape[0], generator=generator)
    for start in range(0, x.shape[0], batch_size):
        idx = order[start:start + batch_size]
        yield x[idx, : int(lengths[idx].max())]


def train_language_model(train: Corpus, vocab_size: int, config: LMConfig | None = None,
                         valid: Corpus | None = None, progress: bool = True,
                         seed: int | None = None,
                         device: str | torch.device | None = None) -> LSTMLanguageModel:
    """Train an :class:`LSTMLanguageModel` on ``train`` and return it in eval mode.

    Adam on the mean per-token NLL, batches reshuffled every epoch, gradient-norm clipping.
    With ``valid``, the validation perplexity is measured after every epoch, training stops
    after ``config.patience`` epochs without improvement, and the best epoch's weights are
    returned; without it, all ``config.max_epochs`` epochs run. ``seed`` overrides
    ``config.seed``. ``model.summary`` is a :class:`TrainingSummary`. A non-finite loss is a
    FloatingPointError.
    """
    config = config if config is not None else LMConfig()
    if seed is not None:
        config = replace(config, seed=int(seed))   # so that model.config records it
    seed = config.seed
    x = as_corpus(train, vocab_size, "train")
    v = as_corpus(valid, vocab_size, "valid") if valid is not None else None
    device = torch.device(device) if device is not None else torch.device("cpu")
    lengths = _lengths(x)
    summary = TrainingSummary(n_train_sentences=int(x.shape[0]),
                              n_train_tokens=int(lengths.sum()))
    started = time.perf_counter()
    n_batches = math.ceil(x.shape[0] / config.batch_size)

    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        model = LSTMLanguageModel(vocab_size, config).to(device)
        order_gen = torch.Generator().manual_seed(seed)
        opt = torch.optim.Adam(model.parameters(), lr=config.lr)
        best_state: dict[str, torch.Tensor] | None = None
        best_ppl = math.inf
        stale = 0
        epochs = _progress_bar(range(1, config.max_epochs + 1), progress,
                               desc="LM epochs", total=config.max_epochs)
        for epoch in epochs:
            model.train()
            loss_sum, tok_sum = 0.0, 0
            batches = _progress_bar(_batches(x, lengths, config.batch_size, order_gen),
                                    progress, desc=f"LM epoch {epoch}", total=n_batches,
                                    leave=False)
            for batch in batches:
                batch = batch.to(device)
                tok_nll = model.token_nll(batch)
                n_tok = int((batch != PAD).sum())
                loss = tok_nll.sum() / n_tok
                if not torch.isfinite(loss):
                    raise FloatingPointError(
                        f"language model loss is {float(loss)} at epoch {epoch}; "
                        "try a smaller LMConfig.lr")
                opt.zero_grad(set_to_none=True)
                loss.backward()
                if config.grad_clip > 0:
                    nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
                opt.step()
                loss_sum += float(loss.detach()) * n_tok
                tok_sum += n_tok
            record: dict[str, Any] = {"epoch": epoch, "train_nll_per_token": loss_sum / tok_sum,
                                      "valid_ppl": None}
            if v is not None:
                ppl = perplexity(model, v)["ppl"]
                record["valid_ppl"] = ppl
                if ppl < best_ppl:
                    best_ppl, stale, summary.best_epoch = ppl, 0, epoch
                    best_state = copy.deepcopy(model.state_dict())
                else:
                    stale += 1
            else:
                summary.best_epoch = epoch
            summary.history.append(record)
            if hasattr(epochs, "set_postfix"):
                epochs.set_postfix(train_nll=f"{record['train_nll_per_token']:.3f}",
                                   valid_ppl="-" if v is None else f"{record['valid_ppl']:.2f}")
            if v is not None and stale >= config.patience:
                break
        if hasattr(epochs, "close"):
            epochs.close()
    if best_state is not None:
        model.load_state_dict(best_state)
        summary.valid_ppl = best_ppl
    summary.seconds = time.perf_counter() - started
    model.summary = summary
    return model.eval()


def _progress_bar(it: Any, progress: bool, **kwargs: Any) -> Any:
    if not progress:
        return it
    from tqdm.auto import tqdm

    return tqdm(it, **kwargs)


# --------------------------------------------------------------------------- cache


def language_model_cache_key(train: Corpus, vocab_size: int, config: LMConfig | None = None,
                             valid: Corpus | None = None) -> str:
    """The sha256 (hex) that names the cached LM for these arguments (see the module)."""
    config = config if config is not None else LMConfig()
    h = hashlib.sha256()

    def add(label: str, data: bytes) -> None:
        h.update(label.encode())
        h.update(len(data).to_bytes(8, "little"))
        h.update(data)

    add("format", CACHE_FORMAT.encode())
    add("vocab_size", str(int(vocab_size)).encode())
    add("config", json.dumps(config.to_dict(), sort_keys=True).encode())
    for name, corpus in (("train", train), ("valid", valid)):
        if corpus is None:
            add(name, b"none")
            continue
        t = as_corpus(corpus, vocab_size, name)
        add(name + ".shape", json.dumps(list(t.shape)).encode())
        add(name, t.numpy().astype("<i8", copy=False).tobytes())
    return h.hexdigest()


def _atomic_write(path: Path, write: Any) -> None:
    """Call ``write(tmp_path)`` for a temporary file next to ``path``, then rename it."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def save_language_model(model: LSTMLanguageModel, folder: str | os.PathLike[str],
                        key: str = "") -> None:
    """Write ``model`` to ``folder`` as ``model.safetensors`` and ``config.json``
    (atomically, the JSON last)."""
    from safetensors.torch import save_model

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    cpu_model = copy.deepcopy(model).to("cpu")
    _atomic_write(folder / WEIGHTS_FILE,
                  lambda p: save_model(cpu_model, p, metadata={"format": CACHE_FORMAT}))
    summary = model.summary or TrainingSummary()
    meta = {"format": CACHE_FORMAT, "key": key, "vocab_size": model.vocab_size,
            "config": model.config.to_dict(), "valid_ppl": summary.valid_ppl,
            "summary": summary.to_dict()}

    def write_json(p: str) -> None:
        with open(p, "w") as f:
            json.dump(meta, f, indent=2, sort_keys=True)
            f.write("\n")

    _atomic_write(folder / CONFIG_FILE, write_json)


def load_language_model(folder: str | os.PathLike[str], key: str | None = None,
                        device: str | torch.device | None = None) -> LSTMLanguageModel:
    """Read a model written by :func:`save_language_model` (safetensors, no pickle), in eval
    mode. With ``key``, the stored key must match. Any problem is a ValueError or OSError."""
    from safetensors.torch import load_model

    folder = Path(folder)
    with open(folder / CONFIG_FILE) as f:
        meta = json.load(f)
    if not isinstance(meta, dict) or meta.get("format") != CACHE_FORMAT:
        raise ValueError(f"{folder / CONFIG_FILE} is not a {CACHE_FORMAT} entry")
    if key is not None and meta.get("key") != key:
        raise ValueError(f"{folder / CONFIG_FILE} holds key {meta.get('key')!r}, not {key!r}")
    model = LSTMLanguageModel(int(meta["vocab_size"]), LMConfig.from_dict(meta["config"]))
    try:
        load_model(model, folder / WEIGHTS_FILE, strict=True)
    except Exception as e:  # safetensors raises its own error types for a damaged file
        raise ValueError(f"cannot read {folder / WEIGHTS_FILE}: {e}") from e
    if not all(bool(torch.isfinite(p).all()) for p in model.parameters()):
        raise ValueError(f"{folder / WEIGHTS_FILE} holds non-finite weights")
    model.summary = TrainingSummary.from_dict(meta.get("summary") or {})
    if device is not None:
        model.to(device)
    return model.eval()


def cached_language_model(train: Corpus, vocab_size: int, config: LMConfig | None = None,
                          valid: Corpus | None = None,
                          cache_dir: str | os.PathLike[str] | None = None,
                          progress: bool = True,
                          device: str | torch.device | None = None) -> LSTMLanguageModel:
    """The LM :func:`train_language_model` would return for these arguments, loaded from
    ``cache_dir/<key[:16]>/`` when there (see the module), else trained and saved there;
    ``cache_dir=None`` trains without a cache. A damaged or mismatched entry is retrained and
    overwritten, with a RuntimeWarning."""
    config = config if config is not None else LMConfig()
    if cache_dir is None:
        return train_language_model(train, vocab_size, config, valid=valid, progress=progress,
                                    device=device)
    key = language_model_cache_key(train, vocab_size, config, valid)
    folder = Path(cache_dir) / key[:16]
    if (folder / CONFIG_FILE).exists():
        try:
            return load_language_model(folder, key=key, device=device)
        except Exception as e:
            warnings.warn(f"cached language model in {folder} is unreadable ({e}); "
                          "retraining and overwriting it", RuntimeWarning, stacklevel=2)
    model = train_language_model(train, vocab_size, config, valid=valid, progress=progress,
                                 device=device)
    save_language_model(model, folder, key)
    return model


# --------------------------------------------------------------------------- FPPL / RPPL


def forward_perplexity(samples: Corpus, train: Corpus, vocab_size: int,
                       config: LMConfig | None = None, valid: Corpus | None = None,
                       cache_dir: str | os.PathLike[str] | None = None,
                       progress: bool = True, batch_size: int = 256,
                       device: str | torch.device | None = None) -> dict[str, float | int]:
    """Forward perplexity: an LM trained on the real ``train`` corpus (early stopping on
    ``valid`` if given; cached, see :func:`cached_language_model`) scores ``samples``.
    Returns :func:`perplexity`'s dict."""
    samples_t = as_corpus(samples, vocab_size, "samples")
    model = cached_language_model(train, vocab_size, config, valid=valid, cache_dir=cache_dir,
                                  progress=progress, device=device)
    return perplexity(model, samples_t, batch_size=batch_size)


def split_holdout(corpus: Corpus, vocab_size: int, fraction: float, seed: int = 0,
                  name: str = "corpus") -> tuple[torch.Tensor, torch.Tensor | None]:
    """A seeded random split of ``corpus`` into (fit, holdout) with ``round(fraction * N)``
    (at least 1 when ``fraction > 0``) held out; ``(corpus, None)`` when ``fraction == 0``."""
    x = as_corpus(corpus, vocab_size, name)
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"valid_fraction must be in [0, 1), got {fraction!r}")
    if fraction == 0.0:
        return x, None
    n = x.shape[0]
    n_hold = max(1, round(fraction * n))
    if n - n_hold < 1:
        raise ValueError(f"{name} has {n} sentences: too few to hold out a fraction {fraction}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    hold, fit = perm[:n_hold].sort().values, perm[n_hold:].sort().values
    return x[fit], x[hold]


def reverse_perplexity(samples: Corpus, test: Corpus, vocab_size: int,
                       config: LMConfig | None = None, valid_fraction: float = 0.1,
                       progress: bool = True, batch_size: int = 256, cache: bool = False,
                       cache_dir: str | os.PathLike[str] | None = None,
                       device: str | torch.device | None = None) -> dict[str, float | int]:
    """Reverse perplexity: an LM trained on the generated ``samples`` scores the real
    ``test`` corpus. A seeded (``config.seed``) ``valid_fraction`` of the samples is held out
    for early stopping. Not cached unless ``cache=True``. Returns :func:`perplexity`'s dict."""
    config = config if config is not None else LMConfig()
    test_t = as_corpus(test, vocab_size, "test")
    fit, hold = split_holdout(samples, vocab_size, valid_fraction, config.seed, "samples")
    if cache:
        model = cached_language_model(fit, vocab_size, config, valid=hold, cache_dir=cache_dir,
                                      progress=progress, device=device)
    else:
        model = train_language_model(fit, vocab_size, config, valid=hold, progress=progress,
                                     device=device)
    return perplexity(model, test_t, batch_size=batch_size)


__all__ = ["BOS", "CACHE_FORMAT", "EOS", "PAD", "UNK", "LMConfig", "LSTMLanguageModel",
           "TrainingSummary", "as_corpus", "cached_language_model",
           "forward_perplexity", "language_model_cache_key", "load_language_model",
           "perplexity", "reverse_perplexity", "save_language_model", "split_holdout",
           "train_language_model"]
