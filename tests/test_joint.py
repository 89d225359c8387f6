"""The joint latent EBM prior over generator layers (CVPR'23): layout, log-density terms,
the linear-Gaussian posterior, the estimator's losses, save/load and exact resume."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch
from torch import nn

import lebm
from lebm.config import build_config
from lebm.methods import METHODS, Batch
from lebm.models import ChainConfig, HierarchicalConfig, HierarchicalEBM
from lebm.nets import BottomLayerGenerator
from lebm.priors import JointLayerPrior, LayeredGaussianPrior
from lebm.train import Trainer

from .test_train import _assert_same_state


def _model(prior: str = "joint", sizes: tuple[int, ...] = (3, 2), **kw) -> HierarchicalEBM:
    cfg = HierarchicalConfig(latent_sizes=sizes, prior=prior, generator="mlp",
                             gen_widths=(16,), gen_output="identity", data_shape=(4,),
                             energy_widths=(16,), upper_energy_widths=(8,),
                             backbone_widths=(16,), **kw)
    return HierarchicalEBM(cfg)


def test_layout_shapes_and_round_trip():
    model = _model(sizes=(5, 3, 2))
    assert model.latent.sizes == (5, 3, 2) and model.latent.dim == 10
    z = model.init_latent(7, torch.Generator().manual_seed(0))
    parts = model.latent.split(z)
    assert [p.shape for p in parts] == [(7, 5), (7, 3), (7, 2)]
    assert torch.equal(model.latent.cat(parts), z)
    # the generator reads z_1 only: changing the upper layers leaves g(z) unchanged
    z2 = z.clone()
    z2[:, 5:] += 3.0
    torch.testing.assert_close(model.decode(z), model.decode(z2), rtol=0, atol=0)
    assert model.sample(4, torch.Generator().manual_seed(1)).shape == (4, 4)
    assert model.infer(torch.randn(6, 4)).shape == (6, 10)


def test_joint_log_density_is_the_sum_of_its_terms():
    torch.manual_seed(0)
    model = _model(sizes=(4, 3, 2), sigma0=0.8)
    prior = model.prior
    assert isinstance(prior, JointLayerPrior) and prior.capabilities == {"energy", "layers"}
    z = torch.randn(9, 9)
    z1, z2, z3 = z[:, :4], z[:, 4:7], z[:, 7:]
    normal = torch.distributions.Normal
    with torch.no_grad():
        expected = prior.energies[0](z1) + prior.energies[1](z2) + prior.energies[2](z3)
        for zi, above, cond in ((z1, z2, prior.conditionals[0]), (z2, z3, prior.conditionals[1])):
            h = cond.net(above)  # the raw head: mean and log-scale
            mu, raw = h.chunk(2, dim=1)
            expected = expected + normal(mu, raw.exp() + 0.01).log_prob(zi).sum(1)
        expected = expected + normal(0.0, 0.8).log_prob(z3).sum(1)
        torch.testing.assert_close(prior.log_density(z), expected)
        torch.testing.assert_close(model.prior_log_density(z), expected)
        x = torch.randn(9, 4)
        lik = normal(model.generator(z), model.config.sigma).log_prob(x).sum(1)
        torch.testing.assert_close(model.log_joint(z, x) + model.likelihood.log_normalizer(x)
                                   - lik, expected, atol=1e-4, rtol=1e-5)


class _LinearConditional(nn.Module):
    """``p(z_i | z_{i+1}) = N(A z_{i+1} + b, diag s²)``, fixed."""

    def __init__(self, a: torch.Tensor, b: torch.Tensor, s: torch.Tensor) -> None:
        super().__init__()
        self.a, self.b, self.s = nn.Parameter(a), nn.Parameter(b), nn.Parameter(s)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return z @ self.a.T + self.b, self.s.expand(z.shape[0], -1)


def _linear_gaussian(prior: str) -> tuple[HierarchicalEBM, dict[str, torch.Tensor]]:
    """A two-layer linear-Gaussian model: z2 ~ N(0, σ0²), z1 | z2 ~ N(A z2 + b, S²),
    x | z1 ~ N(W z1 + c, σ²). With ``prior="joint"`` every f_i is zeroed (f ≡ 0)."""
    g = torch.Generator().manual_seed(4)
    model = _model(prior, sigma0=0.9, sigma=0.5)
    a, b = torch.randn(3, 2, generator=g), 0.5 * torch.randn(3, generator=g)
    s = torch.tensor([0.5, 0.7, 0.6])
    w, c = torch.randn(4, 3, generator=g), 0.3 * torch.randn(4, generator=g)
    model.prior.conditionals[0] = _LinearConditional(a, b, s)
    lin = nn.Linear(3, 4)
    with torch.no_grad():
        lin.weight.copy_(w)
        lin.bias.copy_(c)
    model.generator = BottomLayerGenerator(model.latent, lin)
    if prior == "joint":
        with torch.no_grad():
            for f in model.prior.energies:
                last = list(f.modules())[-1]
                last.weight.zero_()
                last.bias.zero_()
    return model, dict(a=a, b=b, s=s, w=w, c=c)


def _closed_form(p: dict[str, torch.Tensor], sigma0: float, sigma: float, x: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Prior and posterior mean and covariance of z = [z1, z2] (float64)."""
    a, b, s, w, c = (p[k].double() for k in "abswc")
    v2 = sigma0**2 * torch.eye(2, dtype=torch.float64)
    cov = torch.cat([torch.cat([a @ v2 @ a.T + torch.diag(s**2), a @ v2], 1),
                     torch.cat([v2 @ a.T, v2], 1)])
    mean = torch.cat([b, torch.zeros(2, dtype=torch.float64)])
    h = torch.cat([w, torch.zeros(4, 2, dtype=torch.float64)], 1)
    prec = torch.linalg.inv(cov) + h.T @ h / sigma**2
    post_cov = torch.linalg.inv(prec)
    post_mean = post_cov @ (torch.linalg.solve(cov, mean) + h.T @ (x.double() - c) / sigma**2)
    return mean, cov, post_mean, post_cov


