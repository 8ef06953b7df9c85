import pytest

from combogan.config import Config, load, load_yaml, parse_set
from combogan.errors import UsageError, UserError


def test_set_overrides_with_types():
    cfg = load(None, ["model.ngf=16", "data.flip=false", "train.lr=1e-3", "loss.gan_mode=vanilla"])
    assert cfg.model.ngf == 16 and cfg.data.flip is False and cfg.train.lr == 1e-3 and cfg.loss.gan_mode == "vanilla"


def test_yaml_file_then_set(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("model:\n  ngf: 32\ndata:\n  crop_size: 64\n  load_size: 72\n")
    cfg = load(f, ["model.ngf=8"])
    assert cfg.model.ngf == 8 and cfg.data.crop_size == 64


@pytest.mark.parametrize("item, message", [
    ("model.ngff=3", "did you mean 'model.ngf'"),
    ("model.ngf=abc", "expects an integer"),
    ("data.flip=3", "true/false"),
    ("ngf=3", "section.name"),
    ("modle.ngf=3", "unknown section"),
    ("model.ngf", "key=value"),
    ("data.batch_size=0", "batch_size must be >= 1"),
    ("data.crop_size=300", "larger than data.load_size"),
    ("model.norm=group", "instance"),
    ("model.n_downsampling=4", "must be 0, 1, 2 or 3"),
    ("model.n_layers_d_local=-1", "n_layers_d_local must be >= 0"),
    ("loss.cycle_forward_grad=0.5", "expects true/false"),
    ("loss.lambda_latent=1", "'loss.lambda_latent' was removed in combogan 0.3"),
    ("model.spectral_norm=true", "'model.spectral_norm' was removed in combogan 0.3"),
    ("model.output=recolour", "must be one of auto, image, recolour_mask"),
])
def test_bad_overrides_are_usage_errors(item, message):
    with pytest.raises(UsageError, match=message):
        load(None, [item])


def test_crop_must_fit_the_downsampling():
    load(None, ["data.crop_size=36", "data.load_size=40"])  # 36 = 4 x 9
    with pytest.raises(UsageError, match="crop_size must be a multiple of 8"):
        load(None, ["data.crop_size=36", "data.load_size=40", "model.n_downsampling=3"])


def _auto_keys(cfg):
    return cfg.model.n_downsampling, cfg.model.output


def test_auto_keys_follow_the_last_crop_and_a_run_keeps_their_values(tmp_path):
    from combogan.config import save, saved

    assert _auto_keys(load(None)) == (2, "recolour_mask")  # 256 px crops
    assert _auto_keys(load(None, ["data.crop_size=64", "data.load_size=72"])) == (1, "image")
    assert _auto_keys(load(None, ["data.crop_size=68", "data.load_size=72"])) == (2, "recolour_mask")
    pinned = ["data.crop_size=128", "data.load_size=144", "model.n_downsampling=1", "model.output=image"]
    assert _auto_keys(load(None, pinned)) == (1, "image")
    f = tmp_path / "c.yaml"
    f.write_text("data:\n  crop_size: 128\n  load_size: 144\n")
    assert _auto_keys(load(f)) == (2, "recolour_mask")
    assert _auto_keys(load(f, ["data.crop_size=48"])) == (1, "image")  # the crop --set names counts
    from combogan.config import ModelConfig
    from combogan.model.combogan import ComboGAN

    assert _auto_keys(Config(model=ModelConfig().for_crop(48))) == (1, "image")
    assert ModelConfig(output="image").for_crop(256).output == "image"  # only 'auto' is settled
    with pytest.raises(ValueError, match="'auto', which depends on the crop"):
        ComboGAN(ModelConfig(), ["summer"])  # no crop to settle it for: refused, not guessed
    with pytest.raises(ValueError, match="model.output is 'auto'"):
        ComboGAN(ModelConfig(n_downsampling=1), ["summer"])
    with pytest.raises(UsageError, match=r"multiple of 4, got 66 \(model.n_downsampling=auto is 2"):
        load(None, ["data.crop_size=66", "data.load_size=72"])
    with pytest.raises(UsageError, match="expects an integer or 'auto'"):
        load(None, ["model.n_downsampling=two"])
    # A run saves the number, and resuming it with another crop keeps its architecture.
    save(load(None), tmp_path / "run.yaml")
    assert {"n_downsampling: 2", "output: recolour_mask"} <= set(map(str.strip, (tmp_path / "run.yaml").read_text().splitlines()))
    run = saved(load_yaml(tmp_path / "run.yaml"), "run.yaml")
    assert _auto_keys(load(None, ["data.crop_size=48"], base=run)) == (2, "recolour_mask")


def test_a_local_critic_needs_the_patchgan_and_fits_the_crop(tmp_path):
    assert load(None, ["model.n_layers_d_local=2"]).model.n_layers_d_local == 2
    with pytest.raises(UsageError, match="n_layers_d_local needs model.discriminator=patchgan"):
        load(None, ["model.n_layers_d_local=1", "model.discriminator=two_view"])
    # The default local critic goes with the default critic: naming the two-view one drops it,
    # from a file or --set, and a later --set can't bring it back silently.
    assert load(None, ["model.discriminator=two_view"]).model.n_layers_d_local == 0
    yaml_two_view = tmp_path / "tv.yaml"
    yaml_two_view.write_text("model:\n  discriminator: two_view\n")
    assert load(yaml_two_view, ["model.ngf=8"]).model.n_layers_d_local == 0
    with pytest.raises(UsageError, match="n_layers_d_local needs model.discriminator=patchgan"):
        load(yaml_two_view, ["model.n_layers_d_local=1"])
    assert load(None, ["model.discriminator=patchgan"]).model.n_layers_d_local == 1
    with pytest.raises(UsageError, match="too small for a 5-layer PatchGAN"):
        load(None, ["model.n_layers_d_local=5", "data.crop_size=64", "data.load_size=72"])


def test_typo_in_config_file_suggests_key(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("train:\n  epochs_per_domian: 10\n")
    with pytest.raises(UsageError, match="did you mean 'train.epochs_per_domain'"):
        load(f)


def test_missing_and_invalid_yaml(tmp_path):
    with pytest.raises(UserError, match="not found"):
        load(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("model: [unclosed\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load(bad)


def test_runs_saved_with_removed_options():
    """A removed option at its neutral value loads unchanged; any other value is refused with one
    line naming the option and the release that removed it."""
    from combogan.config import saved, saved_arch

    cfg = saved({"model": {"spectral_norm": False, "ngf": 8}, "loss": {"lambda_latent": 0.0, "lambda_autoencode": 0, "lambda_forward": 0.0}}, "old")
    assert cfg.model.ngf == 8
    for section, key, value in [("model", "spectral_norm", True), ("loss", "lambda_latent", 1.0), ("loss", "lambda_autoencode", 0.5),
                                ("loss", "lambda_forward", 0.2), ("model", "output", "recolour"), ("model", "upsample", "bilinear")]:
        with pytest.raises(UserError, match=rf"{section}.{key}={value}, an option removed in combogan 0.3; load it with an earlier release"):
            saved({section: {key: value}}, "old")
    assert saved_arch({"spectral_norm": False, "ngf": 8}).ngf == 8
    with pytest.raises(UserError, match="model.spectral_norm=True, an option removed"):
        saved_arch({"spectral_norm": True})


def test_parse_set_nests():
    assert parse_set(["a.b=1", "a.c=x"]) == {"a": {"b": 1, "c": "x"}}


# What the papers fix, key by key; every default that differs from the paper must be pinned back
# in the paper configs, or the bit-exact N = 2 test would no longer be testing the paper.
PAPER = {
    "model": {"ngf": 64, "ndf": 64, "n_blocks": 9, "n_downsampling": 2, "n_layers_d": 3, "norm": "instance", "dropout": 0.0, "activation": "relu",
              "upsample": "transpose", "discriminator": "patchgan", "n_layers_d_local": 0, "output": "image"},
    "loss": {"gan_mode": "lsgan", "lambda_cycle": 10.0, "cycle_forward_grad": True},
    "data": {"load_size": 286, "resize": "square", "crop_size": 256, "flip": True, "batch_size": 1},
    "train": {"lr": 2e-4, "beta1": 0.5, "beta2": 0.999, "epochs_per_domain": 100, "epochs": 0, "decay_fraction": 0.5,
              "pool_size": 50, "ema": 0.0, "diffaugment": "", "critic_lr_factor": 1.0},
}


@pytest.mark.parametrize("name, identity", [("alps_seasons", 0.0), ("cyclegan", 0.5)])
def test_paper_configs_are_the_paper_whatever_the_defaults(name, identity):
    import dataclasses
    from pathlib import Path

    cfg = load(Path(__file__).parents[1] / "configs" / f"{name}.yaml")
    for section, keys in PAPER.items():
        got = dataclasses.asdict(getattr(cfg, section))
        assert {k: got[k] for k in keys} == keys, section
    assert cfg.loss.lambda_identity == identity
    # The defaults are not the paper (README "Defaults"), so the pins above are doing work.
    assert load(None).model.upsample != "transpose" and load(None).train.ema > 0
