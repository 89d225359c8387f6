"""Generalised EBMs (KALE): the estimator against Gaussians where the truth is known, the
latent target's sign and temperature, the alternation, the partition's initialisation, the
gradient transform, save/load and exact resume."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import lebm
from lebm.config import build_config
from lebm.latent import LatentSpec
from lebm.methods import Batch
from lebm.methods.gebm import gradient_penalty, kale_energy_loss, log_mean_exp
from lebm.models import DataEnergyPrior
from lebm.sampling import MALA, run_chain


@pytest.fixture(autouse=True)
def _one_thread():
    from lebm.train.threads import using_threads

    with using_threads(1):
        yield


def _toy_learner(sets: list[str] = (), data_shape=(2,)):
    from lebm.train.learner import Learner

    cfg = build_config("gebm-toy2d", ["model.gen_widths=32", "model.energy_widths=32",
                                      *sets])
    return Learner(cfg, torch.device("cpu"), data_shape=data_shape)


def test_kale_with_a_linear_energy_recovers_the_log_ratio_and_the_kl():
    """Base G = N(0, 1), data P = N(μ, 1): the optimal energy is E(x) + A = −log dP/dG =
    −μx + μ²/2, and −L at the optimum is KALE = KL(P ‖ G) = μ²/2 (the linear family holds the
    true log-ratio). Adam on fresh samples; tolerances ≈ 5 × the seed-to-seed spread."""
    mu, g = 1.5, torch.Generator().manual_seed(0)
    w = torch.zeros((), requires_grad=True)
    b = torch.zeros((), requires_grad=True)
    A = torch.zeros((), requires_grad=True)
    opt = torch.optim.Adam([w, b, A], lr=0.01)
    for _ in range(3000):
        x = mu + torch.randn(512, generator=g)
        xb = torch.randn(512, generator=g)
        loss = kale_energy_loss(w * x + b, w * xb + b, A)
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert abs(float(w.detach()) + mu) < 0.1
    assert abs(float((b + A).detach()) - mu**2 / 2) < 0.15
    x = mu + torch.randn(200_000, generator=g)
    xb = torch.randn(200_000, generator=g)
    with torch.no_grad():
        kale = -kale_energy_loss(w * x + b, w * xb + b, A)
    assert abs(float(kale) - mu**2 / 2) < 0.05  # KL = 1.125


def test_the_latent_target_is_the_base_tilted_by_minus_T_times_the_energy():
    """G(z) = z + c and E(x) = wᵀx: ν(z) ∝ N(z; 0, I) exp(−T wᵀ(z + c)) = N(−T w, I). MALA
    on ``prior_target`` recovers the mean for T = 1 and T = 3."""
    d = 3
    w = torch.tensor([0.5, -0.3, 0.2])
    energy = nn.Linear(d, 1)
    with torch.no_grad():
        energy.weight.copy_(w[None])
        energy.bias.fill_(0.7)
    for T in (1.0, 3.0):
        prior = DataEnergyPrior(LatentSpec((d,)), _Squeeze(energy), temperature=T)
        prior.bind(lambda z: z + 2.0)
        g = torch.Generator().manual_seed(1)
        z0 = torch.randn(4000, d, generator=g)
        z, _ = run_chain(MALA(0.8), prior.log_density, z0, 200, generator=g)
        torch.testing.assert_close(z.mean(0), -T * w, atol=0.06, rtol=0)
        torch.testing.assert_close(z.var(0), torch.ones(d), atol=0.1, rtol=0)


class _Squeeze(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner(x).squeeze(-1)


def test_the_base_moves_to_the_data_mean():
    """End to end through the Learner: data N(μ, 0.3² I) in 2-D, an MLP base from N(0, I);
    after training, the base samples' mean is μ (KALE's base gradient pulls G(z) toward low
    energy, the energy is low on data)."""
    learner = _toy_learner(["method.lr_g=2e-3", "method.lr_e=2e-3", "method.lr_a=2e-3",
                            "method.energy_steps_init=20", "method.energy_init_every=100"])
    mu = torch.tensor([2.0, -1.0])
    g = torch.Generator().manual_seed(0)
    for _ in range(1500):
        x = mu + 0.3 * torch.randn(128, 2, generator=g)
        _, bad = learner.update(Batch(x), g)
        assert bad is None
    model = learner.model
    with torch.no_grad():
        base = model.decode(model.prior.sample_base(4000, g))
    # measured: mean within 0.03 and std 0.26–0.35 on two seeds (1.0 off at step 300)
    torch.testing.assert_close(base.mean(0), mu, atol=0.15, rtol=0)
    torch.testing.assert_close(base.std(0), torch.full((2,), 0.3), atol=0.12, rtol=0)


def test_alternation_follows_the_schedule_and_survives_state_round_trip():
    learner = _toy_learner(["method.energy_steps_init=3", "method.energy_steps=2",
                            "method.energy_init_every=2", "method.partition_init_batches=0"])
    method, g = learner.method, torch.Generator().manual_seed(0)
    kinds = []
    for i in range(14):
        if i == 6:  # a checkpoint/resume in the middle keeps the schedule
            state = method.state()
            method.energy_left, method.base_steps = 99, 99
            method.load_state(state)
        out = method.step(Batch(torch.randn(8, 2, generator=g)), g)
        kinds.append("B" if "base" in out.losses else "E")
        assert ("base" in out.losses) != ("energy" in out.losses)
    # 3 energy steps, base 1, 2 energy, base 2 (a multiple of 2: 3 energy next), …
    assert "".join(kinds) == "EEEBEEBEEEBEEB"


def test_partition_starts_at_the_monte_carlo_log_mean_exp():
    learner = _toy_learner(["method.partition_init_batches=4"])
    method, model = learner.method, learner.model
    value = method.init_partition(50, torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        v = torch.cat([-model.prior.data_energy(model.generator(model.prior.sample_base(50, g)))
                       for _ in range(4)])
    assert math.isclose(value, float(log_mean_exp(v)), rel_tol=0, abs_tol=1e-5)
    assert math.isclose(float(model.prior.log_partition), value, abs_tol=1e-6)
    assert method.partition_ready


def test_gradient_penalty_of_a_linear_energy_is_its_squared_norm():
    w = torch.tensor([[3.0, -4.0]])
    energy = _Squeeze(nn.Linear(2, 1))
    with torch.no_grad():
        energy.inner.weight.copy_(w)
    gp = gradient_penalty(energy, torch.randn(16, 2), torch.randn(20, 2),
                          torch.Generator().manual_seed(0))
    assert math.isclose(float(gp), 25.0, rel_tol=1e-6)
    gp.backward()  # a graph to the parameters (for the energy's update)
    assert energy.inner.weight.grad is not None


def test_grad_transform_bounds_the_energy_gradients():
    learner = _toy_learner(["method.grad_transform=true", "method.lr_e=1e-3",
                            "method.partition_init_batches=0", "method.penalty=0"])
    g = torch.Generator().manual_seed(0)
    x = 50 * torch.randn(64, 2, generator=g)  # far data: raw gradients far above 1
    _, bad = learner.update(Batch(x), g)
    assert bad is None
    grads = [p.grad for p in learner.model.prior.energy.parameters()]
    assert max(float(gr.abs().max()) for gr in grads) <= 1.0 + 1e-6
    # and the raw gradient of the same step is larger: the transform did something
    raw = _toy_learner(["method.lr_e=1e-3", "method.partition_init_batches=0",
                        "method.penalty=0"])
    raw.update(Batch(x), torch.Generator().manual_seed(0))
    assert max(float(p.grad.abs().max()) for p in raw.model.prior.energy.parameters()) > 1.0


def test_base_step_leaves_energy_and_partition_alone_and_energy_step_leaves_the_base():
    learner = _toy_learner(["method.energy_steps_init=1", "method.energy_steps=1",
                            "method.partition_init_batches=0"])
    model, g = learner.model, torch.Generator().manual_seed(0)
    x = torch.randn(32, 2, generator=g)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    learner.update(Batch(x), g)  # an energy step
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("generator."))
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("prior."))
    before = {k: v.clone() for k, v in after.items()}
    learner.update(Batch(x), g)  # a base step
    after = model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if k.startswith("prior."))
    assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith("generator."))


def test_training_resumes_exactly_and_loads_with_every_kernel(tmp_path):
    from lebm.train import Trainer

    from .test_train import _assert_same_state

    sets = ["data.limit=400", "train.batch_size=50", "train.progress=false",
            "model.gen_widths=16", "model.energy_widths=16", "method.energy_steps_init=3",
            "method.energy_init_every=3", "method.partition_init_batches=2",
            "train.sample_every=1000"]
    Trainer(build_config("gebm-toy2d", sets, **{"train.max_steps": 20}), tmp_path / "s").fit()
    Trainer(build_config("gebm-toy2d", sets + ["train.checkpoint_every=7"],
                         **{"train.max_steps": 11}), tmp_path / "h").fit()
    Trainer.resume(tmp_path / "h", max_steps=20).fit()
    _assert_same_state(tmp_path / "s", tmp_path / "h")

    model = lebm.load(tmp_path / "s")
    assert type(model).__name__ == "GEBM"
    for kernel in ("langevin", "mala", "hmc", "kinetic"):
        x = model.sample(6, torch.Generator().manual_seed(0), kernel=kernel, n_steps=5,
                         step_size=0.05)
        assert x.shape == (6, 2) and torch.isfinite(x).all()
    # the command line: the paper's kernel name and friction; a bad friction is refused
    from lebm.cli import main

    assert main(["sample", str(tmp_path / "s"), "--n", "4", "--kernel", "lmc", "--friction",
                 "100", "--steps", "5", "--step-size", "0.01",
                 "--out", str(tmp_path / "lmc.png")]) == 0
    assert (tmp_path / "lmc.png").is_file()
    assert main(["sample", str(tmp_path / "s"), "--kernel", "lmc", "--friction", "-1",
                 "--out", str(tmp_path / "bad.png")]) == 2
    # --steps 0 is the base sampler alone: G(z), z ~ N(0, I)
    base = model.sample(6, torch.Generator().manual_seed(4), n_steps=0)
    z = torch.randn(6, 2, generator=torch.Generator().manual_seed(4))
    torch.testing.assert_close(base, model.decode(z))


def test_bad_settings_are_refused_by_name():
    from lebm.errors import ConfigError

    with pytest.raises(ConfigError, match="prior_chain.init_std"):
        build_config("gebm-toy2d", ["model.prior_chain.init_std=0.5"])
    with pytest.raises(ConfigError, match="temperature"):
        build_config("gebm-toy2d", ["model.temperature=0"])
    with pytest.raises(ConfigError, match="energy_net"):
        build_config("gebm-mnist", ["model.energy_net=biggan"])
    from lebm.train.learner import Learner

    with pytest.raises(ConfigError, match="conv energy needs image data"):
        Learner(build_config("gebm-toy2d", ["model.energy_net=conv"]), torch.device("cpu"),
                data_shape=(2,))


# ------------------------------------------------------- SNGAN pair (the CIFAR-10 presets)


def test_sngan_convnet_pair_has_the_papers_layers():
    from lebm.nets.sngan import SNGANEnergy, SNGANGenerator

    g = SNGANGenerator(100, (3, 32, 32), ngf=64)
    assert g.dense.out_features == 512 * 4 * 4
    ups = [m for m in g.net if isinstance(m, nn.ConvTranspose2d)]
    assert [(m.in_channels, m.out_channels, m.kernel_size, m.stride) for m in ups] == [
        (512, 256, (4, 4), (2, 2)), (256, 128, (4, 4), (2, 2)), (128, 64, (4, 4), (2, 2)),
        (64, 3, (3, 3), (1, 1))]
    assert sum(isinstance(m, nn.BatchNorm2d) for m in g.net) == 4
    x = g(torch.randn(5, 100))
    assert x.shape == (5, 3, 32, 32) and x.abs().max() <= 1

    e = SNGANEnergy((3, 32, 32), ndf=64)
    convs = [m for m in e.trunk if isinstance(m, nn.Conv2d)]
    assert [m.out_channels for m in convs] == [64, 128, 128, 256, 256, 512, 512]
    assert [m.stride[0] for m in convs] == [1, 2, 1, 2, 1, 2, 1]
    assert all(nn.utils.parametrize.is_parametrized(m, "weight") for m in convs)
    assert e.head.in_features == 512 * 4 * 4
    assert not nn.utils.parametrize.is_parametrized(e.head)
    assert e(x).shape == (5,)
    # 28×28 (MNIST-sized) starts at 7×7; other sizes are refused by name
    assert SNGANGenerator(8, (1, 28, 28), ngf=4)(torch.randn(2, 8)).shape == (2, 1, 28, 28)
    assert SNGANEnergy((1, 28, 28), ndf=4)(torch.zeros(2, 1, 28, 28)).shape == (2,)
    with pytest.raises(ValueError, match="generator sngan supports square images"):
        SNGANGenerator(8, (3, 24, 24))
    with pytest.raises(ValueError, match="energy_net sngan needs square image"):
        SNGANEnergy((3, 32, 16))


def test_spectral_norm_bounds_each_conv_of_the_sngan_energies():
    """After power iterations, every normalised conv weight has largest singular value ≈ 1
    (as a matrix over its flattened input), which is what bounds the energy's slope."""
    from lebm.nets.sngan import ResNetEnergy, SNGANEnergy

    torch.manual_seed(0)
    for e in (SNGANEnergy((3, 16, 16), ndf=8), ResNetEnergy((3, 16, 16), ndf=8)):
        e.train()
        for _ in range(30):  # each forward pass in training mode runs one power iteration
            e(torch.randn(2, 3, 16, 16))
        e.eval()
        convs = [m for m in e.modules() if isinstance(m, nn.Conv2d)]
        assert convs and all(nn.utils.parametrize.is_parametrized(m, "weight") for m in convs)
        for m in convs:
            sigma = torch.linalg.matrix_norm(m.weight.detach().flatten(1), ord=2)
            assert abs(float(sigma) - 1) < 0.05


