"""`combogan import`: models trained with the official CycleGAN and ComboGAN code, as ordinary runs.

Which files make a model, and the run written from them, are here; how the official keys map
to combogan's is combogan.model.official.keys. Without the official critic files each domain
gets a fresh critic of combogan's default kind. No optimizer state is in those files: a continued
run starts Adam afresh (the manifest says so).
"""

from __future__ import annotations

import re
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from ..config import Config, ModelConfig
from ..errors import UserError
from ..model.combogan import ComboGAN
from ..model.critics import build_critic
from ..model.generator import Decoder, Encoder
from ..model.official import keys
from ..model.official.networks import TwoViewCritic
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


# --- official CycleGAN ---------------------------------------------------------------------------
def cyclegan(names: list[str], g_ab: Path, g_ba: Path, d_a: Path | None = None, d_b: Path | None = None) -> Imported:
    """names = [A, B]; g_ab: G_A (A -> B), g_ba: G_B (B -> A); d_a judges B, d_b judges A."""
    if len(names) != 2:
        raise UserError(f"--names: a CycleGAN model has 2 domains, got {len(names)} ({', '.join(names)})")
    a, b = names
    (arch_ab, enc_a, dec_b), (arch_ba, enc_b, dec_a) = keys.cyclegan_generator(read_official(g_ab), g_ab), keys.cyclegan_generator(read_official(g_ba), g_ba)
    if arch_ab != arch_ba:
        raise UserError(f"{g_ab} and {g_ba} are different architectures ({arch_ab} vs {arch_ba})")
    critics = {n: keys.cyclegan_critic(read_official(p), p) for n, p in ((b, d_a), (a, d_b)) if p is not None}
    d_arch = next(iter(critics.values()))[0] if critics else {}
    if critics and len({tuple(sorted(c[0].items())) for c in critics.values()}) > 1:
        raise UserError("the two discriminator files are different architectures")
    if d_arch and d_arch["norm"] != arch_ab["norm"]:
        raise UserError(f"the generators use {arch_ab['norm']} norm but the discriminators {d_arch['norm']} norm")
    # Official critics are single PatchGANs; fresh ones (no D files) are combogan's default critic.
    local = {"n_layers_d_local": 0} if critics else {}
    arch = ModelConfig(**{**arch_ab, **{k: v for k, v in d_arch.items() if k != "norm"}, **local})
    files = {a: {"encoder": str(g_ab), "decoder": str(g_ba)}, b: {"encoder": str(g_ba), "decoder": str(g_ab)}}
    parts = {a: {"encoder": keys.fit(Encoder(arch), enc_a, g_ab, "ResNet generator half"), "decoder": keys.fit(Decoder(arch), dec_a, g_ba, "ResNet generator half")},
             b: {"encoder": keys.fit(Encoder(arch), enc_b, g_ba, "ResNet generator half"), "decoder": keys.fit(Decoder(arch), dec_b, g_ab, "ResNet generator half")}}
    for name, path in ((b, d_a), (a, d_b)):
        if path is not None:
            parts[name]["discriminator"] = keys.fit(build_critic(arch), critics[name][1], path, "PatchGAN discriminator")
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
    encs = [keys.combogan_half(read_official(files[i]), files[i], True) for i in range(n)]
    decs = [keys.combogan_half(read_official(files[n + i]), files[n + i], False) for i in range(n)]
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
    critics = [keys.combogan_critic(read_official(p), p) for p in present]
    if len({tuple(sorted(c[0].items())) for c in critics}) > 1:
        raise UserError(f"{folder}: the critic files are different architectures")
    # Without D files there is nothing official to keep: fresh critics are combogan's default
    # PatchGAN (with its local critic), which measured far better than the two-view critic.
    d_arch = critics[0][0] if critics else {"ndf": 64, "n_layers_d": 3, "norm": total["norm"]}
    if d_arch["norm"] != total["norm"]:
        raise UserError(f"the generators use {total['norm']} norm but the critics {d_arch['norm']} norm")
    critic = {"discriminator": "two_view", "n_layers_d_local": 0} if critics else {"discriminator": "patchgan"}
    arch = ModelConfig(**total, ndf=d_arch["ndf"], n_layers_d=d_arch["n_layers_d"], **critic)
    parts = {name: {"encoder": keys.fit(Encoder(arch), encs[i][1], files[i], "ComboGAN encoder"),
                    "decoder": keys.fit(Decoder(arch), decs[i][1], files[n + i], "ComboGAN decoder")} for i, name in enumerate(names)}
    sources = {name: {"encoder": str(files[i]), "decoder": str(files[n + i])} for i, name in enumerate(names)}
    for i, name in enumerate(names[:len(critics)]):
        parts[name]["discriminator"] = keys.fit(TwoViewCritic(arch), critics[i][1], d_files[i], "ComboGAN two-view critic")
        sources[name]["discriminator"] = str(d_files[i])
    return Imported(arch, parts, sources, {"format": "official ComboGAN", "epoch": epoch,
                                           "critics": "the official two-view critics" if critics else "fresh PatchGAN critics (no D files)"})


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
