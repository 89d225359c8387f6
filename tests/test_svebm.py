"""SV-EBM: β schedule, MI term, losses, and semi-supervised classification on a 2-D toy."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from lebm.data import load_dataset
from lebm.errors import ConfigError
from lebm.methods import SVEBM, Batch, SVEBMConfig
from lebm.methods.svebm import cyclical_beta, mutual_information
from lebm.models import LatentEBM, ModelConfig


def test_cyclical_beta_zero_ramp_hold():
    c = SVEBMConfig(kl_max=0.5, kl_cycle_steps=100, ratio_zero=0.5, ratio_increase=0.25)
    assert [cyclical_beta(s, c) for s in (0, 49, 50, 60, 75, 99, 100, 175)] == pytest.approx(
        [0, 0, 0, 0.2, 0.5, 0.5, 0, 0.5])
    assert cyclical_beta(12345, SVEBMConfig(kl_max=0.7)) == 0.7  # no cycles: constant


def test_mutual_information_extremes():
    # confident and balanced over K classes: MI = log K; identical rows: MI = 0
    logits = 50 * torch.eye(4)
    assert float(mutual_information(logits)) == pytest.approx(math.log(4), abs=1e-4)
    same = torch.randn(1, 4).expand(6, 4)
    assert float(mutual_information(same)) == pytest.approx(0.0, abs=1e-6)


def test_mi_balance_revives_a_dead_symbol():
    """Three symbols own the batch, symbol 3 holds almost no mass. The plain MI pushes its
    logit further down; with the marginal entropy weighted by 2 the gradient pulls it up."""
    gen = torch.Generator().manual_seed(0)
    owner = torch.arange(300) % 3
    logits = 8 * F.one_hot(owner, 4).float() + 0.3 * torch.randn(300, 4, generator=gen)
    logits[:, 3] -= 6.0  # p̄_3 ≈ 1e-6
    grads = {}
    for balance in (1.0, 2.0):
        x = logits.clone().requires_grad_(True)
        mutual_information(x, balance).backward()
        grads[balance] = float(x.grad[:, 3].sum())
    assert grads[1.0] < 0 < grads[2.0], grads
    # value: confident and balanced over K classes gives balance · log K
    assert float(mutual_information(50 * torch.eye(4), 2.0)) == pytest.approx(2 * math.log(4),
                                                                           abs=1e-4)


def _toy_model(**kw) -> LatentEBM:
    cfg = ModelConfig.from_dict(dict(
        n_z=2, generator="mlp", gen_widths=(128, 128), gen_output="identity", prior="symbol",
        n_classes=8, energy_widths=(128,), encoder="mlp", inference="encoder", sigma=0.1,
        prior_steps=30, prior_step_size=0.4, data_shape=(2,), **kw))
    return LatentEBM(cfg)


def test_svebm_refuses_the_wrong_model():
    from lebm.methods import SVEBM as M

    plain = LatentEBM(ModelConfig(n_z=2, generator="mlp", data_shape=(2,), encoder="mlp",
                                  gen_output="identity"))
    with pytest.raises(ConfigError, match="prior=symbol"):
        M(plain, SVEBMConfig())


def test_logit_l2_adds_the_mean_squared_logits_to_the_energy_loss_only():
    """Same draws with and without the penalty: the energy loss differs by exactly
    λ (mean f(z)² + mean f(z⁻)²) at the step's own z and prior samples; the model loss not."""
    torch.manual_seed(0)
    model = _toy_model()
    x = torch.randn(64, 2) * 3
    lam = 0.05
    outs = {}
    for w in (0.0, lam):
        method = SVEBM(model, SVEBMConfig(logit_l2=w))
        outs[w] = method.step(Batch(x), torch.Generator().manual_seed(1))
    # rebuild the step's z and z⁻ from the same generator to compute the penalty directly
    g = torch.Generator().manual_seed(1)
    from lebm.nets import reparameterize

    mu, logvar = model.encode(x)
    z = reparameterize(mu, logvar, g)
    z_neg, _ = model.sample_latent(64, g)
    expected = lam * (model.prior.logits(z).pow(2).mean() + model.prior.logits(z_neg).pow(2).mean())
    diff = outs[lam].losses["energy"] - outs[0.0].losses["energy"]
    assert expected.item() > 1e-4
    assert torch.allclose(diff, expected, rtol=1e-4, atol=1e-6)
    assert torch.allclose(outs[lam].losses["model"], outs[0.0].losses["model"])