def _assert_gaussian_matches(samples: torch.Tensor, mean: torch.Tensor,
                             cov: torch.Tensor) -> None:
    """Sample mean and covariance within 5 standard errors of the truth, entrywise."""
    n = samples.shape[0]
    s = samples.double()
    se_mean = (cov.diagonal() / n).sqrt()
    assert ((s.mean(0) - mean).abs() < 5 * se_mean).all(), (s.mean(0), mean)
    emp = torch.cov(s.T)
    var = cov.diagonal()
    se_cov = ((var[:, None] * var[None, :] + cov**2) / n).sqrt()
    assert ((emp - cov).abs() < 5 * se_cov).all(), (emp, cov)


@pytest.mark.parametrize("prior", ["layers", "joint"])
def test_linear_gaussian_posterior_matches_the_closed_form(prior: str):
    """With f ≡ 0 and linear-Gaussian layers, long MALA posterior chains over all layers
    jointly reach the exact Gaussian posterior of (z1, z2) given x; ancestral draws of the
    backbone reach the exact prior."""
    torch.manual_seed(0)
    model, p = _linear_gaussian(prior)
    mean, cov, post_mean, post_cov = _closed_form(p, 0.9, 0.5, x := torch.tensor(
        [0.8, -0.4, 1.1, 0.2]))
    n = 4000
    _assert_gaussian_matches(model.prior.sample_base(n, torch.Generator().manual_seed(1)),
                             mean, cov)
    z = model.infer(x.expand(n, 4), torch.Generator().manual_seed(2), kernel="mala",
                    n_steps=400, step_size=0.3)
    _assert_gaussian_matches(z, post_mean, post_cov)
    # and the joint prior's own chain (f ≡ 0) reaches the backbone
    if prior == "joint":
        zp = model.sample_latent(n, torch.Generator().manual_seed(3), kernel="mala",
                                 n_steps=400, step_size=0.4)[0]
        _assert_gaussian_matches(zp, mean, cov)


