"""Text models' numbers (LEBM Table 2): NLL by importance sampling, forward and reverse
perplexity of generated sentences.

* **NLL** — ``−log p(x)`` per sentence in nats by importance sampling with ``n_samples`` draws
  (500 in the papers) from a diagonal Gaussian proposal: ``q(z|x)`` for a model whose
  inference is its encoder, else fitted to 16 posterior chains (``posterior_proposal``); the
  prior's ``log Z`` (AIS) is subtracted. ``PPL = exp(Σ NLL / Σ tokens)``, every word and each
  sentence's ``<eos>`` counted.
* **FPPL** — an LSTM language model trained on the training split (cached;
  ``lebm.metrics.text_lm``) scores ``n`` generated sentences; **RPPL** — one trained on the
  generated sentences scores the test split. The real test split's FPPL is reported beside
  them (the paper's "real data" row).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from lebm.evaluate.marginal import log_likelihood
from lebm.metrics.text_lm import (
    LMConfig,
    cached_language_model,
    perplexity,
    reverse_perplexity,
)
from lebm.models import LatentModel

IS_SAMPLES = 500  # per sentence, as the papers


def sentence_nll(model: LatentModel, x: torch.Tensor, generator: torch.Generator, *,
                 log_z: tuple[float, float], n_samples: int = IS_SAMPLES,
                 batch_size: int = 4, progress: bool = False) -> dict[str, Any]:
    """``−log p(x)`` of each sentence of ``x`` (importance sampling; see the module), with
    the per-sentence estimator errors; summed into NLL per sentence and PPL."""
    from tqdm.auto import tqdm

    nll, se = [], []
    for i in tqdm(range(0, len(x), batch_size), desc="NLL (importance sampling)",
                  disable=not progress, leave=False):
        xb = x[i:i + batch_size].to(model.device)
        ll, s = log_likelihood(model, xb, generator, method="is", n_samples=n_samples,
                               log_z=(log_z[0], 0.0))
        nll.append(-ll.double().cpu())
        se.append(s.double().cpu())
    per, err = torch.cat(nll), torch.cat(se)
    tokens = int((x >= 0).sum())
    n = len(per)
    return {"nll": float(per.mean()), "se_sentences": float(per.std() / math.sqrt(n)),
            "estimator_se_mean": float(err.mean()),
            "se_total": math.sqrt(float(per.std()) ** 2 / n + log_z[1] ** 2),
            "ppl": math.exp(float(per.sum()) / tokens), "n_tokens": tokens, "n": n,
            "log_z": log_z[0], "log_z_se": log_z[1]}


def generation_perplexities(samples: torch.Tensor, train: torch.Tensor, valid: torch.Tensor,
                            test: torch.Tensor, vocab_size: int, *,
                            config: LMConfig | None = None, cache_dir: Any = None,
                            progress: bool = False) -> dict[str, Any]:
    """FPPL and RPPL of ``samples`` (token ids, ``-1`` padded), and the real test split's
    FPPL, with the language models' recipe."""
    config = config or LMConfig()
    lm = cached_language_model(train, vocab_size, config, valid=valid, cache_dir=cache_dir,
                               progress=progress)
    fwd, real = perplexity(lm, samples), perplexity(lm, test)
    rev = reverse_perplexity(samples, test, vocab_size, config=config, progress=progress)
    return {"fppl": fwd["ppl"], "rppl": rev["ppl"], "real_fppl": real["ppl"],
            "n_samples": int(samples.shape[0]),
            "language_model": {"config": config.to_dict(), "trained_on": "training split "
                               "(FPPL; early stopping on the valid split) / the samples "
                               "(RPPL; 10 % of them held out for early stopping)"}}


__all__ = ["IS_SAMPLES", "generation_perplexities", "sentence_nll"]