def test_few_labels_classify_well_separated_toy():
    """8 Gaussians, 4 labels per component: test accuracy near perfect."""
    torch.manual_seed(0)
    train = load_dataset("8gaussians", "train", n_samples=4000, seed=0)
    test = load_dataset("8gaussians", "test", n_samples=2000, seed=0)
    x, y = train.batch(torch.arange(len(train))), train.targets
    lab = torch.cat([torch.nonzero(y == k)[:4, 0] for k in range(8)])
    model = _toy_model()
    method = SVEBM(model, SVEBMConfig(mi_weight=5.0, cls_weight=10.0))
    specs = method.optimizers()
    opts = [torch.optim.Adam(s.params, lr=s.lr) for s in specs.values()]
    g = torch.Generator().manual_seed(0)
    for _ in range(800):
        idx = torch.randint(0, len(x), (200,), generator=g)
        out = method.step(Batch(x[idx], (x[lab], y[lab])), g)
        for o in opts:
            o.zero_grad()
        sum(out.losses.values()).backward()
        for o in opts:
            o.step()
    xt = test.batch(torch.arange(len(test)))
    acc = (model.classify(xt).argmax(1) == test.targets).float().mean().item()
    assert acc > 0.95, acc
    assert method.state() == {"n_steps": 800, "step_scale": 1.0}


def test_cli_classify_and_class_conditional_sampling(tmp_path, tiny_overrides, capsys):
    from lebm.cli import main

    run = tmp_path / "wine"
    args = ["train", "svebm-wine", "--run-dir", str(run), "--max-steps", "6"]
    for o in tiny_overrides:
        args += ["--set", o]
    assert main(args) == 0
    cfg = __import__("json").loads((run / "config.json").read_text())["config"]
    assert cfg["data"]["mask_unlabelled"] and cfg["data"]["n_labels"] == 15
    out_csv = tmp_path / "pred.csv"
    assert main(["classify", str(run), "--data", "wine", "--out", str(out_csv)]) == 0
    printed = capsys.readouterr().out
    assert "accuracy" in printed
    rows = out_csv.read_text().splitlines()
    assert rows[0] == "index,label,predicted,p_0,p_1,p_2" and len(rows) == 1 + 53  # 30 % of 178
    probs = [float(v) for v in rows[1].split(",")[3:]]
    assert sum(probs) == pytest.approx(1.0, abs=1e-3)
    assert main(["sample", str(run), "--class", "2", "--n", "5", "--out",
                 str(tmp_path / "c2.png")]) == 0
    assert main(["sample", str(run), "--class", "3", "--n", "5", "--out",
                 str(tmp_path / "c3.png")]) == 2
    assert "class must be in 0..2" in capsys.readouterr().err


def test_labelled_batches_come_from_the_labelled_pool(tmp_path, tiny_overrides):
    from lebm.config import build_config
    from lebm.train import Trainer

    trainer = Trainer(build_config("svebm-wine", tiny_overrides), tmp_path / "r")
    pool = set(trainer.data.labelled_indices().tolist())
    assert len(pool) == 15 and (trainer.data.targets == -1).sum() > 0
    batch = trainer._batch(3)
    assert batch.labelled is not None
    x_l, y_l = batch.labelled
    assert (y_l >= 0).all() and len(y_l) == trainer.method.labelled_batch_size == 64
    again = trainer._labelled_batch(3, 64)
    torch.testing.assert_close(again[0], x_l)  # a function of the step: resume is exact


@pytest.mark.slow
def test_unsupervised_symbols_match_the_eight_components(tmp_path):
    """svebm-8gaussians without labels: each true component gets its own symbol (purity)."""
    from lebm.config import build_config
    from lebm.metrics import cluster_purity
    from lebm.train import Trainer

    cfg = build_config("svebm-8gaussians", ["train.progress=false", "train.max_steps=2000"])
    trainer = Trainer(cfg, tmp_path / "run")
    trainer.fit()
    test = load_dataset("8gaussians", "test", n_samples=4000, seed=0)
    pred = trainer.model.classify(test.batch(torch.arange(len(test)))).argmax(1)
    clusters = cluster_purity(pred, test.targets, 8)
    assert clusters["purity"] > 0.95, clusters  # each component's majority symbol
    assert clusters["distinct_majority_symbols"] == 8, clusters  # eight distinct symbols


def test_toy_run_plots_the_landscape_with_symbol_coloured_samples(tmp_path, monkeypatch):
    """A 2-D SV-EBM run writes the prior's landscape; its samples are coloured by symbol."""
    import lebm.viz
    from lebm.config import build_config
    from lebm.train import Trainer

    seen = {}
    real = lebm.viz.save_density

    def spy(*args, **kwargs):
        seen["classes"] = kwargs.get("point_classes")
        return real(*args, **kwargs)

    monkeypatch.setattr("lebm.viz.save_density", spy)
    cfg = build_config("svebm-8gaussians", ["train.progress=false", "train.max_steps=4",
                                            "train.sample_every=4", "model.prior_steps=3",
                                            "data.limit=500", "train.batch_size=50"])
    trainer = Trainer(cfg, tmp_path / "run")
    trainer.fit()
    assert (tmp_path / "run" / "samples" / "step_00000004_prior.png").stat().st_size > 1000
    classes = seen["classes"]
    assert classes is not None and classes.dtype == torch.int64
    assert 0 <= int(classes.min()) and int(classes.max()) < 8