def test_a_wrong_model_fails_the_closed_form_check():
    """The check above can fail: a posterior with the likelihood's σ doubled misses."""
    model, p = _linear_gaussian("layers")
    x = torch.tensor([0.8, -0.4, 1.1, 0.2])
    _, _, post_mean, post_cov = _closed_form(p, 0.9, 1.0, x)
    z = model.infer(x.expand(4000, 4), torch.Generator().manual_seed(2), kernel="mala",
                    n_steps=400, step_size=0.3)
    with pytest.raises(AssertionError):
        _assert_gaussian_matches(z, post_mean, post_cov)


def test_estimator_losses_follow_the_paper():
    torch.manual_seed(0)
    model = _model(prior_chain=ChainConfig(n_steps=3, step_size=0.4),
                   posterior_chain=ChainConfig(n_steps=3, step_size=0.1))
    method = METHODS["joint"](model, METHODS["joint"].Config())
    x = torch.randn(8, 4)
    # replay the step's chains with the same generator to rebuild each loss by hand
    out = method.step(Batch(x), torch.Generator().manual_seed(5))
    assert set(out.losses) == {"generator", "backbone", "energy_1", "energy_2"}
    g = torch.Generator().manual_seed(5)
    z_post = model.infer(x, g)
    z_prior = model.sample_latent(8, g)[0]
    prior = model.prior
    with torch.no_grad():
        nll = -model.likelihood.log_prob(x, model.generator(z_post)).mean()
        torch.testing.assert_close(out.losses["generator"], nll)
        lp = [torch.stack(prior.conditional_log_probs(z)).sum(0).mean()
              for z in (z_prior, z_post)]
        torch.testing.assert_close(out.losses["backbone"], lp[0] - lp[1])
        for i, f in enumerate(prior.energies):
            zi_prior, zi_post = (prior.latent.split(z)[i] for z in (z_prior, z_post))
            torch.testing.assert_close(out.losses[f"energy_{i + 1}"],
                                       f(zi_prior).mean() - f(zi_post).mean())
        torch.testing.assert_close(out.metrics["f_pos"], prior.neg_energy(z_post).mean())
    # the backbone alone: no prior chain, no energies, plain likelihood for the backbone
    flat = _model("layers", posterior_chain=ChainConfig(n_steps=3, step_size=0.1))
    assert isinstance(flat.prior, LayeredGaussianPrior) and not flat.prior.needs_chain
    method = METHODS["joint"](flat, METHODS["joint"].Config())
    assert set(method.optimizers()) == {"generator", "backbone"}
    out = method.step(Batch(x), torch.Generator().manual_seed(5))
    z_post = flat.infer(x, torch.Generator().manual_seed(5))
    with torch.no_grad():
        lp_post = torch.stack(flat.prior.conditional_log_probs(z_post)).sum(0).mean()
    torch.testing.assert_close(out.losses["backbone"], -lp_post)


@pytest.mark.parametrize("prior,inference", [("joint", "encoder"), ("joint", "encoder+langevin"),
                                             ("ebm", "encoder")])
