"""Configuration: typed dataclasses, loaded from YAML, overridden by `--set a.b=c`.

The config describes *what to train*; training leaves it as it is (the step, learning rate and
RNG live in the trainer state), so resuming re-derives every schedule. The one exception is
train.iters, which `train --time` settles while the learning rate is still constant.
"""

from __future__ import annotations

import dataclasses
import difflib
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import UsageError, UserError

# The crop side up to which each 'auto' model key takes its small-crop value (ModelConfig.for_crop;
# docs/design.md says why).
AUTO_SMALL_CROP_MAX = 64


@dataclass
class ModelConfig:
    """Architecture. Stored with every checkpoint and re-applied on load. Why each default
    differs from the paper: docs/design.md."""

    ngf: int = 64  # generator width (c7s1-ngf)
    ndf: int = 64  # critic width (C64 for ndf=64)
    n_blocks: int = 9  # residual blocks, split floor(n/2) encoder / rest decoder
    # Stride-2 stages on each side of the residual blocks (the paper: 2, a latent at 1/4
    # resolution). 'auto' settles it from data.crop_size when the config loads: 1 up to 64 px
    # (fine structure survives the trip), 2 above (the receptive field must span the crop).
    n_downsampling: int | str = "auto"
    n_layers_d: int = 3  # PatchGAN depth; 3 gives the 70x70 receptive field
    # A second, shallower PatchGAN beside the main one (1: 16x16 patches; 0: none, the paper):
    # it judges texture at the scale of a tree. PatchGAN critics only.
    n_layers_d_local: int = 1
    norm: str = "instance"  # instance | batch (official checkpoints trained with batch norm)
    dropout: float = 0.0  # dropout inside residual blocks (official checkpoints trained with it)
    activation: str = "prelu"  # relu (the paper) | prelu (the official ComboGAN code's)
    # How the decoder doubles resolution: 'nearest' (resize, then a 3x3 conv: no checkerboard),
    # 'transpose' (ConvTranspose2d k3 s2: the paper) or 'transpose4' (k4 s2: official ComboGAN
    # checkpoints).
    upsample: str = "nearest"
    # What the decoder draws (combogan.model.outputs): 'image' (the paper) or 'recolour_mask'
    # (a per-pixel mask blends a drawn image with a colour map of the source). 'auto' settles it
    # from data.crop_size when the config loads: image up to 64 px, recolour_mask above.
    output: str = "auto"
    # 'patchgan' (CycleGAN's) or 'two_view' (official ComboGAN checkpoints' critic).
    discriminator: str = "patchgan"

    @property
    def stages(self) -> int:
        """n_downsampling as a number: 'auto' must have been settled for a crop first."""
        return self._settled("n_downsampling")

    @property
    def output_kind(self) -> str:
        """output as a kind of combogan.model.outputs: 'auto' must have been settled for a crop first."""
        return self._settled("output")

    def _settled(self, key: str) -> Any:
        value = getattr(self, key)
        if value == "auto":
            raise ValueError(f"model.{key} is 'auto', which depends on the crop: give a value, or settle it with "
                             "ModelConfig.for_crop(crop_size) (combogan.config.load() does)")
        return value

    def for_crop(self, crop_size: int) -> ModelConfig:
        """This architecture with each 'auto' settled for crops of crop_size: up to
        AUTO_SMALL_CROP_MAX one stride-2 stage and the image output, above it two stages and the
        recolour_mask output (measured at 64 and 128 px crops, docs/design.md)."""
        small = crop_size <= AUTO_SMALL_CROP_MAX
        auto = {"n_downsampling": 1 if small else 2, "output": "image" if small else "recolour_mask"}
        return dataclasses.replace(self, **{k: v for k, v in auto.items() if getattr(self, k) == "auto"})

    @property
    def size_multiple(self) -> int:
        """What image sides must be a multiple of: one halving per stride-2 stage."""
        return 2**self.stages


@dataclass
class LossConfig:
    gan_mode: str = "lsgan"  # lsgan | vanilla (the non-saturating loss)
    lambda_cycle: float = 10.0
    # CycleGAN's identity ||dec_A(enc_B(a)) - a||_1, weighted lambda_cycle x this, exactly as
    # CycleGAN's --lambda_identity (0.5 there means 5.0). The ComboGAN paper config sets 0.
    lambda_identity: float = 1.0
    # Whether the cycle's gradient flows back through the fake into the translation that made it
    # (true: CycleGAN, the paper). false trains only the way back from the cycle, so the
    # translation has no reason to hide its input in the fake (Chu et al. 2017).
    cycle_forward_grad: bool = False


