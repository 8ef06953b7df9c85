"""`combogan import`: models trained with the official CycleGAN and ComboGAN code, as ordinary runs.

Official CycleGAN (junyanz/pytorch-CycleGAN-and-pix2pix), `<epoch>_net_G_A.pth` etc.:
    G_A (A -> B) = ResnetGenerator 'model.i':  i < 10 (c7s1, two downsamplings) -> enc_A 'net.i';
                   residual blocks 10 .. 9+n: the first n//2 -> enc_A, the rest -> dec_B
                   ('conv_block.*' -> 'block.*'); the layers after them -> dec_B 'net.(i-10-n//2)'
    G_B (B -> A)   the same into enc_B and dec_A
    D_A            judges domain B -> B's discriminator ('model.i' -> 'net.i'); D_B -> A's
    ngf, block count, norm, dropout and the upsampling kernel are read from the tensors' shapes;
    InstanceNorm running statistics (PyTorch < 0.4 checkpoints) are dropped, as the official
    loader does.
Official ComboGAN (AAnoosheh/ComboGAN), `<epoch>_net_G<i>.pth`:
    G<i>, i < N: encoder of domain i; G<N+i>: its decoder ('model.*' -> 'net.*',
    'conv_block.*' -> 'block.*'), PReLU activations and 4x4 transposed convolutions
    (model.activation=prelu, model.upsample=transpose4). D<i>: domain i's two-view critic
    (luminance and blurred RGB, a prediction per scale; model.discriminator=two_view), its keys
    unchanged ('model_gray.*', 'model_rgb.*' -> 'discriminator.model_gray.*', ...). Without the
    D files each domain gets a fresh 70x70 PatchGAN critic (measured better than the two-view one).
No optimizer state is in those files: a continued run starts Adam afresh (the manifest says so).
"""

from __future__ import annotations

import re
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..config import Config, ModelConfig
from ..errors import UserError
from ..model.combogan import ComboGAN
from ..model.networks import Decoder, Discriminator, Encoder, TwoViewDiscriminator
from ..runs import checkpoint, rundir
from ..training.state import TrainState


@dataclass
class Imported:
    arch: ModelConfig
    parts: dict[str, dict[str, dict[str, torch.Tensor]]]  # domain -> part -> state dict (our keys)
    files: dict[str, dict[str, str]]  # domain -> part -> the file it came from
    source: dict = field(default_factory=dict)


def read_official(path: Path) -> dict[str, torch.Tensor]:
    """A state dict saved by the official code: tensors only (pickled code is refused)."""
    if not path.is_file():
        raise UserError(f"file not found: {path}")
    state = checkpoint.safe_load(path)
    if not isinstance(state, dict) or not state or not all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()):
        raise UserError(f"{path} is not a state dict of tensors")
    # nn.DataParallel prefixes every key with 'module.'.
    return {k.removeprefix("module."): v for k, v in state.items()}


def _shape(t: torch.Tensor) -> str:
    return "(" + ", ".join(map(str, t.shape)) + ")"


def _fit(module: nn.Module, mapped: dict[str, tuple[str, torch.Tensor]], path: Path, what: str) -> dict[str, torch.Tensor]:
    """Check `mapped` (our key -> (their key, tensor)) against `module`; one clear error if not."""
    want = module.state_dict()
    for ours, (theirs, tensor) in mapped.items():
        if ours not in want:
            raise UserError(f"{path}: key '{theirs}' {_shape(tensor)} fits no supported {what}")
        if want[ours].shape != tensor.shape:
            raise UserError(f"{path}: key '{theirs}' has shape {_shape(tensor)}; the {what} it belongs to expects {_shape(want[ours])}")
    missing = [k for k in want if k not in mapped and not k.endswith("num_batches_tracked")]
    if missing:
        raise UserError(f"{path}: the {what} lacks weights for '{missing[0]}' (a truncated or different network?)")
    return {ours: tensor for ours, (_, tensor) in mapped.items()}


def _index(key: str, path: Path) -> tuple[int, str]:
    m = re.fullmatch(r"model\.(\d+)\.(.+)", key)
    if m is None:
        raise UserError(f"{path}: key '{key}' fits no supported architecture (expected 'model.<i>.…' keys)")
    return int(m.group(1)), m.group(2)


def _norm_and_stats(state: dict[str, torch.Tensor], first_norm: str) -> tuple[str, dict[str, torch.Tensor]]:
    """'batch' if the first norm layer has affine weights, else 'instance' (then drop the running
    statistics that PyTorch < 0.4 saved for InstanceNorm, as the official loader does)."""
    if f"{first_norm}.weight" in state:
        return "batch", state
    return "instance", {k: v for k, v in state.items() if not re.search(r"\.(running_mean|running_var|num_batches_tracked)$", k)}