def test_variational_gradients_are_the_elbo_and_the_contrastive_terms(prior: str,
                                                                       inference: str):
    """The variational variant's update, gradient by gradient: q gets the negative ELBO with
    the joint prior (the prior's weights held fixed there), g the reconstruction at the
    posterior samples, backbone and energies the contrastive terms at those samples (the q
    sample itself, or the chain refined from it) against the prior chain."""
    torch.manual_seed(0)
    chains = dict(prior_chain=ChainConfig(n_steps=3, step_size=0.4),
                  posterior_chain=ChainConfig(n_steps=3, step_size=0.1))
    if prior == "joint":
        model = _model(encoder="mlp", inference=inference, **chains)
        parts = {"generator", "backbone", "energy_1", "energy_2", "encoder"}
    else:  # the ICCV'23 model: one energy over the concatenation, ladder generator
        model = HierarchicalEBM(HierarchicalConfig(
            latent_sizes=(3, 2), prior="ebm", generator="ladder", gen_widths=(16,),
            gen_output="identity", data_shape=(4,), energy_widths=(16,), encoder="mlp",
            inference=inference, **chains))
        parts = {"generator", "energy", "encoder"}
    method = METHODS["joint"](model, METHODS["joint"].Config())
    assert set(method.optimizers()) == parts
    x = torch.randn(8, 4)
    out = method.step(Batch(x), torch.Generator().manual_seed(5))
    model.zero_grad()
    sum(out.losses.values()).backward()
    got = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    # by hand, replaying the step's draws
    g = torch.Generator().manual_seed(5)
    prior_net, enc, gen = model.prior, model.encoder, model.generator
    mu, logvar = model.encode(x)
    z_q = mu + (0.5 * logvar).exp() * torch.randn(mu.shape, generator=g)
    z_post = z_q if inference == "encoder" else model.infer_latent(x, g, z0=z_q.detach())[0]
    z_prior = model.sample_latent(8, g)[0]
    nll_q = -model.likelihood.log_prob(x, gen(z_q)).mean()
    elbo_loss = nll_q + (-prior_net.log_density(z_q) - 0.5 * logvar.sum(1)).mean()
    nll_post = -model.likelihood.log_prob(x, gen(z_post.detach())).mean()
    zp = z_post.detach()
    contrastive = (prior_net.log_density(z_prior) - prior_net.log_density(zp)).mean()
    want: dict[str, torch.Tensor] = {}
    for name, loss, module in (("encoder", elbo_loss, enc), ("generator", nll_post, gen),
                               ("prior", contrastive, prior_net)):
        params = dict(module.named_parameters())
        for (n, _), grad in zip(params.items(),
                                torch.autograd.grad(loss, list(params.values()),
                                                    retain_graph=True)):
            want[f"{name}.{n}"] = grad
    if inference == "encoder":  # the decoder loss is q's reconstruction term: no double count
        for n, p in gen.named_parameters():
            want[f"generator.{n}"] = torch.autograd.grad(nll_q, p, retain_graph=True)[0]
    assert set(got) == set(want)
    for n in want:
        torch.testing.assert_close(got[n], want[n], rtol=1e-4, atol=1e-5, msg=n)


def test_variational_variant_needs_the_gaussian_nll():
    from lebm.errors import ConfigError

    model = _model(encoder="mlp", inference="encoder")
    with pytest.raises(ConfigError, match="recon_loss=gaussian"):
        METHODS["joint"](model, METHODS["joint"].Config(recon_loss="sum"))


def test_joint_method_refuses_a_flat_model():
    from lebm.errors import ConfigError
    from lebm.models import LatentEBM, ModelConfig

    flat = LatentEBM(ModelConfig(n_z=4, generator="mlp", data_shape=(4,), gen_output="identity"))
    with pytest.raises(ConfigError, match="joint needs"):
        METHODS["joint"](flat, METHODS["joint"].Config())
    with pytest.raises(lebm.errors.ConfigError, match="at least two layers"):
        HierarchicalConfig.from_dict(dict(latent_sizes=[8], data_shape=[4]))


