"""Contract test over every method × generator: shapes, gradients, save/load, determinism."""

from __future__ import annotations

import pytest
import torch

import lebm
from lebm.methods import METHODS
from lebm.models import LatentEBM, ModelConfig

GENERATORS = {
    "mlp-8x8": dict(generator="mlp", data_shape=(1, 8, 8), gen_widths=(32, 32)),
    "mlp-toy": dict(generator="mlp", data_shape=(2,), gen_widths=(16,), gen_output="identity"),
    "conv-16": dict(generator="conv", data_shape=(1, 16, 16), ngf=8),
    "conv-28": dict(generator="conv", data_shape=(1, 28, 28), ngf=8),
    "conv-32": dict(generator="conv", data_shape=(3, 32, 32), ngf=8),
    "conv-64": dict(generator="conv", data_shape=(3, 64, 64), ngf=4),
}
# the model each method trains (every method in METHODS must appear here)
METHOD_MODELS = {
    "lebm": dict(prior="ebm", energy_widths=(16, 16)),
    "abp": dict(prior="gaussian"),
    "vae": dict(prior="gaussian", encoder="auto", inference="encoder"),
    "svebm": dict(prior="symbol", n_classes=3, energy_widths=(16, 16), encoder="auto",
                  inference="encoder"),
}


def _model(gen: str, method: str, **kw) -> LatentEBM:
    spec = dict(METHOD_MODELS[method])
    if spec.get("encoder") == "auto":
        spec["encoder"] = GENERATORS[gen]["generator"]
    cfg = ModelConfig(n_z=6, prior_steps=3, posterior_steps=3, **GENERATORS[gen], **spec, **kw)
    return LatentEBM(cfg)


def test_every_method_has_a_contract_case():
    assert set(METHOD_MODELS) == set(METHODS)


@pytest.mark.parametrize("method_name", METHOD_MODELS)
@pytest.mark.parametrize("gen", GENERATORS)
def test_model_contract(gen: str, method_name: str, tmp_path):
    torch.manual_seed(0)
    model = _model(gen, method_name)
    shape = model.config.data_shape
    x = torch.rand(5, *shape) * 2 - 1

    # shapes
    z = model.infer(x, torch.Generator().manual_seed(0))
    assert z.shape == (5, 6) and not z.requires_grad
    assert model.decode(z).shape == (5, *shape)
    assert model.sample(3, torch.Generator().manual_seed(0)).shape == (3, *shape)
    assert model.reconstruct(x).shape == x.shape
    assert model.prior_log_density(z).shape == (5,)
    assert model.log_joint(z, x).shape == (5,)
    assert model.anomaly_score(x).shape == (5,)

    # gradients of the method's losses reach every parameter, and only through its optimiser
    method = METHODS[method_name](model, METHODS[method_name].Config())
    out = method.step(x, torch.Generator().manual_seed(1), diagnostics=True)
    specs = method.optimizers()
    assert set(out.losses) == set(specs)
    # f's output bias cancels in L_f = mean f(prior) − mean f(post): its gradient is exactly 0
    out_bias = [n for n, _ in model.named_parameters()
                if n.startswith("prior.")][-1:] if method_name == "lebm" else []
    for name, loss in out.losses.items():
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
    assert isinstance(again, LatentEBM) and again.config == model.config
    zz = torch.randn(4, 6)
    torch.testing.assert_close(again.decode(zz), model.decode(zz), rtol=0, atol=0)
    torch.testing.assert_close(again.prior_log_density(zz), model.prior_log_density(zz),
                               rtol=0, atol=0)
    torch.testing.assert_close(again.infer(x, torch.Generator().manual_seed(2)),
                               model.infer(x, torch.Generator().manual_seed(2)), rtol=0, atol=0)

    # deterministic given a torch.Generator
    a = model.sample(4, torch.Generator().manual_seed(5))
    b = model.sample(4, torch.Generator().manual_seed(5))
    torch.testing.assert_close(a, b, rtol=0, atol=0)


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
    assert (c.sigma, c.prior_steps, c.prior_step_size, c.posterior_steps,
            c.posterior_step_size) == (0.3, 60, 0.4, 20, 0.1)
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