def test_resnet_pair_shapes_and_residual_shortcuts():
    from lebm.nets.sngan import ResNetEnergy, ResNetGenerator

    g = ResNetGenerator(16, (3, 32, 32), ngf=16)
    assert g(torch.randn(3, 16)).shape == (3, 3, 32, 32)
    e = ResNetEnergy((3, 32, 32), ndf=16)
    h = torch.randn(2, 3, 32, 32)
    sizes = []
    for block in e.trunk:
        h = block(h)
        sizes.append(h.shape[-1])
    assert sizes == [16, 8, 8, 8, 8]  # two halvings, then two blocks at 8×8, ReLU
    assert e(torch.randn(2, 3, 32, 32)).shape == (2,)
    # stride-1 blocks of equal width add their input unchanged; halving blocks do not
    e.eval()
    block, h8 = e.trunk[2], torch.randn(2, 16, 8, 8)
    torch.testing.assert_close(block(h8) - block.body(h8), h8)
    assert not isinstance(e.trunk[1].skip, nn.Identity)
    with pytest.raises(ValueError, match="multiple of 4"):
        ResNetEnergy((3, 10, 10))


def test_energy_floor_cuts_the_energy_off_below():
    from lebm.nets.energy import FlooredEnergy

    lin = nn.Linear(2, 1)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[4.0, 0.0]]))
        lin.bias.zero_()
    e = FlooredEnergy(lin, -2.0)
    x = torch.tensor([[-3.0, 0.0], [1.0, 0.0]], requires_grad=True)
    out = e(x).squeeze(-1)
    assert out.tolist() == [-2.0, 4.0]
    (grad,) = torch.autograd.grad(out.sum(), x)
    assert grad.tolist() == [[0.0, 0.0], [4.0, 0.0]]  # no pull below the floor