def test_the_paper_configuration():
    """The `joint-svhn` preset builds the CVPR'23 code's networks."""
    cfg = build_config("joint-svhn", [])
    m, t = cfg.model, cfg.train
    assert m.latent_sizes == (128, 100) and m.sigma == 0.3 and m.sigma0 == 1.01
    assert (m.prior_chain.n_steps, m.prior_chain.step_size) == (60, 0.4)
    assert (m.posterior_chain.n_steps, m.posterior_chain.step_size) == (40, 0.1)
    assert (cfg.method.lr_e, cfg.method.lr_g, cfg.method.lr_b) == (2e-5, 1e-4, 1e-4)
    assert (cfg.method.beta1, cfg.method.beta2, cfg.method.lr_decay) == (0.9, 0.999, 1.0)
    assert (t.batch_size, t.seed, t.max_steps) == (100, 1224, 101 * 732)
    model = HierarchicalEBM(dataclasses.replace(cfg.model, data_shape=(3, 32, 32)))
    prior = model.prior
    assert isinstance(prior, JointLayerPrior)
    linears = [[mod.out_features for mod in f.modules() if isinstance(mod, nn.Linear)]
               for f in prior.energies]
    assert linears == [[200, 200, 200, 1], [100, 100, 1]]
    assert [mod.out_features for mod in prior.conditionals[0].modules()
            if isinstance(mod, nn.Linear)] == [200, 200, 200, 200, 256]
    convs = [mod for mod in model.generator.modules() if isinstance(mod, nn.ConvTranspose2d)]
    assert [c.out_channels for c in convs] == [1024, 512, 256, 3]
    assert [c.kernel_size[0] for c in convs] == [8, 4, 4, 3]
    assert model.decode(torch.zeros(2, 228)).shape == (2, 3, 32, 32)
    assert math.isclose(float(prior.sample_base(20000).narrow(1, 128, 100).std()), 1.01,
                        rel_tol=0.02)


JOINT_TINY = ["data.limit=200", "model.latent_sizes=4,2", "model.gen_widths=32",
              "model.energy_widths=16", "model.upper_energy_widths=8",
              "model.backbone_widths=16", "model.prior_chain.n_steps=5",
              "model.posterior_chain.n_steps=5", "train.batch_size=50", "train.log_every=2",
              "train.sample_every=4", "train.checkpoint_every=4", "train.n_grid=8",
              "train.progress=false"]


@pytest.mark.parametrize("preset", ["joint-digits", "abp-joint-digits", "joint-inf-digits",
                                    "vae-joint-digits", "iccv-digits", "vae-iccv-digits"])
def test_training_resumes_exactly_and_loads(tmp_path, preset):
    straight = build_config(preset, JOINT_TINY, **{"train.max_steps": 12})
    Trainer(straight, tmp_path / "straight").fit()
    half = build_config(preset, JOINT_TINY, **{"train.max_steps": 6,
                                               "train.checkpoint_every": 3})
    Trainer(half, tmp_path / "resumed").fit()
    Trainer.resume(tmp_path / "resumed", max_steps=12).fit()
    _assert_same_state(tmp_path / "straight", tmp_path / "resumed")
    model = lebm.load(tmp_path / "resumed")
    assert isinstance(model, HierarchicalEBM)
    assert model.sample(3, torch.Generator().manual_seed(0)).shape == (3, 1, 8, 8)
    assert (tmp_path / "straight" / "plots" / "losses.png").is_file()


def test_cli_commands_work_on_a_joint_run(tmp_path, capsys):
    """``lebm sample`` (and its layer figure), ``reconstruct``, ``eval`` and ``score`` on a
    hierarchical run like on any other; ``--vary-layers`` refuses a flat run."""
    from PIL import Image

    from lebm.cli import main

    run = tmp_path / "run"
    Trainer(build_config("joint-digits", JOINT_TINY, **{"train.max_steps": 4}), run).fit()
    assert main(["sample", str(run), "--n", "3", "--vary-layers", "2",
                 "--out", str(tmp_path / "layers.png")]) == 0
    assert Image.open(tmp_path / "layers.png").size[0] > 100
    assert main(["reconstruct", str(run), "--n", "4", "--out", str(tmp_path / "r.png")]) == 0
    assert main(["eval", str(run), "--metrics", "mse,ll", "--n-test", "20", "--n-ll", "4",
                 "--no-progress"]) == 0
    ev = json.loads((run / "eval.json").read_text())["checkpoints"]["step_00000004"]
    assert math.isfinite(ev["metrics"]["mse"]["mse"])
    assert math.isfinite(ev["metrics"]["ll"]["nats"])
    assert main(["score", str(run), "--data", "digits", "--split", "test", "--limit", "30",
                 "--anomalies", "1", "--out", str(tmp_path / "s.csv")]) == 0
    assert len((tmp_path / "s.csv").read_text().splitlines()) == 31
    flat = tmp_path / "flat"
    Trainer(build_config("digits", ["train.max_steps=2", "train.progress=false",
                                    "train.sample_every=2", "train.checkpoint_every=2",
                                    "model.prior_chain.n_steps=3",
                                    "model.posterior_chain.n_steps=3"]), flat).fit()
    capsys.readouterr()
    assert main(["sample", str(flat), "--vary-layers", "2",
                 "--out", str(tmp_path / "f.png")]) == 2
    assert "needs a model with latent layers" in capsys.readouterr().err