def _generator_arch(state: dict[str, torch.Tensor], path: Path, blocks: list[int], up_key: str, activation: str) -> dict:
    if "model.1.weight" not in state:
        raise UserError(f"{path}: no 'model.1.weight' (the first 7x7 convolution): not a ResNet generator")
    dropout = any(re.search(r"conv_block\.6\.weight$", k) for k in state)
    kernel = state[up_key].shape[-1] if up_key in state else 3
    # The official generators always have two stride-2 stages, whatever combogan's default.
    return {"ngf": int(state["model.1.weight"].shape[0]), "n_blocks": len(blocks), "n_downsampling": 2, "dropout": 0.5 if dropout else 0.0,
            "upsample": "transpose4" if kernel == 4 else "transpose", "activation": activation,
            "output": "image"}


# --- official CycleGAN ---------------------------------------------------------------------------
def _cyclegan_generator(path: Path) -> tuple[dict, dict[str, tuple[str, torch.Tensor]], dict[str, tuple[str, torch.Tensor]]]:
    """(architecture fields, encoder part, decoder part) of a ResnetGenerator file."""
    norm, state = _norm_and_stats(read_official(path), "model.2")
    blocks = sorted({_index(k, path)[0] for k in state if ".conv_block." in k})
    n = len(blocks)
    if blocks != list(range(10, 10 + n)):
        raise UserError(f"{path}: residual blocks at model.{blocks[:3]}…, expected model.10 onwards: not a ResnetGenerator")
    arch = {**_generator_arch(state, path, blocks, f"model.{10 + n}.weight", "relu"), "norm": norm}
    enc, dec = {}, {}
    for key, tensor in state.items():
        i, rest = _index(key, path)
        rest = rest.replace("conv_block.", "block.", 1)
        if i < 10:
            enc[f"net.{i}.{rest}"] = (key, tensor)
        elif i < 10 + n:
            j = i - 10
            (enc if j < n // 2 else dec)[f"net.{10 + j if j < n // 2 else j - n // 2}.{rest}"] = (key, tensor)
        else:
            dec[f"net.{i - 10 - n // 2}.{rest}"] = (key, tensor)
    return arch, enc, dec


def _cyclegan_critic(path: Path) -> tuple[dict, dict[str, tuple[str, torch.Tensor]]]:
    norm, state = _norm_and_stats(read_official(path), "model.3")
    convs = sorted({_index(k, path)[0] for k in state if k.endswith(".weight") and state[k].dim() == 4})
    if not convs or "model.0.weight" not in state:
        raise UserError(f"{path}: no 'model.0.weight': not a PatchGAN discriminator")
    arch = {"ndf": int(state["model.0.weight"].shape[0]), "n_layers_d": len(convs) - 2, "norm": norm}
    return arch, {f"net.{_index(k, path)[0]}.{_index(k, path)[1]}": (k, v) for k, v in state.items()}


def cyclegan(names: list[str], g_ab: Path, g_ba: Path, d_a: Path | None = None, d_b: Path | None = None) -> Imported:
    """names = [A, B]; g_ab: G_A (A -> B), g_ba: G_B (B -> A); d_a judges B, d_b judges A."""
    if len(names) != 2:
        raise UserError(f"--names: a CycleGAN model has 2 domains, got {len(names)} ({', '.join(names)})")
    a, b = names
    (arch_ab, enc_a, dec_b), (arch_ba, enc_b, dec_a) = _cyclegan_generator(g_ab), _cyclegan_generator(g_ba)
    if arch_ab != arch_ba:
        raise UserError(f"{g_ab} and {g_ba} are different architectures ({arch_ab} vs {arch_ba})")
    critics = {n: _cyclegan_critic(p) for n, p in ((b, d_a), (a, d_b)) if p is not None}
    d_arch = next(iter(critics.values()))[0] if critics else {}
    if critics and len({tuple(sorted(c[0].items())) for c in critics.values()}) > 1:
        raise UserError("the two discriminator files are different architectures")
    if d_arch and d_arch["norm"] != arch_ab["norm"]:
        raise UserError(f"the generators use {arch_ab['norm']} norm but the discriminators {d_arch['norm']} norm")
    # Official critics are single PatchGANs; fresh ones (no D files) are combogan's default critic.
    local = {"n_layers_d_local": 0} if critics else {}
    arch = ModelConfig(**{**arch_ab, **{k: v for k, v in d_arch.items() if k != "norm"}, **local})
    files = {a: {"encoder": str(g_ab), "decoder": str(g_ba)}, b: {"encoder": str(g_ba), "decoder": str(g_ab)}}
    parts = {a: {"encoder": _fit(Encoder(arch), enc_a, g_ab, "ResNet generator half"), "decoder": _fit(Decoder(arch), dec_a, g_ba, "ResNet generator half")},
             b: {"encoder": _fit(Encoder(arch), enc_b, g_ba, "ResNet generator half"), "decoder": _fit(Decoder(arch), dec_b, g_ab, "ResNet generator half")}}
    for name, path in ((b, d_a), (a, d_b)):
        if path is not None:
            parts[name]["discriminator"] = _fit(Discriminator(arch), critics[name][1], path, "PatchGAN discriminator")
            files[name]["discriminator"] = str(path)
    return Imported(arch, parts, files, {"format": "official CycleGAN"})


def cyclegan_dir(folder: Path, names: list[str], epoch: str = "latest") -> Imported:
    """<epoch>_net_G_A.pth and _G_B.pth (critics _D_A, _D_B used when present)."""
    if not folder.is_dir():
        raise UserError(f"folder not found: {folder}")
    file = {k: folder / f"{epoch}_net_{k}.pth" for k in ("G_A", "G_B", "D_A", "D_B")}
    for k in ("G_A", "G_B"):
        if not file[k].is_file():
            found = sorted(p.name for p in folder.glob("*_net_G_A.pth"))
            raise UserError(f"{file[k]} not found" + (f" (this folder has {', '.join(found[:4])}; pass --epoch)" if found else ""))
    got = cyclegan(names, file["G_A"], file["G_B"], *(file[k] if file[k].is_file() else None for k in ("D_A", "D_B")))
    got.source["epoch"] = epoch
    return got


# --- official ComboGAN ---------------------------------------------------------------------------
def _combogan_half(path: Path, encoder: bool) -> tuple[dict, dict[str, tuple[str, torch.Tensor]]]:
    norm, state = _norm_and_stats(read_official(path), "model.2" if encoder else "model.0.conv_block.2")
    mapped = {}
    for key, tensor in state.items():
        i, rest = _index(key, path)
        mapped[f"net.{i}.{rest.replace('conv_block.', 'block.', 1)}"] = (key, tensor)
    blocks = sorted({_index(k, path)[0] for k in state if ".conv_block." in k})
    act = "prelu" if any(v.shape == (1,) and k.endswith(".weight") for k, v in state.items()) else "relu"
    if encoder:
        arch = {**_generator_arch(state, path, blocks, "", act), "norm": norm}
    else:
        up = f"model.{len(blocks)}.weight"
        if up not in state:
            raise UserError(f"{path}: no '{up}' (the first upsampling) after {len(blocks)} residual blocks: not a ComboGAN decoder")
        arch = {"n_blocks": len(blocks), "n_downsampling": 2, "upsample": "transpose4" if state[up].shape[-1] == 4 else "transpose",
                "norm": norm, "activation": act, "ngf": int(state[up].shape[1]) // 2}
    return arch, mapped


def combogan_dir(folder: Path, names: list[str], epoch: str) -> Imported:
    """<epoch>_net_G<i>.pth: encoders G0..G(N-1), decoders GN..G(2N-1)."""
    if not folder.is_dir():
        raise UserError(f"folder not found: {folder}")
    files = sorted(folder.glob(f"{epoch}_net_G*.pth"), key=lambda p: int(re.sub(r"\D", "", p.stem.rsplit("G", 1)[1]) or 0))
    if not files:
        epochs = sorted({p.name.split("_net_")[0] for p in folder.glob("*_net_G*.pth")})
        raise UserError(f"no {epoch}_net_G<i>.pth in {folder}" + (f" (epochs here: {', '.join(epochs[:6])}; pass --epoch)" if epochs else ""))
    n = len(files) // 2
    if len(files) % 2 or len(names) != n:
        raise UserError(f"{folder} holds {len(files)} generator files for epoch {epoch} ({n} domains{'?' if len(files) % 2 else ''}) "
                        f"but --names gives {len(names)}" + (" (shared blocks, --netG_n_shared, are not supported)" if len(files) % 2 else ""))
    encs = [_combogan_half(files[i], True) for i in range(n)]
    decs = [_combogan_half(files[n + i], False) for i in range(n)]
    e_arch, d_arch = encs[0][0], decs[0][0]
    total = {**e_arch, "n_blocks": e_arch["n_blocks"] + d_arch["n_blocks"], "upsample": d_arch["upsample"], "output": "image"}
    if e_arch["n_blocks"] != total["n_blocks"] // 2:
        raise UserError(f"{files[0]}: {e_arch['n_blocks']} encoder and {d_arch['n_blocks']} decoder blocks; combogan splits n blocks n//2 / rest")
    if any(a[0]["ngf"] != e_arch["ngf"] for a in encs + decs):
        raise UserError(f"{folder}: the generator files have different widths (ngf)")
    d_files = [folder / f"{epoch}_net_D{i}.pth" for i in range(n)]
    present = [p for p in d_files if p.is_file()]
    if present and len(present) != n:
        raise UserError(f"{folder} holds {len(present)} of the {n} critic files {epoch}_net_D<i>.pth; give all or none")
    critics = [_combogan_critic(p) for p in present]
    if len({tuple(sorted(c[0].items())) for c in critics}) > 1:
        raise UserError(f"{folder}: the critic files are different architectures")
    # Without D files there is nothing official to keep: fresh critics are combogan's default
    # 70x70 PatchGAN (with its local critic), which measured far better than the two-view critic
    # (docs/BENCHMARKS.md).
    d_arch = critics[0][0] if critics else {"ndf": 64, "n_layers_d": 3, "norm": total["norm"]}
    if d_arch["norm"] != total["norm"]:
        raise UserError(f"the generators use {total['norm']} norm but the critics {d_arch['norm']} norm")
    critic = {"discriminator": "two_view", "n_layers_d_local": 0} if critics else {"discriminator": "patchgan"}
    arch = ModelConfig(**total, ndf=d_arch["ndf"], n_layers_d=d_arch["n_layers_d"], **critic)
    parts = {name: {"encoder": _fit(Encoder(arch), encs[i][1], files[i], "ComboGAN encoder"),
                    "decoder": _fit(Decoder(arch), decs[i][1], files[n + i], "ComboGAN decoder")} for i, name in enumerate(names)}
    sources = {name: {"encoder": str(files[i]), "decoder": str(files[n + i])} for i, name in enumerate(names)}
    for i, name in enumerate(names[:len(critics)]):
        parts[name]["discriminator"] = _fit(TwoViewDiscriminator(arch), critics[i][1], d_files[i], "ComboGAN two-view critic")
        sources[name]["discriminator"] = str(d_files[i])
    return Imported(arch, parts, sources, {"format": "official ComboGAN", "epoch": epoch,
                                           "critics": "the official two-view critics" if critics else "fresh PatchGAN critics (no D files)"})


def _combogan_critic(path: Path) -> tuple[dict, dict[str, tuple[str, torch.Tensor]]]:
    norm, state = _norm_and_stats(read_official(path), "model_rgb.1.1")
    if "model_rgb.0.0.weight" not in state or "model_gray.0.0.weight" not in state:
        raise UserError(f"{path}: no 'model_rgb.0.0.weight' / 'model_gray.0.0.weight': not a ComboGAN critic")
    stages = {int(k.split(".")[1]) for k in state if k.startswith(("model_rgb.", "model_gray."))}
    arch = {"ndf": int(state["model_rgb.0.0.weight"].shape[0]), "n_layers_d": max(stages), "norm": norm}
    return arch, {k: (k, v) for k, v in state.items()}


# --- writing the run -----------------------------------------------------------------------------
def write_run(got: Imported, out: Path) -> Path:
    """An ordinary run at `out` (which must not exist): config, step-0 checkpoint, manifest."""
    if out.exists():
        raise UserError(f"{out} already exists; choose a new --run")
    names = list(got.parts)
    model = ComboGAN(got.arch, names)  # fresh networks: critics stay fresh where none were imported
    for name, parts in got.parts.items():
        for part, state in parts.items():
            model.parts(name)[part].load_state_dict(state, strict=False)
    # The architecture is the official one; how it goes on training (resume, add-domain) is
    # combogan's defaults, measured better (README "Defaults"), which `--set` can change.
    cfg = Config(model=got.arch)
    state = TrainState(model, cfg.train)
    for name in names:
        state.add(name)
    staging = out.with_name(f".{out.name}.importing")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        staging.mkdir(parents=True)
    except OSError as exc:
        raise UserError(f"cannot create run directory {out}: {exc.strerror or exc}") from None
    try:
        rundir.write_config(staging, cfg)
        index = checkpoint.save(staging, model, state, 0, {"bad_steps": 0, "elapsed": 0.0, "local_step": 0}, None)
        now = time.strftime("%Y-%m-%dT%H:%M:%S%z")
        fresh = [n for n in names if "discriminator" not in got.parts[n]]
        manifest = rundir.new_manifest([{"name": n, "images": {}, "added_by": "import", "added": now, "files": got.files[n]} for n in names],
                                       dataset=None, layout=None)
        manifest.update(imported={**got.source, "files": sorted({f for d in got.files.values() for f in d.values()}),
                                  "architecture": asdict(got.arch), "fresh_critics": fresh,
                                  "optimizer_state": "fresh Adam states (the official files hold none)"},
                        latest=str(index.path.relative_to(staging)), checkpoints=[str(index.path.relative_to(staging))],
                        domain_files=index.domains)
        rundir.write_manifest(staging, manifest)
        staging.rename(out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return out