@pytest.mark.parametrize("preset", ["gebm-cifar10", "gebm-cifar10-resnet"])
def test_cifar10_presets_are_the_papers_and_train_on_cifar_files(preset, tmp_path):
    from lebm.nets.energy import FlooredEnergy
    from lebm.train import Trainer

    from .test_data import write_cifar_folder

    cfg = build_config(preset)
    assert (cfg.model.n_z, cfg.train.batch_size, cfg.model.temperature) == (100, 128, 100.0)
    assert (cfg.method.lr_e, cfg.method.lr_g, cfg.method.beta1, cfg.method.penalty) == (
        1e-4, 1e-4, 0.5, 1.0)
    # 150,000 base steps under the 5-per-step / 100-every-500 alternation
    assert cfg.train.max_steps == 150_000 + 300 * 100 + 149_700 * 5
    chain = cfg.model.prior_chain
    assert (chain.kernel, chain.n_steps, chain.friction) == ("kinetic", 1000, 0.04)
    assert chain.step_size == pytest.approx(2 * math.sqrt(1e-4))

    write_cifar_folder(tmp_path / "data" / "cifar-10-batches-bin")
    sets = [f"data.root={tmp_path / 'data'}", "model.ngf=4", "model.ndf=4",
            "train.batch_size=5", "train.progress=false", "method.energy_steps_init=2",
            "method.energy_init_every=2", "method.partition_init_batches=2",
            "train.sample_every=1000", "model.prior_chain.n_steps=3"]
    Trainer(build_config(preset, sets, **{"train.max_steps": 8}), tmp_path / "run").fit()
    model = lebm.load(tmp_path / "run")
    assert isinstance(model.prior.energy, FlooredEnergy) and model.prior.energy.floor == -10
    x = model.sample(4, torch.Generator().manual_seed(0))
    assert x.shape == (4, 3, 32, 32) and torch.isfinite(x).all()