@dataclass
class DataConfig:
    load_size: int = 286  # images are resized to this (see resize) ...
    # ... by 'shorter_side' (aspect ratio kept: training sees the geometry translate sees) or
    # 'square' (load_size x load_size, the official resize_and_crop: the paper configs).
    resize: str = "shorter_side"
    crop_size: int = 256  # then randomly cropped to a square of this size
    flip: bool = True
    batch_size: int = 1
    num_workers: int = 2
    cache: bool = False  # keep decoded, resized uint8 images in RAM (small datasets)


@dataclass
class TrainConfig:
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    epochs_per_domain: int = 100  # schedule = epochs_per_domain x N epochs ...
    epochs: int = 0  # ... unless this total is set (> 0) ...
    iters: int = 0  # ... or this length in iterations (> 0; `train --time` sets it)
    decay_fraction: float = 0.25  # last fraction of the schedule decays lr linearly to 0 (the paper: 0.5)
    pool_size: int = 50
    seed: int = 0
    checkpoint_every: int = 1000  # iterations
    keep_checkpoints: int = 3
    sample_every: int = 500  # iterations between image grids (PNG + TensorBoard)
    log_every: int = 50  # iterations between scalar logs (and progress lines in logs)
    max_bad_steps: int = 20  # consecutive non-finite steps before giving up
    # Decay of a bias-corrected moving average of each domain's encoder and decoder weights
    # (0: off); translation, eval, export and serving use the average.
    ema: float = 0.999
    # DiffAugment of every image a critic judges: comma-separated 'translation', 'cutout'; ''
    # is off (the paper). Critics trained on a few hundred images memorise them without it.
    diffaugment: str = "translation,cutout"
    critic_lr_factor: float = 0.5  # the critics' learning rate relative to train.lr (1: the paper)
    # The local critic's (model.n_layers_d_local) rate relative to train.lr: at the main
    # critic's half rate it lost the race and the generators faded the trees it judged.
    local_critic_lr_factor: float = 1.0


@dataclass
class PerfConfig:
    """How fast, never what: none of these changes the model, so a resume may change them.
    'auto' picks per device what was measured fastest at equal quality (docs/BENCHMARKS.md)."""

    overlap: str = "auto"  # auto | on | off: run the A->B->A and B->A->B halves concurrently (CPU)
    compile: str = "auto"  # auto | on | off: torch.compile each network
    precision: str = "auto"  # auto | fp32 | bf16 (autocast; weights and losses stay fp32)
    channels_last: str = "auto"  # auto | on | off: NHWC memory format for weights and batches
    fused_adam: str = "auto"  # auto | on | off: fused Adam kernels (off: PyTorch's default Adam)
    cuda_graphs: str = "auto"  # auto | on | off: capture each pair's step as CUDA graphs (one GPU)
    cudnn_benchmark: bool = True  # let cuDNN time its conv algorithms (CUDA)