@pytest.mark.parametrize("prior", ["layers", "joint"])
def test_log_likelihood_matches_the_linear_gaussian_marginal(prior: str):
    """``lebm.evaluate``'s AIS ``log p(x)`` on the linear-Gaussian hierarchy equals the
    exact marginal ``N(x; W m1 + c, W C11 Wᵀ + σ² I)``. For the joint prior every f_i is a
    constant (its last bias 0.4, not 0), so the estimate must also remove ``log Z = Σ 0.4``."""
    from lebm.evaluate.marginal import log_likelihood

    torch.manual_seed(0)
    with torch.no_grad():
        model, p = _linear_gaussian(prior)
        if prior == "joint":
            for f in model.prior.energies:
                list(f.modules())[-1].bias.fill_(0.4)
    mean, cov, _, _ = _closed_form(p, 0.9, 0.5, torch.zeros(4))
    w, c = p["w"].double(), p["c"].double()
    marginal = torch.distributions.MultivariateNormal(
        w @ mean[:3] + c, w @ cov[:3, :3] @ w.T + 0.25 * torch.eye(4, dtype=torch.float64))
    x = torch.tensor([[0.8, -0.4, 1.1, 0.2], [-1.0, 0.5, 0.0, 0.9], [0.1, 0.1, -0.3, -0.6]])
    ll, se = log_likelihood(model, x, torch.Generator().manual_seed(5), n_samples=64,
                            n_temps=200)
    exact = marginal.log_prob(x.double()).float()
    assert (se < 0.1).all(), se
    torch.testing.assert_close(ll, exact, atol=4 * float(se.max()) + 0.02, rtol=0)


def test_noise_coordinates_round_trip():
    model = _model(sizes=(5, 3, 2))
    z = model.prior.sample_base(6, torch.Generator().manual_seed(0))
    with torch.no_grad():
        eps = model.prior.to_noise(z)
        torch.testing.assert_close(model.prior.from_noise(eps), z)
    assert eps.shape == z.shape


@pytest.mark.parametrize("prior,level", [("layers", 0), ("layers", 1), ("joint", 0),
                                         ("joint", 1)])
def test_resample_layer_draws_the_exact_conditional(prior: str, level: int):
    """``resample_layer`` on the linear-Gaussian hierarchy: with the other layers' noise
    kept, the redrawn layer and everything below follow exact Gaussians. For the joint prior
    the top energy is linear, ``f_2(z2) = aᵀz2`` (f_1 ≡ 0), which tilts the top draw to
    ``N(σ0² a, σ0² I)``; its chain (MALA, long) must find that shift, and a backbone draw
    without the tilt fails the same check."""
    torch.manual_seed(0)
    model, p = _linear_gaussian(prior)
    s0, tilt = 0.9, torch.tensor([0.8, -0.5])
    if prior == "joint":
        lin = nn.Linear(2, 1)
        with torch.no_grad():
            lin.weight.copy_(tilt[None])
            lin.bias.zero_()
        model.prior.energies[1] = nn.Sequential(lin, nn.Flatten(0))  # (batch,)
    a, b, s = (p[k].double() for k in "abs")
    n, fixed = 4000, torch.tensor([0.5, -1.0, 0.3, 0.8, -0.2])  # [z1 (3), z2 (2)]
    z = fixed.expand(n, 5).clone()
    out = model.resample_layer(z, level, torch.Generator().manual_seed(6), kernel="mala",
                               n_steps=300, step_size=0.5).double()
    f = fixed.double()
    if level == 0:  # z2 kept, z1 ~ p(z1 | z2) = N(A z2 + b, S²); f_1 ≡ 0
        torch.testing.assert_close(out[:, 3:], f[3:].expand(n, 2), rtol=0, atol=1e-5)
        _assert_gaussian_matches(out[:, :3], a @ f[3:] + b, torch.diag(s**2))
        return
    eps1 = (f[:3] - a @ f[3:] - b) / s  # z1's noise, kept
    shift = s0**2 * tilt.double() if prior == "joint" else torch.zeros(2, dtype=torch.float64)
    cov2 = s0**2 * torch.eye(2, dtype=torch.float64)
    joint_mean = torch.cat([a @ shift + b + s * eps1, shift])
    joint_cov = torch.cat([torch.cat([a @ cov2 @ a.T, a @ cov2], 1),
                           torch.cat([cov2 @ a.T, cov2], 1)])
    _assert_gaussian_matches(out, joint_mean, joint_cov)
    if prior == "joint":
        with pytest.raises(AssertionError):  # the untilted backbone draw is not it
            _assert_gaussian_matches(out[:, 3:], torch.zeros(2, dtype=torch.float64), cov2)


