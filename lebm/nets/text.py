"""Sentence networks: a GRU decoder ``p(x | z)`` over token ids and a bidirectional GRU
encoder ``q(z | x)`` (REFERENCE §2.3, the PTB row).

Token data follow ``lebm.data.text``: ``x`` is ``(batch, T)`` int64, each sentence's ids then
``<eos>`` (id 1), padded with ``-1``; ``<bos>`` (id 0) is the decoder's first input.

The decoder is **autoregressive**: its logits for ``x_t`` read ``x_1 … x_{t−1}`` as well as
``z`` (teacher forcing),

    h_0 = tanh(W_h z + b),   h_t = GRU(h_{t−1}, [e(x_{t−1}); z]),   logits_t = E · P(drop(h_t))

with ``e`` the embedding (``E`` its matrix, tied to the output layer) and ``P`` a projection
to the embedding size. So it is called as ``g(z, x)`` and has ``reads_data = True``: the model
then passes the data to it wherever a likelihood is evaluated, and decodes by
``generate_tokens`` (greedy or sampled) where other generators are simply called.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from lebm.data.text import PAD, Vocabulary

BOS, EOS = Vocabulary.bos, Vocabulary.eos


def _inputs(x: torch.Tensor) -> torch.Tensor:
    """The decoder's inputs for targets ``x``: ``<bos>, x_1 … x_{T−1}``, padding → ``<eos>``
    (its positions are masked in the likelihood, so the id is only a placeholder)."""
    shifted = torch.cat([torch.full_like(x[:, :1], BOS), x[:, :-1]], 1)
    return shifted.clamp_min(0)


def _init_uniform(module: nn.Module, scale: float) -> None:
    """Every parameter uniform in ``±scale`` (the text models' initialisation, §2.3)."""
    for p in module.parameters():
        nn.init.uniform_(p, -scale, scale)


class GRUDecoder(nn.Module):
    """``p(x | z)`` over sentences: a one-layer GRU reading ``[e(x_{t−1}); z]``, initial state
    from ``z``, output embeddings tied to the input ones (see the module)."""

    reads_data = True

    def __init__(self, n_z: int, vocab_size: int, embed_dim: int = 512, hidden_dim: int = 512,
                 dropout: float = 0.3, init_scale: float = 0.1) -> None:
        super().__init__()
        if vocab_size < 3:
            raise ValueError(f"a GRU decoder needs a vocabulary of >= 3 ids, got {vocab_size}")
        self.n_z, self.vocab_size = n_z, vocab_size
        self.embed = nn.Embedding(vocab_size, embed_dim)
        self.init_state = nn.Linear(n_z, hidden_dim)
        self.gru = nn.GRU(embed_dim + n_z, hidden_dim, batch_first=True)
        self.project = nn.Linear(hidden_dim, embed_dim)
        self.out_bias = nn.Parameter(torch.zeros(vocab_size))
        self.drop = nn.Dropout(dropout)
        _init_uniform(self, init_scale)

    def _step_logits(self, h: torch.Tensor) -> torch.Tensor:
        """Logits over the ids; ``<bos>`` is never an output (−inf), so ``p(x | z)`` is a
        distribution over the sentences that can occur."""
        logits = F.linear(self.project(self.drop(h)), self.embed.weight, self.out_bias)
        logits[..., BOS] = float("-inf")  # (linear's backward does not need its output)
        return logits

    def forward(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Logits ``(batch, T, V)`` of ``x`` given ``z`` (teacher forcing)."""
        if x.dim() != 2:
            raise ValueError(f"a GRU decoder reads token ids (batch, T), got {tuple(x.shape)}")
        if x.shape[0] != z.shape[0]:
            raise ValueError(f"{z.shape[0]} latents for {x.shape[0]} sentences")
        emb = self.drop(self.embed(_inputs(x)))
        zs = z.unsqueeze(1).expand(-1, x.shape[1], -1).to(emb.dtype)
        h0 = torch.tanh(self.init_state(z)).unsqueeze(0)
        h, _ = self.gru(torch.cat([emb, zs], -1), h0)
        real = x >= 0
        if bool(real.all()):
            return self._step_logits(h)
        # the output layer (most of the cost: V = 10k) at the real positions only; padding
        # positions get zero logits, which every likelihood masks out
        logits = h.new_zeros((*x.shape, self.vocab_size))
        logits[real] = self._step_logits(h[real]).to(logits.dtype)
        return logits

    @torch.no_grad()
    def generate_tokens(self, z: torch.Tensor, max_length: int = 40, *, greedy: bool = True,
                        temperature: float = 1.0,
                        generator: torch.Generator | None = None) -> torch.Tensor:
        """Sentences for ``z``: ``(batch, ≤ max_length)`` ids, each ended by ``<eos>`` (if
        reached) and padded with ``-1``. Greedy (argmax) or sampled at ``temperature``;
        ``<bos>`` is never emitted."""
        if max_length < 1:
            raise ValueError(f"max_length must be >= 1, got {max_length}")
        if not greedy and not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        b = z.shape[0]
        h = torch.tanh(self.init_state(z)).unsqueeze(0)
        token = torch.full((b,), BOS, dtype=torch.long, device=z.device)
        done = torch.zeros(b, dtype=torch.bool, device=z.device)
        out = []
        for _ in range(max_length):
            step_in = torch.cat([self.embed(token), z.to(self.embed.weight.dtype)], -1)
            o, h = self.gru(step_in.unsqueeze(1), h)
            logits = self._step_logits(o[:, 0]).float()
            if greedy:
                token = logits.argmax(-1)
            else:
                probs = torch.softmax(logits / temperature, -1)
                token = torch.multinomial(probs, 1, generator=generator).squeeze(1)
            out.append(torch.where(done, torch.full_like(token, PAD), token))
            done |= token == EOS
            if bool(done.all()):
                break
        return torch.stack(out, 1)


class GRUEncoder(nn.Module):
    """``q(z | x) = N(μ, diag σ²)`` from a bidirectional GRU over the sentence: the last
    forward state and the first backward state (each direction's summary of the real tokens;
    padding is packed away) → linear → ``(μ, log σ²)``."""

    def __init__(self, vocab_size: int, n_z: int, embed_dim: int = 512, hidden_dim: int = 512,
                 dropout: float = 0.3, init_scale: float = 0.1) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab_size, embed_dim)
        self.gru = nn.GRU(embed_dim, hidden_dim, batch_first=True, bidirectional=True)
        self.drop = nn.Dropout(dropout)
        self.head = nn.Linear(2 * hidden_dim, 2 * n_z)
        _init_uniform(self, init_scale)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.dim() != 2:
            raise ValueError(f"a GRU encoder reads token ids (batch, T), got {tuple(x.shape)}")
        lengths = (x != PAD).sum(1).clamp_min(1)
        emb = self.drop(self.embed(x.clamp_min(0)))
        packed = nn.utils.rnn.pack_padded_sequence(emb, lengths.cpu(), batch_first=True,
                                                   enforce_sorted=False)
        _, h = self.gru(packed)  # (2, batch, hidden): forward's last, backward's first
        mu, logvar = self.head(torch.cat([h[0], h[1]], -1)).chunk(2, dim=1)
        return mu, logvar


__all__ = ["GRUDecoder", "GRUEncoder"]
