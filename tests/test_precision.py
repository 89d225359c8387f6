"""The speed levers keep the maths: bf16 chains, channels-last, compile, bf16 update."""

from __future__ import annotations

import shutil

import pytest
import torch

from lebm.config import build_config
from lebm.errors import ConfigError
from lebm.methods import METHODS, Batch
from lebm.models import LatentEBM, ModelConfig
from lebm.sampling.precision import native_bf16, resolve_dtype

W = torch.tensor([[1.0, 0.5], [-0.3, 0.8], [0.2, -1.0]])
X = torch.tensor([0.7, 0.4, -0.9])


def test_resolve_dtype():
    assert resolve_dtype("float32", "cpu") == torch.float32
    assert resolve_dtype("bfloat16", "cpu") == torch.bfloat16
    want = torch.bfloat16 if native_bf16("cpu") else torch.float32
    assert resolve_dtype("auto", "cpu") == want
    with pytest.raises(ValueError, match="float16"):
        resolve_dtype("float16", "cpu")


def test_config_rejects_unknown_dtype():
    with pytest.raises(ConfigError, match="chain_dtype"):
        build_config("digits", ["chain_dtype=float16"])


def _linear_model(dtype: str) -> LatentEBM:
    cfg = ModelConfig.from_dict(dict(n_z=2, generator="mlp", gen_widths=(), gen_output="identity",
                                     prior="gaussian", sigma=0.5, posterior_steps=600,
                                     posterior_step_size=0.08, chain_dtype=dtype,
                                     data_shape=(3,)))
    model = LatentEBM(cfg)
    with torch.no_grad():
        model.generator.net[0].weight.copy_(W)
        model.generator.net[0].bias.zero_()
    return model


def test_bf16_posterior_chain_statistics_match_float32_and_closed_form():
    """Linear-Gaussian posterior: bf16 chain mean/cov within 0.03 of float32 and of truth."""
    cov = torch.linalg.inv(torch.eye(2) + W.T @ W / 0.25)
    mean = cov @ W.T @ X / 0.25
    stats = {}
    for dtype in ("float32", "bfloat16"):
        z = _linear_model(dtype).infer(X.expand(4000, 3).clone(),
                                       torch.Generator().manual_seed(3))
        assert z.dtype == torch.float32  # the chain state stays float32
        stats[dtype] = (z.mean(0), torch.cov(z.T))
        torch.testing.assert_close(stats[dtype][0], mean, atol=0.03, rtol=0)
        torch.testing.assert_close(stats[dtype][1], cov, atol=0.03, rtol=0)
    torch.testing.assert_close(stats["bfloat16"][0], stats["float32"][0], atol=0.03, rtol=0)
    torch.testing.assert_close(stats["bfloat16"][1], stats["float32"][1], atol=0.03, rtol=0)


def _conv_model(**overrides) -> LatentEBM:
    cfg = build_config("mnist", [f"{k}={v}" for k, v in overrides.items()])
    cfg.model.data_shape = (1, 28, 28)
    torch.manual_seed(0)
    return LatentEBM(cfg.model)


def test_fast_chain_on_conv_generator_tracks_float32():
    """Same noise, same start: the bf16 + channels-last posterior chain ends near float32's,
    leaves the float32 weights untouched and gives them no gradient."""
    x = torch.rand(16, 1, 28, 28) * 2 - 1
    z0 = torch.randn(16, 16, generator=torch.Generator().manual_seed(1))
    ref = _conv_model(chain_dtype="float32")
    fast = _conv_model(chain_dtype="bfloat16", channels_last="true")
    fast.load_state_dict(ref.state_dict())
    before = {k: v.clone() for k, v in fast.state_dict().items()}
    z_ref, tr_ref = ref.infer_latent(x, torch.Generator().manual_seed(2), z0=z0, record=True)
    z_fast, tr_fast = fast.infer_latent(x, torch.Generator().manual_seed(2), z0=z0, record=True)
    assert z_fast.dtype == torch.float32
    rel = (z_fast - z_ref).norm() / z_ref.norm()
    assert rel < 0.02, f"bf16 chain drifted {rel:.3%} from float32"
    # per-step log-density along the chain agrees to within 1 %
    torch.testing.assert_close(tr_fast.log_density, tr_ref.log_density, rtol=0.01, atol=0.5)
    for k, v in fast.state_dict().items():
        assert v.dtype == torch.float32 and torch.equal(v, before[k]), k
    assert all(p.grad is None for p in fast.parameters())
    assert all(p.requires_grad for p in fast.parameters())  # flags restored


def test_bf16_update_gradients_match_float32():
    x = torch.rand(32, 1, 28, 28) * 2 - 1
    grads = {}
    for dtype in ("float32", "bfloat16"):
        model = _conv_model(update_dtype=dtype)
        z = torch.randn(32, 16, generator=torch.Generator().manual_seed(0))
        loss = ((x - model.generate(z)) ** 2).flatten(1).sum(1).mean()
        loss.backward()
        grads[dtype] = torch.cat([p.grad.flatten() for p in model.generator.parameters()])
    cos = torch.nn.functional.cosine_similarity(grads["float32"], grads["bfloat16"], dim=0)
    assert cos > 0.999, f"bf16 update gradient cosine {cos:.5f}"


def test_bf16_training_step_is_finite_and_close():
    """One LEBM step with every lever on: losses within 1 % of the float32 step's."""
    x = torch.rand(8, 1, 28, 28) * 2 - 1
    losses = {}
    for name, sets in {"f32": {}, "fast": dict(chain_dtype="bfloat16", channels_last="true",
                                               update_dtype="bfloat16")}.items():
        model = _conv_model(**sets)
        method = METHODS["lebm"](model, build_config("mnist").method)
        out = method.step(Batch(x), torch.Generator().manual_seed(5))
        losses[name] = out.losses["generator"].item()
    assert abs(losses["fast"] - losses["f32"]) / losses["f32"] < 0.01, losses


@pytest.mark.skipif(shutil.which("cc") is None and shutil.which("gcc") is None,
                    reason="torch.compile on CPU needs a C compiler")
def test_compiled_chain_equals_eager():
    x = torch.rand(4, 1, 28, 28) * 2 - 1
    eager = _conv_model(posterior_steps=3)
    comp = _conv_model(posterior_steps=3, compile="true")
    comp.load_state_dict(eager.state_dict())
    z1, _ = eager.infer_latent(x, torch.Generator().manual_seed(9))
    z2, _ = comp.infer_latent(x, torch.Generator().manual_seed(9))
    torch.testing.assert_close(z2, z1, atol=1e-4, rtol=1e-4)
