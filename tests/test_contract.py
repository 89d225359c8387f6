"""Contract tests over every method × model class × generator × likelihood, and over every
registered prior: shapes, gradients, save/load, determinism, capabilities."""

from __future__ import annotations

import pytest
import torch

import lebm
from lebm.latent import LatentSpec
from lebm.methods import METHODS, Batch
from lebm.models import (
    GEBM,
    MODEL_CLASSES,
    ChainConfig,
    GEBMConfig,
    HierarchicalConfig,
    HierarchicalEBM,
    LatentEBM,
    LatentModel,
    ModelConfig,
)
from lebm.priors import PRIORS, PriorSettings, build_prior

GENERATORS = {
    "mlp-8x8": dict(generator="mlp", data_shape=(1, 8, 8), gen_widths=(32, 32)),
    "mlp-toy": dict(generator="mlp", data_shape=(2,), gen_widths=(16,), gen_output="identity"),
    "conv-16": dict(generator="conv", data_shape=(1, 16, 16), ngf=8),
    "conv-28": dict(generator="conv", data_shape=(1, 28, 28), ngf=8),
    "conv-32": dict(generator="conv", data_shape=(3, 32, 32), ngf=8),
    "conv-64": dict(generator="conv", data_shape=(3, 64, 64), ngf=4),
    "conv-wide-28": dict(generator="conv-wide", data_shape=(1, 28, 28), ngf=2),
    # the SNGAN pair's generators (BatchNorm: batch statistics in training, running in eval)
    "sngan-16": dict(generator="sngan", data_shape=(3, 16, 16), ngf=2),
    "resnet-16": dict(generator="resnet", data_shape=(3, 16, 16), ngf=4),
}
# the model class and model settings each method trains (every method in METHODS must appear)
METHOD_MODELS = {
    "lebm": ("LatentEBM", dict(n_z=6, prior="ebm", energy_widths=(16, 16))),
    "abp": ("LatentEBM", dict(n_z=6, prior="gaussian")),
    "vae": ("LatentEBM", dict(n_z=6, prior="gaussian", encoder="auto", inference="encoder")),
    "svebm": ("LatentEBM", dict(n_z=6, prior="symbol", n_classes=3, energy_widths=(16, 16),
                                encoder="auto", inference="encoder")),
    "nce": ("LatentEBM", dict(n_z=6, prior="nce", max_stages=1, energy_widths=(16, 16))),
    "joint": ("HierarchicalEBM", dict(latent_sizes=(4, 2), energy_widths=(16,),
                                      upper_energy_widths=(8,), backbone_widths=(16,))),
    "gebm": ("GEBM", dict(n_z=6, energy_net="auto", ndf=4, energy_widths=(16,))),
}
# method settings for the contract where the defaults would take many steps to reach every
# optimiser (the GEBM alternation: one energy step, then a base step)
METHOD_SETTINGS = {"gebm": dict(energy_steps_init=1, energy_steps=1, partition_init_batches=2)}
# every likelihood on the generators it fits, and data it takes
LIKELIHOOD_CASES = {
    "gaussian": ["mlp-8x8", "conv-16"],
    "bernoulli": ["mlp-8x8", "conv-16"],
    "categorical": ["tokens", "gru"],
}
TOKENS = dict(generator="mlp", data_shape=(5,), gen_widths=(16,), gen_output="identity",
              n_categories=7)
# sentences: an autoregressive decoder (called as g(z, x)), padded token ids of any length
GRU = dict(generator="gru", data_shape=(6,), n_categories=7, embed_dim=8, hidden_dim=8,
           dropout=0.1)
# how each registered model class is built for the contract (every class must appear)
MODEL_BUILDERS = {"LatentEBM": lambda **kw: LatentEBM(ModelConfig(**kw)),
                  "HierarchicalEBM": lambda **kw: HierarchicalEBM(HierarchicalConfig(**kw)),
                  "GEBM": lambda **kw: GEBM(GEBMConfig(**kw))}
SHORT = dict(prior_chain=ChainConfig(n_steps=3, step_size=0.4),
             posterior_chain=ChainConfig(n_steps=3, step_size=0.1))


