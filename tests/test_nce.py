"""The multi-stage density-ratio (NCE) prior: exact log-ratios of Gaussians, the far-apart
case that motivates the stages, stage bookkeeping, save/load and exact resume."""

from __future__ import annotations

import json
import math

import pytest
import torch

import lebm
from lebm.config import build_config
from lebm.latent import LatentSpec
from lebm.methods.nce import fit_stages, logistic_ratio_loss
from lebm.priors import PriorSettings, build_prior
from lebm.sampling import Langevin, frozen, run_chain


@pytest.fixture(autouse=True)
def _one_thread():
    """These small networks gain nothing from a second thread and lose much when the other
    core is busy (see lebm.train.threads)."""
    from lebm.train.threads import using_threads

    with using_threads(1):
        yield


def _prior(d: int, stages: int):
    torch.manual_seed(0)
    return build_prior("nce", LatentSpec((d,)), PriorSettings(max_stages=stages,
                                                               energy_widths=(64, 64)))


def _gaussian(mu: float, s: float, d: int):
    return lambda n, g: mu + s * torch.randn(n, d, generator=g)


def _log_ratio(z: torch.Tensor, mu: float, s: float) -> torch.Tensor:
    """log N(z; μ, s² I) − log N(z; 0, I)."""
    d = z.shape[1]
    return (-0.5 * ((z - mu) / s).pow(2).sum(1) - d * math.log(s)) + 0.5 * z.pow(2).sum(1)


@pytest.mark.parametrize("d, mu, s, tolerance", [(1, 1.0, 0.7, 0.1), (10, 0.5, 0.8, 0.3)])
def test_one_stage_recovers_the_exact_log_ratio(d, mu, s, tolerance):
    """Logistic regression between q = N(μ, s²) and N(0, I): r ≈ log q/p0. Tolerance on the
    mean absolute error over samples of both (measured 0.06 in 1-D, 0.18 in 10-D)."""
    prior, g = _prior(d, 1), torch.Generator().manual_seed(0)
    fit_stages(prior, _gaussian(mu, s, d), 1, 1500, g, batch=256, lr=1e-3)
    z = torch.cat([_gaussian(mu, s, d)(2000, g), torch.randn(2000, d, generator=g)])
    with torch.no_grad():
        err = prior.ratio(0, z) - _log_ratio(z, mu, s)
    assert float(err.abs().mean()) < tolerance


def _kl_to_far_gaussian(prior) -> float:
    """KL(q ‖ p̂) for q = N(6, 0.5²) and the learned 1-D prior, normalised on a grid."""
    grid = torch.linspace(-6, 10, 4001)[:, None]
    with torch.no_grad():
        log_z = torch.logsumexp(prior.log_density(grid), 0) + math.log(float(grid[1] - grid[0]))
        zq = 6 + 0.5 * torch.randn(20000, 1, generator=torch.Generator().manual_seed(9))
        log_q = -0.5 * ((zq[:, 0] - 6) / 0.5) ** 2 - math.log(0.5 * math.sqrt(2 * math.pi))
        return float((log_q - (prior.log_density(zq) - log_z)).mean())


def test_far_apart_gaussians_need_several_stages():
    """The paper's motivation: q = N(6, 0.5²) against N(0, 1). One classifier saturates and
    its ratio is far off (measured KL 2.05); four stages, each against the product so far
    (sampled by Langevin), get close (measured 0.18 with these short settings)."""
    def chain(target, n, g):
        with frozen(four):
            return run_chain(Langevin(0.3), target, torch.randn(n, 1, generator=g), 40,
                             generator=g)[0]

    one = _prior(1, 1)
    fit_stages(one, _gaussian(6.0, 0.5, 1), 1, 300, torch.Generator().manual_seed(0),
               batch=128, lr=2e-3)
    four = _prior(1, 4)
    accuracies = fit_stages(four, _gaussian(6.0, 0.5, 1), 4, 300,
                            torch.Generator().manual_seed(0), batch=128, lr=2e-3,
                            sampler="langevin", chain=chain)
    assert four.stages == 4
    assert accuracies[0] > 0.99 > accuracies[-1]  # each stage finds less to tell apart
    assert _kl_to_far_gaussian(one) > 1.0
    assert _kl_to_far_gaussian(four) < 0.3


def test_the_logistic_loss_is_minimised_by_the_log_ratio():
    r_q, r_p = torch.tensor([2.0, 0.5]), torch.tensor([-1.0, 0.3])
    loss = logistic_ratio_loss(r_q, r_p)
    want = (math.log1p(math.exp(-2.0)) + math.log1p(math.exp(-0.5))) / 2 + \
        (math.log1p(math.exp(-1.0)) + math.log1p(math.exp(0.3))) / 2
    assert float(loss) == pytest.approx(want)


def test_a_new_stage_starts_at_zero_and_only_it_learns(tmp_path, tiny_overrides):
    cfg = build_config("nce-toy2d", ["data.limit=400", "train.batch_size=100",
                                     "train.progress=false", "model.gen_widths=16",
                                     "model.energy_widths=16", "model.prior_chain.n_steps=5",
                                     "model.posterior_chain.n_steps=5", "method.stage_steps=3",
                                     "method.add_threshold=0.501", "method.accuracy_decay=0",
                                     "model.max_stages=3", "train.checkpoint_every=2"],
                       **{"train.max_steps": 10})
    from lebm.train import Trainer

    trainer = Trainer(cfg, tmp_path / "r")
    prior = trainer.model.prior
    assert prior.stages == 1
    z = torch.randn(7, 2)
    trainer.fit()
    rows = [json.loads(x) for x in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    stages = [r["stage"] for r in rows if "stage" in r]
    assert stages == sorted(stages) and prior.stages >= 2  # the rule added stages, in order
    with torch.no_grad():
        frozen_before = prior.ratio(0, z).clone()
    # save/load keeps every stage and the number active
    again = lebm.load(tmp_path / "r")
    assert again.prior.stages == prior.stages
    with torch.no_grad():
        torch.testing.assert_close(again.prior.neg_energy(z), prior.neg_energy(z))
        for k in range(prior.stages, prior.max_stages):  # not started: still exactly zero
            assert torch.equal(prior.ratio(k, z), torch.zeros(7))
    # a started stage freezes: further training leaves stage 0 alone
    resumed = Trainer.resume(tmp_path / "r", max_steps=14)
    resumed.fit()
    with torch.no_grad():
        torch.testing.assert_close(resumed.model.prior.ratio(0, z), frozen_before)


def test_resume_is_exact_across_a_stage_boundary(tmp_path):
    from lebm.train import Trainer

    from .test_train import _assert_same_state

    sets = ["data.limit=400", "train.batch_size=100", "train.progress=false",
            "model.gen_widths=16", "model.energy_widths=16", "model.prior_chain.n_steps=5",
            "model.posterior_chain.n_steps=5", "method.stage_steps=4",
            "method.add_threshold=0.501", "model.max_stages=3"]
    straight = build_config("nce-toy2d", sets, **{"train.max_steps": 10})
    Trainer(straight, tmp_path / "s").fit()
    half = build_config("nce-toy2d", sets + ["train.checkpoint_every=3"],
                        **{"train.max_steps": 6})
    Trainer(half, tmp_path / "h").fit()  # stops after the first stage decision (step 4)
    Trainer.resume(tmp_path / "h", max_steps=10).fit()
    _assert_same_state(tmp_path / "s", tmp_path / "h")