@dataclass
class Config:
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    perf: PerfConfig = field(default_factory=PerfConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# DiffAugment's transforms (combogan.training.augment), minus 'color': colour is what tells
# seasons, painters or day and night apart.
DIFFAUGMENT = ("translation", "cutout")
UPSAMPLE = ("nearest", "transpose", "transpose4")
OUTPUT = ("image", "recolour_mask")
CRITICS = ("patchgan", "two_view")

# What a key meant before it existed: a config or checkpoint written before a key was added
# (and so without it) is read with these values, never with a newer default, so old runs load
# and resume unchanged whatever the defaults become.
BEFORE_KEY: dict[str, dict[str, Any]] = {
    "model": {"n_downsampling": 2, "activation": "relu", "upsample": "transpose", "discriminator": "patchgan", "output": "image",
              "n_layers_d_local": 0},
    "train": {"ema": 0.0, "diffaugment": "", "critic_lr_factor": 1.0, "local_critic_lr_factor": 0.5},
    "loss": {"cycle_forward_grad": True},
    "data": {"resize": "shorter_side"},
}
# Options that no longer exist, with the value that made them do nothing and the release that
# removed them: a saved run that used the neutral value loads unchanged; any other is refused.
REMOVED_KEYS: dict[str, tuple[Any, str]] = {
    "model.spectral_norm": (False, "0.3"), "loss.lambda_autoencode": (0.0, "0.3"),
    "loss.lambda_forward": (0.0, "0.3"), "loss.lambda_latent": (0.0, "0.3"),
}
REMOVED_VALUES: dict[str, dict[Any, str]] = {"model.output": {"recolour": "0.3"}, "model.upsample": {"bilinear": "0.3"}}


def all_keys(cfg: Config | None = None) -> list[str]:
    """Every dotted key, e.g. 'model.ngf'."""
    cfg = cfg or Config()
    return [f"{s.name}.{f.name}" for s in dataclasses.fields(cfg) for f in dataclasses.fields(getattr(cfg, s.name))]


def _suggest(key: str, options: list[str]) -> str:
    close = difflib.get_close_matches(key, options, n=1, cutoff=0.5)
    return f" (did you mean '{close[0]}'?)" if close else ""


def _removed(key: str, value: Any, release: str) -> UserError:
    return UserError(f"this run was trained with {key}={value}, an option removed in combogan {release}; "
                     f"load it with an earlier release (pip install 'combogan<{release}')")


def _to_bool(key: str, value: Any) -> bool:
    if isinstance(value, bool) or (isinstance(value, (int, float)) and value in (0, 1)):  # a saved 0.0/1.0, or --set key=1
        return bool(value)
    raise UsageError(f"config key '{key}' expects true/false, got {value!r}")


def _to_int(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise UsageError(f"config key '{key}' expects an integer, got {value!r}")
    return value


def _to_int_or_auto(key: str, value: Any) -> int | str:
    """A number, or 'auto' (settled by resolve)."""
    if value == "auto" or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise UsageError(f"config key '{key}' expects an integer or 'auto', got {value!r}")


def _to_float(key: str, value: Any) -> float:
    if isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
        try:
            value = float(value)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UsageError(f"config key '{key}' expects a number, got {value!r}")
    return float(value)


def _to_str(key: str, value: Any) -> str:
    if isinstance(value, bool):  # YAML 1.1 reads on/off/yes/no as booleans
        value = "on" if value else "off"
    if not isinstance(value, str):
        raise UsageError(f"config key '{key}' expects a string, got {value!r}")
    return value


_COERCE = {bool: _to_bool, int: _to_int, int | str: _to_int_or_auto, float: _to_float, str: _to_str}


def _coerce(key: str, value: Any, typ: Any) -> Any:
    return _COERCE[typ](key, value)


def _set_section(cfg: Config, sname: str, values: Any, source: str) -> None:
    if not isinstance(values, dict):
        raise UsageError(f"{source}: section '{sname}' must be a mapping")
    section = getattr(cfg, sname)
    hints = typing.get_type_hints(type(section))
    for key, value in values.items():
        dotted = f"{sname}.{key}"
        if dotted in REMOVED_KEYS:
            raise UsageError(f"{source}: config key '{dotted}' was removed in combogan {REMOVED_KEYS[dotted][1]}")
        if key not in hints:
            raise UsageError(f"{source}: unknown key '{dotted}'{_suggest(dotted, all_keys(cfg))}")
        setattr(section, key, _coerce(dotted, value, hints[key]))


def merge(cfg: Config, updates: dict[str, Any], source: str = "config") -> Config:
    """A copy of cfg with nested updates ({'model': {'ngf': 16}}) applied and checked."""
    cfg = dataclasses.replace(cfg, **{s.name: dataclasses.replace(getattr(cfg, s.name)) for s in dataclasses.fields(cfg)})
    if not isinstance(updates, dict):
        raise UserError(f"{source}: expected a mapping of sections (model, loss, data, train, perf)")
    sections = [s.name for s in dataclasses.fields(cfg)]
    for sname, values in updates.items():
        if sname not in sections:
            raise UsageError(f"{source}: unknown section '{sname}'{_suggest(str(sname), sections)}")
        if values is not None:
            _set_section(cfg, sname, values, source)
    model = updates.get("model") or {}
    if cfg.model.discriminator == "two_view" and "discriminator" in model and "n_layers_d_local" not in model:
        # The local critic is a default of the PatchGAN critic, not a choice the user made: asking
        # for the two-view critic should not also require turning it off by hand.
        cfg.model.n_layers_d_local = 0
    validate(cfg)
    return cfg


def parse_set(items: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """Turn ['model.ngf=16', 'data.flip=false'] into a nested dict; values parsed as YAML scalars."""
    nested: dict[str, dict[str, Any]] = {}
    for item in items:
        if "=" not in item:
            raise UsageError(f"--set expects key=value, got '{item}'")
        key, raw = item.split("=", 1)
        key = key.strip()
        if key.count(".") != 1:
            raise UsageError(f"--set key must look like section.name, got '{key}'{_suggest(key, all_keys())}")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError:
            value = raw
        section, name = key.split(".")
        nested.setdefault(section, {})[name] = value
    return nested


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"config file not found: {path}")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise UserError(f"config file {path} is not valid YAML{where}") from None
    return data or {}


def load(path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = (), base: Config | None = None) -> Config:
    """base (default: the defaults) <- YAML file <- --set overrides, then resolved."""
    cfg = base or Config()
    if path is not None:
        cfg = merge(cfg, load_yaml(path), source=str(path))
    if overrides:
        cfg = merge(cfg, parse_set(overrides), source="--set")
    return resolve(cfg)


def resolve(cfg: Config) -> Config:
    """cfg with the model's 'auto' keys settled for its crop: a run stores the values, so its
    architecture never changes with a later default. Only the last step of loading resolves,
    so a crop size set after the file still counts."""
    model = cfg.model.for_crop(cfg.data.crop_size)
    return cfg if model == cfg.model else dataclasses.replace(cfg, model=model)


def policy(text: str) -> tuple[str, ...]:
    """'translation, cutout' -> ('translation', 'cutout')."""
    return tuple(p.strip() for p in text.split(",") if p.strip())


def _without_removed(section: str, values: dict[str, Any]) -> dict[str, Any]:
    """A saved section with removed options dropped where they were neutral (refused if not)."""
    out = {}
    for key, value in values.items():
        dotted = f"{section}.{key}"
        if dotted in REMOVED_KEYS:
            neutral, release = REMOVED_KEYS[dotted]
            if value != neutral:
                raise _removed(dotted, value, release)
            continue
        if isinstance(value, str) and value in REMOVED_VALUES.get(dotted, {}):
            raise _removed(dotted, value, REMOVED_VALUES[dotted][value])
        if dotted == "loss.cycle_forward_grad" and not isinstance(value, bool) and value not in (0, 1):
            raise _removed(dotted, value, "0.3")  # a share of the gradient: only all or none is left
        out[key] = value
    return out


def saved(data: dict[str, Any], source: str) -> Config:
    """A config as a run saved it: keys it lacks take BEFORE_KEY's values; removed options
    that were neutral are dropped, others refused."""
    if isinstance(data, dict):
        data = {s: _without_removed(s, v) if isinstance(v, dict) else v for s, v in data.items()}
    return resolve(merge(merge(Config(), BEFORE_KEY, source="(keys added since)"), data, source=source))


def saved_arch(data: dict[str, Any]) -> ModelConfig:
    """An architecture dict from a checkpoint or weights file, completed with BEFORE_KEY.
    TypeError names the options this version lacks (a newer combogan's, most likely)."""
    if not isinstance(data, dict):
        raise TypeError("not a mapping of options")
    data = _without_removed("model", data)
    unknown = sorted(set(data) - {f.name for f in dataclasses.fields(ModelConfig)})
    if unknown:
        raise TypeError(f"unknown option(s) {', '.join(unknown)}: written by a newer combogan?")
    return ModelConfig(**{**BEFORE_KEY["model"], **data})


def validate(cfg: Config) -> None:
    auto = cfg.model.n_downsampling == "auto"
    for ok, message in _model_checks(resolve(cfg), auto) + _training_checks(cfg) + _perf_checks(cfg.perf):
        if not ok:
            raise UsageError(message)


def _model_checks(cfg: Config, auto: bool = False) -> list[tuple[bool, str]]:
    m, d = cfg.model, cfg.data
    chosen = f" (model.n_downsampling=auto is {m.n_downsampling} for this crop)" if auto else ""
    deepest = max(m.n_layers_d, m.n_layers_d_local)  # the PatchGAN that needs the largest crop
    return [
        (m.ngf >= 1 and m.ndf >= 1, "model.ngf and model.ndf must be >= 1"),
        (m.n_blocks >= 0, "model.n_blocks must be >= 0"),
        (m.n_layers_d >= 1, "model.n_layers_d must be >= 1"),
        (m.n_layers_d_local >= 0, "model.n_layers_d_local must be >= 0 (0: no local critic)"),
        (m.n_layers_d_local == 0 or m.discriminator == "patchgan",
         f"model.n_layers_d_local needs model.discriminator=patchgan (got '{m.discriminator}'); the two-view critic has its own scales"),
        (0 <= m.n_downsampling <= 3, f"model.n_downsampling must be 0, 1, 2 or 3, got {m.n_downsampling}"),
        (m.norm in ("instance", "batch"), f"model.norm must be 'instance' or 'batch', got '{m.norm}'"),
        (0.0 <= m.dropout < 1.0, "model.dropout must be in [0, 1)"),
        (m.activation in ("relu", "prelu"), f"model.activation must be 'relu' or 'prelu', got '{m.activation}'"),
        (m.upsample in UPSAMPLE, f"model.upsample must be one of {', '.join(UPSAMPLE)}, got '{m.upsample}'"),
        (m.output in OUTPUT, f"model.output must be one of auto, {', '.join(OUTPUT)}, got '{m.output}'"),
        (m.discriminator in CRITICS, f"model.discriminator must be one of {', '.join(CRITICS)}, got '{m.discriminator}'"),
        (d.crop_size % m.size_multiple == 0, f"data.crop_size must be a multiple of {m.size_multiple}, got {d.crop_size}{chosen}"),
        (m.discriminator != "patchgan" or d.crop_size >= 3 * 2**deepest,
         f"data.crop_size {d.crop_size} is too small for a {deepest}-layer PatchGAN (needs >= {3 * 2**deepest})"),
    ]


def _training_checks(cfg: Config) -> list[tuple[bool, str]]:
    d, t, lo = cfg.data, cfg.train, cfg.loss
    return [
        (lo.gan_mode in ("lsgan", "vanilla"), f"loss.gan_mode must be 'lsgan' or 'vanilla', got '{lo.gan_mode}'"),
        (min(lo.lambda_cycle, lo.lambda_identity) >= 0, "loss weights must be >= 0"),
        (d.batch_size >= 1, f"data.batch_size must be >= 1, got {d.batch_size}"),
        (d.crop_size >= 8, f"data.crop_size must be >= 8, got {d.crop_size}"),
        (d.load_size >= d.crop_size, f"data.crop_size ({d.crop_size}) is larger than data.load_size ({d.load_size})"),
        (d.num_workers >= 0, "data.num_workers must be >= 0"),
        (d.resize in ("shorter_side", "square"), f"data.resize must be 'shorter_side' or 'square', got '{d.resize}'"),
        (t.lr > 0, "train.lr must be > 0"),
        (0 <= t.beta1 < 1 and 0 <= t.beta2 < 1, "train.beta1/beta2 must be in [0, 1)"),
        (t.epochs_per_domain >= 1 or t.epochs >= 1, "train.epochs_per_domain or train.epochs must be >= 1"),
        (t.epochs >= 0, "train.epochs must be >= 0 (0 means epochs_per_domain x N)"),
        (t.iters >= 0, "train.iters must be >= 0 (0 means the length in epochs)"),
        (0.0 <= t.decay_fraction <= 1.0, "train.decay_fraction must be in [0, 1]"),
        (t.pool_size >= 0, "train.pool_size must be >= 0"),
        (t.checkpoint_every >= 1 and t.sample_every >= 1 and t.log_every >= 1, "train.*_every must be >= 1"),
        (t.keep_checkpoints >= 1, "train.keep_checkpoints must be >= 1"),
        (t.max_bad_steps >= 1, "train.max_bad_steps must be >= 1"),
        (t.critic_lr_factor > 0, f"train.critic_lr_factor must be > 0, got {t.critic_lr_factor}"),
        (t.local_critic_lr_factor > 0, f"train.local_critic_lr_factor must be > 0, got {t.local_critic_lr_factor}"),
        (0.0 <= t.ema < 1.0, f"train.ema must be in [0, 1) (0: off), got {t.ema}"),
        (all(p in DIFFAUGMENT for p in policy(t.diffaugment)),
         f"train.diffaugment must list some of {', '.join(DIFFAUGMENT)} (comma-separated; '' is off), got '{t.diffaugment}'"),
    ]


def _perf_checks(pf: PerfConfig) -> list[tuple[bool, str]]:
    return [
        *[(getattr(pf, k) in ("auto", "on", "off"), f"perf.{k} must be auto, on or off, got '{getattr(pf, k)}'")
          for k in ("overlap", "compile", "channels_last", "fused_adam", "cuda_graphs")],
        (pf.precision in ("auto", "fp32", "bf16"), f"perf.precision must be auto, fp32 or bf16, got '{pf.precision}'"),
    ]


def save(cfg: Config, path: Path) -> None:
    from .atomic import write_text

    write_text(path, yaml.safe_dump(cfg.to_dict(), sort_keys=False))