def _data(model: LatentModel, n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    shape = (n, *model.data_shape)
    kind = model.config.likelihood
    if kind == "categorical":
        x = torch.randint(0, model.config.n_categories, shape, generator=g)
        if model.reads_data:  # sentences of 2 to 6 ids, the last <eos> (1), then padding
            lengths = torch.randint(2, shape[1] + 1, (n,), generator=g)
            x = x.clamp_min(2)
            x[torch.arange(n), lengths - 1] = 1
            x[torch.arange(shape[1]) >= lengths[:, None]] = -1
        return x
    x = torch.rand(shape, generator=g) * 2 - 1
    return torch.where(x > 0, 1.0, -1.0) if kind == "bernoulli" else x


def _model(gen: str, method: str, likelihood: str = "gaussian") -> LatentModel:
    arch = dict({"tokens": TOKENS, "gru": GRU}.get(gen) or GENERATORS[gen])
    model_class, spec = METHOD_MODELS[method]
    spec = dict(spec)
    for key in ("encoder", "energy_net"):
        if spec.get(key) == "auto":
            kind = arch["generator"]
            spec[key] = "gru" if kind == "gru" else "conv" if kind.startswith("conv") else "mlp"
    if likelihood != "gaussian":
        arch["gen_output"] = "identity"  # logits
    return MODEL_BUILDERS[model_class](likelihood=likelihood, **SHORT, **arch, **spec)


def test_every_registry_entry_has_a_contract_case():
    assert set(METHOD_MODELS) == set(METHODS)
    assert set(MODEL_BUILDERS) == set(MODEL_CLASSES)
    assert {cls for cls, _ in METHOD_MODELS.values()} == set(MODEL_CLASSES)
    for name, (cls, _) in METHOD_MODELS.items():
        assert METHODS[name].Model is MODEL_CLASSES[cls]
    from lebm.likelihoods import LIKELIHOODS

    assert set(LIKELIHOOD_CASES) == set(LIKELIHOODS)


def _check_contract(model: LatentModel, method_name: str, tmp_path) -> None:
    dim = model.latent.dim
    shape = model.data_shape
    x = _data(model, 5)

    # shapes (sentences: decoded up to data_shape[0] ids, as long as the longest)
    z = model.infer(x, torch.Generator().manual_seed(0))
    assert z.shape == (5, dim) and not z.requires_grad
    if model.reads_data:
        for out, n in [(model.decode(z), 5), (model.sample(3, torch.Generator().manual_seed(0)),
                                              3), (model.reconstruct(x), 5)]:
            assert out.shape[0] == n and 1 <= out.shape[1] <= shape[0]
            assert out.dtype == torch.int64 and bool((out >= -1).all())
    else:
        assert model.decode(z).shape == (5, *shape)
        assert model.sample(3, torch.Generator().manual_seed(0)).shape == (3, *shape)
        assert model.reconstruct(x).shape == x.shape
    assert model.prior_log_density(z).shape == (5,)
    assert model.prior_target()(z).shape == (5,)
    assert model.posterior_target(x)(z).shape == (5,)
    assert model.log_joint(z, x).shape == (5,)
    assert model.anomaly_score(x).shape == (5,)

    # gradients of the method's losses reach every parameter, and only through its optimiser;
    # a step may update some optimisers only (GEBM alternates): two steps cover them all
    method_cls = METHODS[method_name]
    method = method_cls(model, method_cls.Config(**METHOD_SETTINGS.get(method_name, {})))
    n_lab = method.labelled_batch_size
    labelled = (x[:2], torch.tensor([0, 1])) if n_lab else None
    outs = [method.step(Batch(x, labelled), torch.Generator().manual_seed(1 + i),
                        diagnostics=True) for i in range(2)]
    specs = method.optimizers()
    for out in outs:
        assert set(out.losses) <= set(specs)
        assert all(torch.isfinite(v).all() for v in out.metrics.values())
    assert set().union(*(out.losses for out in outs)) == set(specs)
    losses = {name: loss for out in outs for name, loss in out.losses.items()}
    # f's output bias cancels in L_f = mean f(prior) − mean f(post): its gradient is exactly 0;
    # a new NCE stage starts at r ≡ 0 (last layer zero): the layers below it get no gradient
    # yet, and at r = 0 the logistic loss's bias gradient is ½ − ½ = 0 on balanced batches
    prior_params = [n for n, _ in model.named_parameters() if n.startswith("prior.")]
    # (joint: the output bias of each layer's f_i)
    out_bias = {"lebm": prior_params[-1:],
                "nce": [n for n in prior_params if n != prior_params[-2]],
                "joint": [f"prior.energies.{i}.{list(dict(f.named_parameters()))[-1]}"
                          for i, f in enumerate(getattr(model.prior, "energies", ()))],
                }.get(method_name, [])
    for name, loss in losses.items():
        model.zero_grad(set_to_none=True)
        loss.backward()
        own = {id(p) for p in specs[name].params}
        for pname, p in model.named_parameters():
            if id(p) in own:
                assert p.grad is not None and torch.isfinite(p.grad).all()
                assert (p.grad.abs().sum() == 0) == (pname in out_bias), pname
            else:
                assert p.grad is None, f"loss {name} leaked a gradient into {pname}"
    covered = {id(p) for s in specs.values() for p in s.params}
    assert covered == {id(p) for p in model.parameters()}

    # save / load round trip gives identical outputs
    model.save_pretrained(tmp_path / "m")
    again = lebm.load(tmp_path / "m")
    assert type(again) is type(model) and again.config == model.config
    zz = torch.randn(4, dim)
    torch.testing.assert_close(again.decode(zz), model.decode(zz), rtol=0, atol=0)
    torch.testing.assert_close(again.prior_log_density(zz), model.prior_log_density(zz),
                               rtol=0, atol=0)
    torch.testing.assert_close(again.infer(x, torch.Generator().manual_seed(2)),
                               model.infer(x, torch.Generator().manual_seed(2)), rtol=0, atol=0)

    # deterministic given a torch.Generator
    a = model.sample(4, torch.Generator().manual_seed(5))
    b = model.sample(4, torch.Generator().manual_seed(5))
    torch.testing.assert_close(a, b, rtol=0, atol=0)


@pytest.mark.parametrize("method_name", METHOD_MODELS)
@pytest.mark.parametrize("gen", GENERATORS)
def test_model_contract(gen: str, method_name: str, tmp_path):
    torch.manual_seed(0)
    _check_contract(_model(gen, method_name), method_name, tmp_path)


@pytest.mark.parametrize("method_name", METHOD_MODELS)
@pytest.mark.parametrize("likelihood, gen", [(lik, g) for lik, gens in LIKELIHOOD_CASES.items()
                                             for g in gens if lik != "gaussian"])
def test_model_contract_per_likelihood(likelihood: str, gen: str, method_name: str,
                                       tmp_path):
    torch.manual_seed(0)
    if method_name == "gebm":  # an implicit base generator: a Gaussian p(x | G(z)) only
        with pytest.raises(ValueError, match="likelihood: must be one of"):
            GEBMConfig(likelihood=likelihood, data_shape=(4,)).from_dict(
                {"likelihood": likelihood, "data_shape": [4]})
        return
    needs_encoder = METHOD_MODELS[method_name][1].get("encoder") == "auto"
    if gen == "tokens" and needs_encoder:
        with pytest.raises(ValueError, match="encoder=mlp cannot read token ids"):
            _model(gen, method_name, likelihood)
        return
    if gen == "gru" and method_name == "joint":  # the layered models decode images
        with pytest.raises(ValueError, match="generator: must be one of"):
            HierarchicalConfig.from_dict({"generator": "gru", "likelihood": likelihood,
                                          "latent_sizes": [4, 2]})
        return
    model = _model(gen, method_name, likelihood)
    assert model.likelihood.name == likelihood
    _check_contract(model, method_name, tmp_path)


def test_chain_overrides_and_kernels_reach_the_model_chains():
    torch.manual_seed(0)
    model = _model("mlp-8x8", "lebm")
    x = _data(model, 4)
    for kernel in ("langevin", "mala", "hmc", "kinetic"):
        _, trace = model.sample_latent(4, torch.Generator().manual_seed(0), record=True,
                                       kernel=kernel, n_steps=5, step_size=0.1)
        assert trace is not None and trace.log_density.shape == (5, 4)
        assert (trace.acceptance is not None) == (kernel in ("mala", "hmc"))
        z = model.infer(x, torch.Generator().manual_seed(0), kernel=kernel, n_steps=2)
        assert z.shape == (4, 6)
    # the overrides leave the model's own settings alone; bad ones are refused by name
    assert model.config.prior_chain.kernel == "langevin"
    with pytest.raises(ValueError, match="prior_chain.step_size: must be > 0"):
        model.sample(2, step_size=-1.0)
    with pytest.raises(ValueError, match="prior_chain.kernel: must be one of"):
        model.sample(2, kernel="gibbs")
    # step_scale shrinks the step: the first move of a noiseless chain scales by s²
    z0 = torch.randn(3, 6)
    one = dict(n_steps=1, noise=False, z0=z0)
    d1 = model.sample_latent(3, **one)[0] - z0
    d2 = model.sample_latent(3, step_scale=0.5, **one)[0] - z0
    torch.testing.assert_close(d2, 0.25 * d1)


# ---------------------------------------------------------------------------- priors

PRIOR_SETTINGS = PriorSettings(sigma0=0.7, n_classes=3, energy_widths=(8,))


@pytest.mark.parametrize("kind", PRIORS)
def test_prior_contract(kind: str):
    torch.manual_seed(0)
    latent = LatentSpec((3, 2))  # two blocks: flat priors read z as one 5-d vector
    prior = build_prior(kind, latent, PRIOR_SETTINGS)
    assert prior.kind == kind and prior.latent == latent
    z = torch.randn(6, 5)
    # log p̃ = f + base
    torch.testing.assert_close(prior.log_density(z), prior.neg_energy(z)
                               + prior.base_log_density(z))
    # the base is normalised by base_log_normalizer (importance sampling from N(0, 2² I)),
    # and sample_base draws exactly from it: its mean matches the importance-weighted mean
    g = torch.Generator().manual_seed(3)
    u = 2.0 * torch.randn(200_000, 5, generator=g)
    with torch.no_grad():
        log_b = prior.base_log_density(u) + prior.base_log_normalizer()
        log_w = log_b - torch.distributions.Normal(0.0, 2.0).log_prob(u).sum(1)
    w = log_w.double().exp()
    assert abs(float(w.mean()) - 1) < 0.02
    a = prior.sample_base(20000, torch.Generator().manual_seed(1))
    assert a.shape == (20000, 5)
    weighted_mean = (w[:, None] * u.double()).sum(0) / w.sum()
    torch.testing.assert_close(a.double().mean(0), weighted_mean, atol=0.05, rtol=0)
    if "layers" not in prior.capabilities:  # the plain reference N(0, σ0² I)
        ref = torch.distributions.Normal(0.0, 0.7).log_prob(z).sum(1)
        torch.testing.assert_close(prior.base_log_density(z) + prior.base_log_normalizer(),
                                   ref)
        torch.testing.assert_close(a.std(0), torch.full((5,), 0.7), atol=0.02, rtol=0)
    torch.testing.assert_close(a, prior.sample_base(20000, torch.Generator().manual_seed(1)),
                               rtol=0, atol=0)
    # capabilities are declared, not inferred from the class
    assert prior.needs_chain == ("energy" in prior.capabilities)
    if "energy" not in prior.capabilities:  # f ≡ 0: the prior is its base
        torch.testing.assert_close(prior.log_density(z), prior.base_log_density(z))
    if {"energy", "layers"} <= prior.capabilities:
        terms = prior.layer_energies(z)
        assert len(terms) == latent.n_layers
        torch.testing.assert_close(prior.neg_energy(z), torch.stack(terms).sum(0))
    if "symbols" in prior.capabilities:
        logits = prior.logits(z)
        assert logits.shape == (6, prior.n_classes)
        torch.testing.assert_close(prior.neg_energy(z), torch.logsumexp(logits, 1))
        cond = prior.conditional(1)(z)
        torch.testing.assert_close(cond, logits[:, 1] + prior.base_log_density(z))
    else:
        assert prior.n_classes == 0
        with pytest.raises(ValueError, match="symbol"):
            prior.conditional(0)
    if not prior.needs_chain:
        torch.testing.assert_close(prior.neg_energy(z), torch.zeros(6))
    with pytest.raises(ValueError, match="unknown prior"):
        build_prior("flow", latent, PRIOR_SETTINGS)


def test_svhn_generator_is_the_paper_architecture():
    """REFERENCE §1.3: 100 → 512 (4×4) → 256 (8×8) → 128 (16×16) → 3 (32×32), tanh."""
    from torch import nn

    from lebm.config import preset_config

    cfg = preset_config("svhn").model
    cfg.data_shape = (3, 32, 32)
    model = LatentEBM(cfg)
    convs = [m for m in model.generator.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.stride, c.padding) for c in convs] == [
        (100, 512, (4, 4), (1, 1), (0, 0)), (512, 256, (4, 4), (2, 2), (1, 1)),
        (256, 128, (4, 4), (2, 2), (1, 1)), (128, 3, (4, 4), (2, 2), (1, 1))]
    assert all(c.bias is not None for c in convs)
    acts = [m for m in model.generator.modules() if isinstance(m, nn.LeakyReLU)]
    assert len(acts) == 3 and all(a.negative_slope == 0.2 for a in acts)
    assert isinstance(list(model.generator.modules())[-1], nn.Tanh)
    lins = [m for m in model.prior.modules() if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in lins] == [(100, 200), (200, 200), (200, 1)]
    assert sum(isinstance(m, nn.GELU) for m in model.prior.modules()) == 2
    c = model.config
    assert c.sigma == 0.3
    assert (c.prior_chain.kernel, c.prior_chain.n_steps, c.prior_chain.step_size) == (
        "langevin", 60, 0.4)
    assert (c.posterior_chain.kernel, c.posterior_chain.n_steps,
            c.posterior_chain.step_size) == ("langevin", 20, 0.1)
    m = preset_config("svhn").method
    assert (m.lr_g, m.lr_e, m.beta1_g, m.beta1_e, m.lr_decay) == (1e-4, 2e-5, 0.5, 0.5, 0.998)
    assert preset_config("svhn").train.batch_size == 100


