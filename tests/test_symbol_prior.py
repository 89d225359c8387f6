"""The symbol-vector prior: marginal = log-sum-exp of the K logits, p(y|z) = softmax."""

from __future__ import annotations

import pytest
import torch

from lebm.models import LatentEBM, ModelConfig


def _model(**kw) -> LatentEBM:
    kw = {"n_classes": 4, **kw}
    cfg = ModelConfig.from_dict(dict(n_z=3, generator="mlp", gen_widths=(8,),
                                     gen_output="identity", prior="symbol",
                                     energy_widths=(16,), data_shape=(2,), **kw))
    return LatentEBM(cfg)


def test_marginal_is_log_sum_exp_and_conditionals_normalise():
    torch.manual_seed(0)
    model = _model()
    z = torch.randn(5, 3)
    logits = model.prior.logits(z)
    assert logits.shape == (5, 4)
    base = -z.pow(2).sum(1) / 2
    torch.testing.assert_close(model.prior_log_density(z), torch.logsumexp(logits, 1) + base)
    # p̃(z) = Σ_y p̃(y, z): the class densities sum (in exp) to the marginal
    per_class = torch.stack([model.prior.class_log_density(z, k) for k in range(4)], 1)
    torch.testing.assert_close(torch.logsumexp(per_class, 1), model.prior_log_density(z))


def test_class_conditional_sampling_follows_f_k():
    """With linear logits f_k(z) = a_kᵀz, p(z | y=k) = N(a_k, I): chains find each mean."""
    torch.manual_seed(0)
    model = _model(prior_steps=300, prior_step_size=0.3)
    a = torch.tensor([[2.0, 0, 0], [0, 2.0, 0], [0, 0, 2.0], [-2.0, -2.0, 0]])
    lin = torch.nn.Linear(3, 4)
    with torch.no_grad():
        lin.weight.copy_(a)
        lin.bias.zero_()
    model.prior.energy_net = lin
    for k in range(4):
        z, _ = model.sample_latent(4000, torch.Generator().manual_seed(k), class_=k)
        torch.testing.assert_close(z.mean(0), a[k], atol=0.1, rtol=0)
    with pytest.raises(ValueError, match="class must be in 0..3"):
        model.sample_latent(2, class_=4)
    with pytest.raises(ValueError, match="n_classes >= 2"):
        _model(n_classes=1)
    gauss = LatentEBM(ModelConfig(n_z=3, generator="mlp", data_shape=(2,), prior="gaussian",
                                  gen_output="identity"))
    with pytest.raises(ValueError, match="symbol-vector prior"):
        gauss.classify(torch.zeros(2, 2))