@pytest.mark.parametrize("shape,sizes", [((3, 32, 32), (10,) * 5), ((1, 28, 28), (6, 5, 4)),
                                         ((1, 8, 8), (4, 4, 4)), ((4,), (3, 2))])
def test_ladder_generator_reads_every_layer(shape, sizes):
    """The ICCV'23 generator: the right output shape, and every latent layer moves x."""
    from lebm.latent import LatentSpec
    from lebm.nets import LadderGenerator

    torch.manual_seed(0)
    spec = LatentSpec(sizes)
    g = LadderGenerator(spec, shape, ngf=8, widths=(32,), output="identity")
    z = torch.randn(3, spec.dim, requires_grad=True)
    x = g(z)
    assert x.shape == (3, *shape)
    grad = torch.autograd.grad(x.pow(2).sum(), z)[0]
    for part in spec.split(grad):
        assert part.abs().sum() > 0


def test_iccv_model_one_energy_over_the_concatenation():
    """prior=ebm: ``log p̃(z) = f([z_1..z_L]) − ‖z‖²/(2σ0²)``; a layer redrawn with a linear
    energy ``f(z) = aᵀz`` follows ``N(σ0² a_i, σ0² I)`` exactly, the others kept; a backbone
    generator with that prior is refused."""
    from lebm.errors import ConfigError

    torch.manual_seed(0)
    model = HierarchicalEBM(HierarchicalConfig(
        latent_sizes=(3, 2), prior="ebm", generator="ladder", gen_widths=(16,),
        gen_output="identity", data_shape=(4,), energy_widths=(16,), sigma0=0.9))
    z = torch.randn(5, 5)
    with torch.no_grad():
        torch.testing.assert_close(model.prior.log_density(z), model.prior.energy_net(z)
                                   - z.pow(2).sum(1) / (2 * 0.81))
    a = torch.tensor([0.5, -0.3, 0.2, 0.8, -0.6])
    lin = nn.Linear(5, 1)
    with torch.no_grad():
        lin.weight.copy_(a[None])
        lin.bias.zero_()
    model.prior.energy_net = nn.Sequential(lin, nn.Flatten(0))
    fixed = torch.tensor([0.5, -1.0, 0.3, 0.8, -0.2]).expand(4000, 5).clone()
    out = model.resample_layer(fixed, 1, torch.Generator().manual_seed(6), kernel="mala",
                               n_steps=300, step_size=0.5)
    torch.testing.assert_close(out[:, :3], fixed[:, :3], rtol=0, atol=1e-6)
    _assert_gaussian_matches(out[:, 3:], 0.81 * a[3:].double(),
                             0.81 * torch.eye(2, dtype=torch.float64))
    with pytest.raises(ConfigError, match="generator=ladder"):
        HierarchicalConfig.from_dict(dict(latent_sizes=[3, 2], prior="ebm", generator="mlp",
                                          data_shape=[4]))