def test_model_rejects_bad_input():
    model = _model("mlp-8x8", "lebm")
    with pytest.raises(ValueError, match="expected data of shape"):
        model.infer(torch.zeros(2, 1, 7, 7))
    with pytest.raises(ValueError, match="NaN"):
        model.infer(torch.full((2, 1, 8, 8), float("nan")))
    with pytest.raises(ValueError, match="n must be"):
        model.sample(0)
    bern = _model("mlp-8x8", "lebm", "bernoulli")
    with pytest.raises(ValueError, match="binary data"):
        bern.infer(torch.zeros(2, 1, 8, 8))
    tok = _model("tokens", "lebm", "categorical")
    with pytest.raises(ValueError, match="integer token ids"):
        tok.infer(torch.zeros(2, 5))
    with pytest.raises(ValueError, match=r"token ids must be in \[0, 7\)"):
        tok.infer(torch.full((2, 5), 9))


def test_old_flat_model_configs_still_load():
    """Configs written before the chains had their own section (lebm 0.1 run folders)."""
    old = {"n_z": 4, "generator": "mlp", "prior_steps": 7, "prior_step_size": 0.3,
           "posterior_steps": 9, "posterior_step_size": 0.05, "init_std": 0.5,
           "langevin_noise": False, "chain_dtype": "bfloat16", "channels_last": True,
           "compile": False, "update_dtype": "auto", "data_shape": [1, 8, 8]}
    c = ModelConfig.from_dict(old)
    assert (c.prior_chain.n_steps, c.prior_chain.step_size) == (7, 0.3)
    assert (c.posterior_chain.n_steps, c.posterior_chain.step_size) == (9, 0.05)
    assert c.prior_chain.init_std == c.posterior_chain.init_std == 0.5
    assert not c.prior_chain.noise and not c.posterior_chain.noise
    assert (c.precision.chain_dtype, c.precision.channels_last,
            c.precision.update_dtype) == ("bfloat16", True, "auto")
    assert c.data_shape == (1, 8, 8)