# ---------------------------------------------------------------------------- flow base


def _flow_gebm(temperature: float = 1.0):
    from lebm.models import GEBM, GEBMConfig

    torch.manual_seed(0)
    return GEBM(GEBMConfig(base="flow", flow="maf", flow_transforms=2, flow_hidden=(16, 16),
                           energy_net="mlp", energy_widths=(16,), temperature=temperature,
                           data_shape=(2,)))


@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_flow_gebm_density_integrates_to_one(temperature):
    """log q(x) = log g(x) − T·E(x) − log Ẑ: exp(log q) summed on a fine 2-D grid is 1
    (within the Monte-Carlo error of Ẑ and the grid's), for an energy far from flat."""
    model = _flow_gebm(temperature)
    with torch.no_grad():
        for p in model.prior.energy.parameters():
            p.mul_(2.0)  # a real tilt: E varies by nats over the grid
    axis = torch.linspace(-8, 8, 801)
    grid = torch.stack(torch.meshgrid(axis, axis, indexing="xy"), -1).reshape(-1, 2)
    r = model.log_likelihood(grid, torch.Generator().manual_seed(0), n_partition=200_000)
    cell = float(axis[1] - axis[0]) ** 2
    mass_q = float(r["ll"].double().exp().sum()) * cell
    mass_g = float(r["base_ll"].double().exp().sum()) * cell
    assert abs(mass_g - 1) < 0.01  # the grid covers the base
    assert abs(mass_q - 1) < 0.02 + 3 * r["log_z_se"]
    energy = model.prior.data_energy(grid).detach()
    assert float(energy.max() - energy.min()) > 2  # the tilt is real
    torch.testing.assert_close(r["ll"], r["base_ll"] - temperature * energy - r["log_z"])


