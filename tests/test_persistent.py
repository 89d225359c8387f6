"""Persistent posterior chains (one latent per training example, as in alternating
back-propagation): a linear-Gaussian posterior reached by few steps per visit, the
bookkeeping of first visits, checkpoints and exact resume, and the refusals."""

from __future__ import annotations

import pytest
import torch

from lebm.config import build_config
from lebm.errors import ConfigError
from lebm.methods import METHODS, Batch
from lebm.models import ChainConfig, LatentEBM, ModelConfig


@pytest.fixture(autouse=True)
def _one_thread():
    from lebm.train.threads import using_threads

    with using_threads(1):
        yield


def _linear_abp(steps: int, persistent_steps: int):
    """x = W z + b + ε, z ~ N(0, I), σ = 0.5: the posterior is N(μ(x), Σ) in closed form."""
    torch.manual_seed(0)
    model = LatentEBM(ModelConfig(
        n_z=2, generator="mlp", gen_widths=(), gen_output="identity", prior="gaussian",
        sigma=0.5, posterior_chain=ChainConfig(n_steps=steps, step_size=0.08),
        data_shape=(3,)))
    W = torch.tensor([[1.0, 0.5], [-0.3, 0.8], [0.2, -1.0]])
    b = torch.tensor([0.1, -0.2, 0.3])
    with torch.no_grad():
        model.generator.net[0].weight.copy_(W)
        model.generator.net[0].bias.copy_(b)
    cfg = build_config("abp-digits", ["method.persistent_chains=true",
                                      f"method.persistent_steps={persistent_steps}"]).method
    method = METHODS["abp"](model, cfg)
    cov = torch.linalg.inv(torch.eye(2) + W.T @ W / 0.25)
    return model, method, W, b, cov


def test_few_steps_per_visit_reach_the_linear_gaussian_posterior():
    """4,000 copies of one x; 5 Langevin steps per visit from the stored latents. After 150
    visits (750 steps in all, the model fixed) the stored latents have the closed-form
    posterior mean and covariance, while one visit of 5 steps from noise is far from it."""
    model, method, W, b, cov = _linear_abp(steps=5, persistent_steps=5)
    n = 4000
    method.set_data_size(n)
    x = torch.tensor([0.7, 0.4, -0.9])
    mean = cov @ W.T @ (x - b) / 0.25
    xs, index, g = x.expand(n, 3).clone(), torch.arange(n), torch.Generator().manual_seed(0)
    z, _ = method._posterior(Batch(xs, index=index), g, False)
    assert float((z.mean(0) - mean).norm()) > 0.2  # one short visit: not there yet
    for _ in range(149):
        z, _ = method._posterior(Batch(xs, index=index), g, False)
    torch.testing.assert_close(z.mean(0), mean, atol=0.03, rtol=0)
    torch.testing.assert_close(torch.cov(z.T), cov, atol=0.03, rtol=0)
    torch.testing.assert_close(method.chains.table, z)


def test_first_visits_run_the_full_chain_then_the_short_one():
    model, method, *_ = _linear_abp(steps=7, persistent_steps=2)
    method.set_data_size(10)
    calls = []
    real = model.infer_latent

    def spy(x, generator=None, **kw):
        calls.append(kw["n_steps"])
        return real(x, generator, **kw)

    model.infer_latent = spy
    g = torch.Generator().manual_seed(0)
    x = torch.randn(4, 3)
    method._posterior(Batch(x, index=torch.tensor([0, 1, 2, 3])), g, False)
    method._posterior(Batch(x, index=torch.tensor([0, 1, 2, 3])), g, False)
    method._posterior(Batch(x, index=torch.tensor([2, 3, 4, 5])), g, False)  # 4, 5 are new
    assert calls == [7, 2, 7]
    assert method.chains.seen(torch.arange(10)).tolist() == [True] * 6 + [False] * 4


def test_persistent_training_resumes_exactly(tmp_path):
    from lebm.train import Trainer

    from .test_train import _assert_same_state

    sets = ["data.limit=300", "train.batch_size=50", "train.progress=false",
            "model.gen_widths=16", "model.energy_widths=16", "model.prior_chain.n_steps=3",
            "model.posterior_chain.n_steps=4", "method.persistent_chains=true",
            "method.persistent_steps=2", "train.sample_every=1000"]
    Trainer(build_config("digits", sets, **{"train.max_steps": 14}), tmp_path / "s").fit()
    Trainer(build_config("digits", sets + ["train.checkpoint_every=5"],
                         **{"train.max_steps": 8}), tmp_path / "h").fit()
    Trainer.resume(tmp_path / "h", max_steps=14).fit()
    _assert_same_state(tmp_path / "s", tmp_path / "h")
    from lebm.train.checkpoint import latest_checkpoint, load_training_state

    state = load_training_state(latest_checkpoint(tmp_path / "s"), torch.device("cpu"))
    again = load_training_state(latest_checkpoint(tmp_path / "h"), torch.device("cpu"))
    assert state["method"]["chains"].shape == (300, 16)
    assert bool(state["method"]["chains_fresh"].logical_not().all())  # every example seen
    torch.testing.assert_close(state["method"]["chains"], again["method"]["chains"],
                               rtol=0, atol=0)


def test_persistent_chains_refusals():
    from lebm.train.learner import Learner

    with pytest.raises(ConfigError, match="persistent_chains keeps posterior chains"):
        Learner(build_config("digits", ["method.persistent_chains=true", "model.encoder=mlp",
                                        "model.inference=encoder+langevin"]),
                torch.device("cpu"), data_shape=(1, 8, 8))
    learner = Learner(build_config("digits", ["method.persistent_chains=true"]),
                      torch.device("cpu"), data_shape=(1, 8, 8))
    learner.method.set_data_size(10)
    with pytest.raises(ValueError, match="Batch.index"):
        learner.method.step(Batch(torch.zeros(2, 1, 8, 8)), torch.Generator())
