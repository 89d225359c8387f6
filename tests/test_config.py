"""Config parsing and validation: bad keys, types and values fail before training."""

from __future__ import annotations

import pytest

from lebm.config import PRESETS, build_config, preset_config
from lebm.errors import ConfigError


def test_every_preset_resolves_and_validates():
    for name in PRESETS:
        cfg = preset_config(name)
        assert cfg.preset == name
        if name.startswith("abp-"):  # the twin's networks with the energy switched off
            twin = preset_config(name[4:])
            assert cfg.model.prior == {"joint": "layers"}.get(twin.model.prior, "gaussian")
            assert cfg.method_name == twin.method_name or cfg.model.prior == "gaussian"
            assert cfg.model.generator == twin.model.generator
            assert cfg.model.data_shape == twin.model.data_shape
            width = "latent_sizes" if cfg.model.prior == "layers" else "n_z"
            assert getattr(cfg.model, width) == getattr(twin.model, width)
    for required in ("digits", "mnist", "fashion-mnist", "svhn", "cifar10", "celeba64", "toy2d"):
        assert required in PRESETS and f"abp-{required}" in PRESETS


def test_overrides_parse_to_the_field_types():
    cfg = build_config("digits", ["model.prior_chain.n_steps=7", "sigma=0.25",
                                  "model.energy_widths=[50, 60]", "train.progress=false",
                                  "data.n_labels=none", "data.exclude_classes=1,4",
                                  "posterior_chain.kernel=mala", "chain_dtype=bfloat16"])
    assert cfg.model.prior_chain.n_steps == 7 and cfg.model.sigma == 0.25
    assert cfg.model.posterior_chain.kernel == "mala"
    assert cfg.model.precision.chain_dtype == "bfloat16"
    assert cfg.model.energy_widths == (50, 60)
    assert cfg.train.progress is False and cfg.data.n_labels is None
    assert cfg.data.exclude_classes == (1, 4)


@pytest.mark.parametrize("item, match", [
    ("model.prior_stepz=3",
     r"unknown config key 'model.prior_stepz'; did you mean model.prior_steps"),
    ("model.prior_chain.stepsize=3",
     r"unknown config key 'model.prior_chain.stepsize'; did you mean "
     r"model.prior_chain.step_size"),
    ("step_size=0.2", r"unknown config key 'step_size'; did you mean "
                      r"model.prior_chain.step_size, model.posterior_chain.step_size"),
    ("model.prior_chain.kernel=gibbs", "model.prior_chain.kernel: must be one of langevin"),
    ("model.posterior_chain.step_size=0", r"model.posterior_chain.step_size: must be > 0"),
    ("nonsense=1", "unknown config key 'nonsense'"),
    ("modle.n_z=3", "unknown config section"),
    ("model.n_z=abc", r"model.n_z: expected an integer, got 'abc'"),
    ("model.sigma=-1", r"model.sigma: must be > 0"),
    ("model.prior_steps=-3", r"model.prior_chain.n_steps: must be >= 0"),
    ("train.progress=maybe", "train.progress: expected true or false"),
    ("model.generator=biggan", "model.generator: must be one of mlp, conv"),
    ("method.beta1_g=1.0", r"method.beta1_g: must be < 1"),
    ("model.sigma=nan", "must be a finite number"),
    ("data.name=imagenet", "data.name: unknown data set 'imagenet'"),
    ("model.data_shape=1,2", "set from the data"),
    ("train.device=tpu", "train.device"),
    ("missing-equals", "--set expects key=value"),
])
def test_bad_overrides_are_rejected_with_the_key_named(item, match):
    with pytest.raises(ConfigError, match=match):
        build_config("digits", [item])


def test_noise_off_is_refused_for_a_metropolis_kernel():
    build_config("digits", ["model.prior_chain.noise=false"])  # gradient ascent: fine
    with pytest.raises(ConfigError, match="model.prior_chain.noise: false only applies to the "
                                          "langevin kernel, not mala"):
        build_config("digits", ["model.prior_chain.kernel=mala", "model.prior_chain.noise=false"])


def test_unknown_preset():
    with pytest.raises(ConfigError, match="unknown preset 'nope'"):
        preset_config("nope")


def test_round_trip_through_dict():
    from lebm.config import RunConfig

    cfg = build_config("svhn", ["model.prior_steps=11"])
    again = RunConfig.from_dict(cfg.to_dict())
    assert again == cfg


def test_fast_path_is_a_preset_choice_over_a_float32_library_default():
    from lebm.models import ModelConfig

    base = ModelConfig().precision
    assert (base.chain_dtype, base.channels_last, base.update_dtype) == ("float32", False,
                                                                         "float32")
    for name in ("mnist", "svhn-fast", "cifar10", "abp-svhn-fast", "vae-mnist",
                 "svebm-mnist-100"):
        m = preset_config(name).model.precision
        assert (m.chain_dtype, m.channels_last, m.update_dtype) == ("auto", True, "auto"), name
    assert preset_config("digits").model.precision.chain_dtype == "float32"  # MLP: no gain


def test_the_paper_exact_svhn_preset_is_exact():
    """Issue 16: float32 everywhere, every example of every epoch (733 steps, the last of 57
    images), 201 epochs, and training stops when the guard fires, as the script's does."""
    cfg = preset_config("svhn")
    p = cfg.model.precision
    assert (p.chain_dtype, p.channels_last, p.update_dtype, p.compile) == (
        "float32", False, "float32", False)
    t = cfg.train
    assert (t.drop_last, t.max_steps, t.recon_guard, t.guard_after_epochs, t.on_divergence) == (
        False, 201 * 733, 300.0, 10, "stop")


def test_old_flat_keys_are_aliases_everywhere():
    """--set, presets and run configs of earlier versions all accept the flat chain keys."""
    from lebm.config import RunConfig

    cfg = build_config("digits", ["model.prior_steps=7", "posterior_step_size=0.05",
                                  "init_std=0.5", "model.channels_last=true"])
    m = cfg.model
    assert m.prior_chain.n_steps == 7 and m.posterior_chain.step_size == 0.05
    assert m.prior_chain.init_std == m.posterior_chain.init_std == 0.5
    assert m.precision.channels_last is True
    old = cfg.to_dict()
    old["model"] = {k: v for k, v in old["model"].items()
                    if k not in ("prior_chain", "posterior_chain", "precision")}
    old["model"].update(prior_steps=9, prior_step_size=0.3, chain_dtype="bfloat16")
    again = RunConfig.from_dict(old)
    assert again.model.prior_chain.n_steps == 9 and again.model.prior_chain.step_size == 0.3
    assert again.model.posterior_chain.n_steps == 20  # not in the old dict: the default
    assert again.model.precision.chain_dtype == "bfloat16"


def test_presets_come_from_the_method_modules():
    from lebm.methods import METHODS

    declared = {name: m for m in METHODS.values() for name in m.presets()}
    assert set(declared) == set(PRESETS)
    for name, preset in PRESETS.items():
        assert declared[name].name == preset.method, name