def test_flow_gebm_with_a_constant_energy_is_its_flow():
    model = _flow_gebm()
    with torch.no_grad():
        for p in model.prior.energy.parameters():
            p.zero_()
        list(model.prior.energy.parameters())[-1].fill_(0.7)  # E ≡ 0.7: Z = e^−0.7
    x = torch.randn(10, 2)
    r = model.log_likelihood(x, torch.Generator().manual_seed(0), n_partition=1000)
    assert math.isclose(r["log_z"], -0.7, abs_tol=1e-6) and r["log_z_se"] < 1e-6
    torch.testing.assert_close(r["ll"], r["base_ll"])


def test_flow_base_mle_loss_and_its_refusals():
    from lebm.errors import ConfigError
    from lebm.train.learner import Learner

    learner = Learner(build_config("gebm-flow-toy2d", ["method.energy_steps_init=0",
                                                       "method.partition_init_batches=0"]),
                      torch.device("cpu"), data_shape=(2,))
    x = torch.randn(32, 2)
    out = learner.method.step(Batch(x), torch.Generator().manual_seed(0))
    torch.testing.assert_close(out.losses["base"],
                               -learner.model.generator.log_prob(x).mean())
    with pytest.raises(ConfigError, match="base_loss=mle needs a base with a density"):
        Learner(build_config("gebm-toy2d", ["method.base_loss=mle"]), torch.device("cpu"),
                data_shape=(2,))
    with pytest.raises(ConfigError, match="energy_net=mlp"):
        build_config("gebm-flow-toy2d", ["model.energy_net=conv"])
    with pytest.raises(ConfigError, match="base=flow needs vector data"):
        Learner(build_config("gebm-mnist", ["model.base=flow", "model.energy_net=mlp"]),
                torch.device("cpu"), data_shape=(1, 28, 28))
    with pytest.raises(ValueError, match="needs a base with a density"):
        _toy_learner().model.log_likelihood(x)


def test_eval_ll_of_a_flow_gebm_is_the_exact_density(tmp_path):
    """``lebm eval --metrics ll`` on a flow-based GEBM: log g(x) − T·E(x) − log Ẑ, the same
    numbers as ``model.log_likelihood``; the base flow's beside it."""
    from lebm.evaluate import EvalSettings, evaluate
    from lebm.train import Trainer

    sets = ["data.limit=400", "train.batch_size=50", "train.progress=false",
            "model.flow_hidden=8,8", "model.energy_widths=8", "train.sample_every=1000",
            "method.energy_steps_init=2", "method.partition_init_batches=2"]
    Trainer(build_config("gebm-flow-toy2d", sets, **{"train.max_steps": 6}), tmp_path).fit()
    out = evaluate(tmp_path, ["ll"], EvalSettings(n_ll=200, progress=False))["metrics"]["ll"]
    model = lebm.load(tmp_path)
    from lebm.data import load_dataset

    x = load_dataset("8gaussians", "test").batch(torch.arange(200))
    r = model.log_likelihood(x, torch.Generator().manual_seed(0))
    assert math.isclose(out["base_nats"], float(r["base_ll"].mean()), abs_tol=1e-4)
    assert math.isclose(out["nats"], float(r["ll"].mean()), abs_tol=0.01)  # Ẑ's own draws
    assert "exact flow density" in out["recipe"]["estimator"]
