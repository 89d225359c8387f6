"""The LSTM language-model metric (lebm.metrics.text_lm): masking, a known-truth perplexity,
forward / reverse perplexity, the cache, determinism and input checks. Tiny vocabularies and
models, so the whole file runs in seconds on one thread."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from lebm.metrics import text_lm
from lebm.metrics.text_lm import (
    EOS,
    LMConfig,
    LSTMLanguageModel,
    cached_language_model,
    forward_perplexity,
    language_model_cache_key,
    load_language_model,
    perplexity,
    reverse_perplexity,
    save_language_model,
    split_holdout,
    train_language_model,
)

# ----------------------------------------------------------------------------- a known chain
# Ids 0 <bos>, 1 <eos>, 2 <unk> (unused), 3..5 words. A sentence starts from <bos>, draws its
# first word from START, then each next token (a word or <eos>) from the row of its last word.
V = 6
WORDS = [3, 4, 5]
START = np.array([0.6, 0.3, 0.1])                     # over WORDS
NEXT_A = np.array([[0.2, 0.1, 0.6, 0.1],              # rows: from 3, 4, 5
                   [0.3, 0.2, 0.1, 0.4],              # columns: <eos>, 3, 4, 5
                   [0.5, 0.3, 0.1, 0.1]])
# A different language on the same words: other start and other transitions.
START_B = np.array([0.1, 0.2, 0.7])
NEXT_B = np.array([[0.3, 0.5, 0.1, 0.1],
                   [0.2, 0.1, 0.1, 0.6],
                   [0.2, 0.1, 0.6, 0.1]])

TINY = LMConfig(embed_dim=16, hidden_dim=16, dropout=0.0, lr=1e-2, batch_size=64,
                max_epochs=12, patience=2, seed=0)


def sample_chain(n: int, seed: int, start: np.ndarray = START,
                 nxt: np.ndarray = NEXT_A) -> np.ndarray:
    """``n`` sentences of the chain as a padded (n, T) int64 corpus."""
    rng = np.random.default_rng(seed)
    tokens = [EOS] + WORDS                            # the columns of ``nxt``
    rows = []
    for _ in range(n):
        w = WORDS[rng.choice(3, p=start)]
        row = [w]
        while True:
            t = tokens[rng.choice(4, p=nxt[w - 3])]
            row.append(t)
            if t == EOS:
                break
            w = t
        rows.append(row)
    out = np.full((n, max(map(len, rows))), -1, dtype=np.int64)
    for i, r in enumerate(rows):
        out[i, :len(r)] = r
    return out


def entropy(p: np.ndarray) -> float:
    return float(-(p * np.log(p)).sum())


def true_ppl(start: np.ndarray = START, nxt: np.ndarray = NEXT_A) -> float:
    """The chain's perplexity per token, exactly: exp(E[sentence NLL] / E[tokens]).

    Expected visits to the words are v = start (I - Q)^-1 with Q the word-to-word part of
    ``nxt``; every visit (and <bos>) emits one token, so E[tokens] = 1 + sum(v) and
    E[NLL] = H(start) + sum_w v_w H(nxt_w). This is the limit of the corpus perplexity."""
    q = nxt[:, 1:]
    visits = start @ np.linalg.inv(np.eye(3) - q)
    nll = entropy(start) + sum(v * entropy(row) for v, row in zip(visits, nxt))
    return math.exp(nll / (1.0 + visits.sum()))


def oracle_ppl(corpus: np.ndarray, start: np.ndarray = START, nxt: np.ndarray = NEXT_A) -> float:
    """Perplexity of the true chain on ``corpus`` (the best any model can do on it)."""
    col = {EOS: 0, 3: 1, 4: 2, 5: 3}
    nll, n = 0.0, 0
    for row in corpus:
        row = row[row >= 0]
        nll -= math.log(start[row[0] - 3])
        for a, b in zip(row[:-1], row[1:]):
            nll -= math.log(nxt[a - 3, col[int(b)]])
        n += len(row)
    return math.exp(nll / n)


@pytest.fixture(autouse=True)
def _one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def chain_a():
    return {"train": sample_chain(3000, 1), "valid": sample_chain(500, 2),
            "test": sample_chain(2000, 3)}


@pytest.fixture(scope="module")
def model_a(chain_a):
    torch.set_num_threads(1)
    return train_language_model(chain_a["train"], V, TINY, valid=chain_a["valid"],
                                progress=False)


# ----------------------------------------------------------------------------- masking


def test_padding_contributes_nothing(monkeypatch):
    torch.manual_seed(0)
    model = LSTMLanguageModel(V, TINY).eval()
    x = torch.tensor([[3, 4, 5, 1], [4, 1, -1, -1]])
    wide = torch.cat([x, torch.full((2, 5), -1)], 1)
    with torch.no_grad():
        a, b = model.nll(x), model.nll(wide)
        alone = model.nll(x[1:, :2])
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(a[1:], alone)      # batch-mates and padding do not matter
    assert model.token_counts(wide).tolist() == [4, 2]
    # nll agrees with the full logits of forward()
    with torch.no_grad():
        logp = torch.log_softmax(model(wide), -1)
    manual = -sum(float(logp[0, t, int(x[0, t])]) for t in range(4))
    assert float(a[0]) == pytest.approx(manual, rel=1e-5)
    monkeypatch.setattr(text_lm, "SOFTMAX_CHUNK", 3)   # the softmax in chunks: same numbers
    with torch.no_grad():
        torch.testing.assert_close(model.nll(wide), a)


def test_perplexity_formula_on_a_uniform_model():
    model = LSTMLanguageModel(V, TINY)
    with torch.no_grad():
        model.embedding.weight.zero_()            # tied: the softmax weights are zero too
        model.decoder.bias.zero_()
    corpus = np.array([[3, 4, 1, -1, -1], [5, 1, -1, -1, -1], [3, 3, 3, 4, 1]])
    out = perplexity(model, corpus, batch_size=2)
    assert out == {"ppl": pytest.approx(V), "nll_per_token": pytest.approx(math.log(V)),
                   "n_tokens": 10, "n_sentences": 3}
    assert all(type(out[k]) is t for k, t in
               [("ppl", float), ("nll_per_token", float), ("n_tokens", int),
                ("n_sentences", int)])


def test_perplexity_does_not_depend_on_batching_and_restores_mode(model_a, chain_a):
    model_a.train()
    a = perplexity(model_a, chain_a["test"][:300], batch_size=7)
    assert model_a.training
    model_a.eval()
    b = perplexity(model_a, torch.from_numpy(chain_a["test"][:300]), batch_size=256)
    assert a["ppl"] == pytest.approx(b["ppl"], rel=1e-6)
    assert a["n_tokens"] == int((chain_a["test"][:300] >= 0).sum())


# ----------------------------------------------------------------------------- known truth


def test_perplexity_matches_the_true_entropy_rate(model_a, chain_a):
    """The LM learns the chain: its test perplexity is within 5 % of the exact one.

    Why 5 %: the test set has ~8k tokens, so the sampling error of log-PPL is about
    sd(token NLL) / sqrt(8k) ~ 0.9 / 90 = 0.01 (1 %); the estimation error of ~12 free
    probabilities from ~12k training tokens is ~12 / (2 * 12k) = 0.0005 nats. 5 % leaves
    room for an imperfect optimiser yet fails a model that learned e.g. only the unigram
    frequencies (about 29 % worse here). Against the true chain's perplexity on the *same*
    test set the sampling error cancels, so that comparison can be tighter (2 %). Over four
    other data/model seeds the LM came within 0.3-0.7 % of both."""
    truth = true_ppl()
    got = perplexity(model_a, chain_a["test"])["ppl"]
    oracle = oracle_ppl(chain_a["test"])
    assert oracle == pytest.approx(truth, rel=0.03)   # the test set is typical
    assert got == pytest.approx(truth, rel=0.05)
    assert oracle * 0.99 <= got <= oracle * 1.02       # nobody beats the true chain
    assert got < 0.6 * V                               # far from a uniform model (PPL = V)
    assert model_a.summary is not None and model_a.summary.valid_ppl is not None
    assert model_a.summary.valid_ppl == pytest.approx(truth, rel=0.05)


def test_unigram_model_is_outside_the_tolerance(chain_a):
    """The 5 % tolerance above is meaningful: ignoring the context costs more than that."""
    tr = chain_a["train"]
    counts = np.bincount(tr[tr >= 0], minlength=V).astype(float)
    p = counts / counts.sum()
    te = chain_a["test"]
    unigram = math.exp(-np.log(p[te[te >= 0]]).mean())
    assert unigram > 1.2 * true_ppl()


# ----------------------------------------------------------------------------- FPPL / RPPL


def test_lm_of_another_language_scores_real_data_worse(model_a, chain_a):
    other = train_language_model(sample_chain(2000, 4, START_B, NEXT_B), V, TINY,
                                 valid=sample_chain(300, 5, START_B, NEXT_B), progress=False)
    own = perplexity(model_a, chain_a["test"])["ppl"]
    foreign = perplexity(other, chain_a["test"])["ppl"]
    assert foreign > 1.2 * own


def test_forward_and_reverse_perplexity(chain_a, tmp_path):
    good = sample_chain(1500, 10)                        # a perfect generator's samples
    bad = sample_chain(1500, 11, START_B, NEXT_B)        # a generator of another language
    # Forward: the LM of the real data finds the foreign samples less fluent.
    fppl_good = forward_perplexity(good, chain_a["train"], V, TINY, valid=chain_a["valid"],
                                   cache_dir=tmp_path, progress=False)
    fppl_bad = forward_perplexity(bad, chain_a["train"], V, TINY, valid=chain_a["valid"],
                                  cache_dir=tmp_path, progress=False)   # from the cache
    assert fppl_bad["ppl"] > 1.2 * fppl_good["ppl"]
    assert fppl_good["ppl"] == pytest.approx(true_ppl(), rel=0.05)
    assert fppl_good["n_sentences"] == 1500
    assert len(list(tmp_path.iterdir())) == 1                           # one LM trained
    # Reverse: an LM trained on the foreign samples explains the real test set worse.
    rppl_good = reverse_perplexity(good, chain_a["test"], V, TINY, progress=False)
    rppl_bad = reverse_perplexity(bad, chain_a["test"], V, TINY, progress=False)
    assert rppl_bad["ppl"] > 1.2 * rppl_good["ppl"]
    assert rppl_good["ppl"] == pytest.approx(true_ppl(), rel=0.07)   # 1350 training sentences


def test_reverse_perplexity_sees_mode_collapse(chain_a):
    """Samples that never use word 5 are fluent (low FPPL) but miss part of the language,
    so the LM trained on them gives the real test set a higher perplexity."""
    real = sample_chain(3000, 20)
    collapsed = real[~(real == 5).any(1)]             # ~1400 sentences
    full = real[:len(collapsed)]
    assert oracle_ppl(collapsed) < true_ppl()          # "fluent" under the true chain
    r_full = reverse_perplexity(full, chain_a["test"], V, TINY, progress=False)["ppl"]
    r_coll = reverse_perplexity(collapsed, chain_a["test"], V, TINY, progress=False)["ppl"]
    assert r_coll > 1.2 * r_full


# ----------------------------------------------------------------------------- cache


SMALL = LMConfig(embed_dim=8, hidden_dim=8, dropout=0.1, lr=1e-2, batch_size=32,
                 max_epochs=2, patience=1, seed=0)


def _state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in model.state_dict().items()}


def test_cache_reuses_the_trained_model(tmp_path, monkeypatch):
    train, valid = sample_chain(200, 30), sample_chain(50, 31)
    first = cached_language_model(train, V, SMALL, valid=valid, cache_dir=tmp_path,
                                  progress=False)
    key = language_model_cache_key(train, V, SMALL, valid)
    entry = tmp_path / key[:16]
    meta = json.loads((entry / "config.json").read_text())
    assert meta["key"] == key and meta["vocab_size"] == V
    assert LMConfig.from_dict(meta["config"]) == SMALL
    assert meta["valid_ppl"] == pytest.approx(first.summary.valid_ppl)
    assert sorted(p.name for p in entry.iterdir()) == ["config.json", "model.safetensors"]

    def no_training(*args, **kwargs):
        raise AssertionError("trained although the model is cached")

    monkeypatch.setattr(text_lm, "train_language_model", no_training)
    # the same corpus as a tensor with extra padding columns has the same key
    wider = torch.cat([torch.from_numpy(train), torch.full((200, 3), -1)], 1)
    second = cached_language_model(wider, V, SMALL, valid=valid, cache_dir=tmp_path,
                                   progress=False)
    for k, v in _state(first).items():
        torch.testing.assert_close(second.state_dict()[k], v, rtol=0, atol=0)
    assert not second.training
    assert second.summary.valid_ppl == pytest.approx(first.summary.valid_ppl)
    assert perplexity(second, valid)["ppl"] == pytest.approx(first.summary.valid_ppl, rel=1e-6)


def test_cache_key_changes_with_its_inputs():
    train, valid = sample_chain(100, 40), sample_chain(20, 41)
    key = language_model_cache_key(train, V, SMALL, valid)
    assert key == language_model_cache_key(torch.from_numpy(train), V, SMALL,
                                           valid.astype(np.int32))
    others = {
        language_model_cache_key(train, V, LMConfig(**{**SMALL.to_dict(), "seed": 1}), valid),
        language_model_cache_key(train, V, LMConfig(**{**SMALL.to_dict(), "lr": 2e-2}), valid),
        language_model_cache_key(train, V + 1, SMALL, valid),
        language_model_cache_key(train, V, SMALL, None),
        language_model_cache_key(train[:-1], V, SMALL, valid),
        language_model_cache_key(valid, V, SMALL, train),
    }
    assert key not in others and len(others) == 6


@pytest.mark.parametrize("damage", ["garbage", "truncated", "json"])
def test_corrupt_cache_entry_is_retrained(tmp_path, damage):
    train = sample_chain(100, 50)
    first = cached_language_model(train, V, SMALL, cache_dir=tmp_path, progress=False)
    entry = tmp_path / language_model_cache_key(train, V, SMALL)[:16]
    weights = entry / "model.safetensors"
    if damage == "garbage":
        weights.write_bytes(b"not a safetensors file")
    elif damage == "truncated":
        weights.write_bytes(weights.read_bytes()[:100])
    else:
        (entry / "config.json").write_text("{not json")
    with pytest.warns(RuntimeWarning, match="unreadable"):
        again = cached_language_model(train, V, SMALL, cache_dir=tmp_path, progress=False)
    for k, v in _state(first).items():                 # deterministic retraining
        torch.testing.assert_close(again.state_dict()[k], v, rtol=0, atol=0)
    load_language_model(entry)                         # the entry was overwritten
    assert not [p for p in entry.iterdir() if p.suffix == ".tmp"]


def test_save_and_load_untied_model(tmp_path):
    cfg = LMConfig(embed_dim=6, hidden_dim=10, num_layers=2, dropout=0.2, max_epochs=1)
    model = LSTMLanguageModel(V, cfg)
    assert not model.tied
    save_language_model(model, tmp_path / "m", key="k")
    loaded = load_language_model(tmp_path / "m", key="k")
    for k, v in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[k], v, rtol=0, atol=0)
    with pytest.raises(ValueError, match="key"):
        load_language_model(tmp_path / "m", key="other")


def test_ids_agree_with_the_data_layer():
    from lebm.data.text import PAD, Vocabulary

    assert (text_lm.BOS, text_lm.EOS, text_lm.UNK, text_lm.PAD) == (
        Vocabulary.bos, Vocabulary.eos, Vocabulary.unk, PAD)


# ----------------------------------------------------------------------------- determinism


def test_training_is_deterministic_and_leaves_global_rng_alone():
    train, valid = sample_chain(150, 60), sample_chain(30, 61)
    torch.manual_seed(123)
    rng_before = torch.random.get_rng_state()
    a = train_language_model(train, V, SMALL, valid=valid, progress=True)  # with a bar
    assert torch.equal(torch.random.get_rng_state(), rng_before)
    b = train_language_model(train, V, SMALL, valid=valid, progress=False)
    c = train_language_model(train, V, SMALL, valid=valid, progress=False, seed=1)
    for k, v in a.state_dict().items():
        torch.testing.assert_close(b.state_dict()[k], v, rtol=0, atol=0)
    assert not torch.equal(a.embedding.weight, c.embedding.weight)
    assert c.config.seed == 1 and a.config == SMALL
    assert a.summary.history == b.summary.history
    assert 1 <= a.summary.best_epoch <= SMALL.max_epochs


def test_early_stopping_keeps_the_best_epoch():
    train, valid = sample_chain(200, 70), sample_chain(40, 71, START_B, NEXT_B)
    cfg = LMConfig(**{**SMALL.to_dict(), "max_epochs": 10, "patience": 2, "lr": 5e-2})
    model = train_language_model(train, V, cfg, valid=valid, progress=False)
    hist = model.summary.history
    ppls = [h["valid_ppl"] for h in hist]
    best = min(ppls)
    assert model.summary.valid_ppl == best
    assert hist[model.summary.best_epoch - 1]["valid_ppl"] == best
    assert perplexity(model, valid)["ppl"] == pytest.approx(best, rel=1e-6)
    if len(hist) < cfg.max_epochs:                     # stopped early: `patience` stale epochs
        assert len(hist) - model.summary.best_epoch == cfg.patience


def test_split_holdout_is_seeded():
    x = sample_chain(50, 80)
    fit, hold = split_holdout(x, V, 0.1, seed=0)
    assert hold is not None and len(hold) == 5 and len(fit) == 45
    fit2, hold2 = split_holdout(x, V, 0.1, seed=0)
    assert torch.equal(hold, hold2) and torch.equal(fit, fit2)
    assert split_holdout(x, V, 0.0)[1] is None


# ----------------------------------------------------------------------------- input checks


@pytest.mark.parametrize("corpus, match", [
    (np.zeros((2, 3, 1), dtype=np.int64), "2-D"),
    (np.array([3, 4, 1]), "2-D"),
    (np.array([[3.0, 1.0]]), "integer"),
    (torch.tensor([[True, False]]), "integer"),
    (np.array([[3, V, 1]]), "out of range"),
    (np.array([[3, -2, 1]]), "out of range"),
    (np.zeros((0, 4), dtype=np.int64), "empty"),
    (np.array([[3, 1], [-1, -1]]), "row 1 has no real tokens"),
    (np.array([[3, -1, 1]]), "real token after padding"),
    ([[3, 1]], "numpy array or torch tensor"),
])
def test_bad_corpus_is_a_clear_error(corpus, match):
    model = LSTMLanguageModel(V, SMALL)
    with pytest.raises(ValueError, match=match):
        perplexity(model, corpus)


def test_bad_arguments_are_clear_errors():
    x = sample_chain(20, 90)
    with pytest.raises(ValueError, match="train has ids out of range"):
        train_language_model(x, 4, SMALL, progress=False)
    with pytest.raises(ValueError, match="samples .*empty"):
        forward_perplexity(x[:0], x, V, SMALL, progress=False)
    with pytest.raises(ValueError, match="valid_fraction"):
        reverse_perplexity(x, x, V, SMALL, valid_fraction=1.0, progress=False)
    with pytest.raises(ValueError, match="dropout"):
        LMConfig(dropout=1.0)
    with pytest.raises(ValueError, match="hidden_dim"):
        LMConfig(hidden_dim=0)
    with pytest.raises(ValueError, match="unknown LMConfig fields: colour"):
        LMConfig.from_dict({"colour": 1})
    assert LMConfig.from_dict(LMConfig().to_dict()) == LMConfig()
