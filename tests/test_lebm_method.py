"""The LEBM training step: signs, detach rules, scaling, ABP."""

from __future__ import annotations

import torch

from lebm.methods import LEBM, Batch, LEBMConfig
from lebm.models import ChainConfig, LatentEBM, ModelConfig


def _model(prior: str = "ebm") -> LatentEBM:
    torch.manual_seed(0)
    return LatentEBM(ModelConfig(n_z=4, generator="mlp", gen_widths=(16,), data_shape=(1, 8, 8),
                                 prior=prior, energy_widths=(16,),
                                 prior_chain=ChainConfig(n_steps=4, step_size=0.4),
                                 posterior_chain=ChainConfig(n_steps=4, step_size=0.1)))


def test_losses_follow_reference_equations():
    """L_G = mean_i ‖x_i − g(z_i)‖² (no 1/2σ², §0.4); L_f = mean f(z_prior) − mean f(z_post)."""
    model = _model()
    x = torch.rand(6, 1, 8, 8) * 2 - 1
    gen = torch.Generator().manual_seed(0)
    out = LEBM(model, LEBMConfig()).step(Batch(x), gen)

    # replay the two chains with the same random stream (posterior first, then prior)
    gen = torch.Generator().manual_seed(0)
    z_post = model.infer(x, gen)
    z_prior, _ = model.sample_latent(6, gen)
    with torch.no_grad():
        want_g = ((x - model.generator(z_post)) ** 2).flatten(1).sum(1).mean()
        f = model.prior.neg_energy
        want_e = f(z_prior).mean() - f(z_post).mean()
    torch.testing.assert_close(out.losses["generator"].detach(), want_g)
    torch.testing.assert_close(out.losses["energy"].detach(), want_e)

    alpha = 0.01  # the optional penalty on f's values at both sample sets
    out_l2 = LEBM(model, LEBMConfig(energy_l2=alpha)).step(Batch(x),
                                                           torch.Generator().manual_seed(0))
    with torch.no_grad():
        want_l2 = want_e + alpha * (f(z_post).square().mean() + f(z_prior).square().mean())
    torch.testing.assert_close(out_l2.losses["energy"].detach(), want_l2)
    assert out_l2.losses["energy"].requires_grad

    out_gauss = LEBM(model, LEBMConfig(recon_loss="gaussian")).step(
        Batch(x), torch.Generator().manual_seed(0))
    torch.testing.assert_close(out_gauss.losses["generator"].detach(), want_g / (2 * 0.3**2))


def test_chains_leave_parameters_untouched_and_outputs_detached():
    model = _model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    LEBM(model, LEBMConfig()).step(Batch(torch.rand(3, 1, 8, 8)),
                                   torch.Generator().manual_seed(0))
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k])
    assert all(p.grad is None for p in model.parameters())
    assert flags == {n: p.requires_grad for n, p in model.named_parameters()}


def test_energy_update_raises_f_on_posterior_relative_to_prior():
    model = _model()
    method = LEBM(model, LEBMConfig(lr_e=1e-2))
    specs = method.optimizers()
    opt = torch.optim.SGD(specs["energy"].params, lr=0.05)
    x = torch.rand(50, 1, 8, 8) * 2 - 1
    gen = torch.Generator().manual_seed(0)
    z_post = model.infer(x, gen)
    z_prior, _ = model.sample_latent(50, gen)
    f = model.prior.neg_energy
    gap_before = (f(z_post).mean() - f(z_prior).mean()).item()
    for _ in range(5):
        opt.zero_grad()
        (f(z_prior).mean() - f(z_post).mean()).backward()
        opt.step()
    assert (f(z_post).mean() - f(z_prior).mean()).item() > gap_before


def test_abp_has_no_energy_network_or_prior_chain():
    model = _model("gaussian")
    method = LEBM(model, LEBMConfig())
    assert set(method.optimizers()) == {"generator"}
    out = method.step(Batch(torch.rand(3, 1, 8, 8)), torch.Generator().manual_seed(0),
                      diagnostics=True)
    assert set(out.losses) == {"generator"}
    assert "f_pos" not in out.metrics and "post_grad_norm_last" in out.metrics


def test_on_divergence_shrinks_step_sizes_in_the_method_state_not_the_model():
    """Both chains run with the step × step_scale after a divergence; the model's config (what
    a saved model samples with) is unchanged, and the scale survives a state round trip."""
    model = _model()
    method = LEBM(model, LEBMConfig())
    x = torch.rand(3, 1, 8, 8) * 2 - 1

    def first_moves(m: LEBM) -> tuple[torch.Tensor, torch.Tensor]:
        """z after the first noiseless step of each chain, from zero (∝ step²)."""
        z0 = torch.zeros(3, 4)
        post = m.model.infer_latent(x, z0=z0, n_steps=1, noise=False,
                                    step_scale=m.step_scale)[0]
        prior = m.model.sample_latent(3, z0=z0 + 1, n_steps=1, noise=False,
                                      step_scale=m.step_scale)[0] - 1
        return post, prior

    before = first_moves(method)
    method.on_divergence(0.5)
    assert method.step_scale == 0.5
    after = first_moves(method)
    for b, a in zip(before, after):
        torch.testing.assert_close(a, 0.25 * b)
    assert model.config.prior_chain.step_size == 0.4
    assert model.config.posterior_chain.step_size == 0.1
    again = LEBM(model, LEBMConfig())
    again.load_state(method.state())
    assert again.step_scale == 0.5


def test_the_step_runs_both_chains_with_the_divergence_scale():
    model = _model()
    method = LEBM(model, LEBMConfig())
    method.on_divergence(0.6)
    x = torch.rand(6, 1, 8, 8) * 2 - 1
    out = method.step(Batch(x), torch.Generator().manual_seed(0))
    gen = torch.Generator().manual_seed(0)
    z_post = model.infer(x, gen, step_scale=0.6)
    z_prior, _ = model.sample_latent(6, gen, step_scale=0.6)
    with torch.no_grad():
        f = model.prior.neg_energy
        want_g = ((x - model.generator(z_post)) ** 2).flatten(1).sum(1).mean()
        want_e = f(z_prior).mean() - f(z_post).mean()
    torch.testing.assert_close(out.losses["generator"].detach(), want_g)
    torch.testing.assert_close(out.losses["energy"].detach(), want_e)
