"""Checkpoints: one folder per save under RUN/checkpoints/, one file per domain for its weights
(<domain>.safetensors; combogan 0.1 wrote <domain>.nets.pt, still read) and one for its
optimizer state + pool (<domain>.state.pt), a trainer-state file, and index.json written last.

Every file is written atomically, so a kill at any instant leaves the previous checkpoint
whole. A domain that did not train since the last save (a frozen domain during add-domain)
is not rewritten: the index points at its existing files, which stay byte-identical.
Loading uses torch.load(weights_only=True): a file that needs arbitrary pickle is refused.
"""

from __future__ import annotations

import dataclasses
import json
import math
import pickle
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from .. import atomic
from .. import config as config_mod
from ..config import ModelConfig
from ..errors import UserError
from ..model import weights as weight_files
from ..model.combogan import ComboGAN

if TYPE_CHECKING:
    from ..training.state import TrainState

# 1: combogan 0.1 (weights in <domain>.nets.pt); 2: weights in <domain>.safetensors.
FORMAT_VERSION = 2
CKPT_DIR = "checkpoints"
# Which weights a loaded model translates with: each domain's weight average (train.ema), its
# trained weights as they are, or auto: the average once it has settled (settling_updates).
WEIGHTS = ("auto", "average", "live")
# An average settles after this share of its horizon, 1 / (1 - decay), in updates. Before that it
# still holds enough of the early training that the trained weights translated better (after ~300
# and ~500 updates of a 0.999 average); from ~800 on the average did (docs/BENCHMARKS.md, "The
# weight average's horizon").
SETTLED_SHARE = 0.75


def settling_updates(decay: float) -> int:
    """The updates after which a weight average of `decay` has settled."""
    return math.ceil(round(SETTLED_SHARE / (1 - decay), 6))  # rounded: 1 - 0.999 is not exact


def safe_load(path: Path, map_location: str | torch.device = "cpu") -> Any:
    """torch.load restricted to tensors and plain containers; clear errors for anything else."""
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise UserError(f"checkpoint file missing: {path}") from None
    except pickle.UnpicklingError as exc:
        if "weights_only" in str(exc) or "Unsupported" in str(exc) or "global" in str(exc).lower():
            raise UserError(f"refusing to load {path}: it needs arbitrary code (pickle) to load; only tensor checkpoints are accepted") from None
        raise UserError(f"checkpoint file {path} is damaged ({str(exc).splitlines()[0]})") from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise UserError(f"checkpoint file {path} is damaged or unreadable ({str(exc).splitlines()[0][:120]})") from None


@dataclass
class CheckpointIndex:
    path: Path  # the checkpoint folder
    step: int
    domains: dict[str, dict[str, str]]  # name -> {"nets": relpath, "state": relpath} (relative to the run)
    trainer: str
    arch: dict[str, Any]  # the architecture the weights were trained with

    def file(self, run: Path, name: str, kind: str) -> Path:
        return run / self.domains[name][kind]

    def averaged(self, name: str) -> bool:
        """Whether the checkpoint holds a weight average (train.ema) of this domain."""
        return "ema" in self.domains[name]

    def average_updates(self, run: Path, name: str) -> tuple[float, int] | None:
        """(decay, generator updates) of the domain's weight average, if the checkpoint records them."""
        if not self.averaged(name):
            return None
        meta = weight_files.read_metadata(self.file(run, name, "ema"))
        if "ema_decay" not in meta or "ema_updates" not in meta:
            return None
        return float(meta["ema_decay"]), int(meta["ema_updates"])

    def uses_average(self, run: Path, name: str, weights: str) -> bool:
        """Whether the domain loads its weight average for `weights` (one of WEIGHTS); an average
        that does not record its updates (older checkpoints) counts as settled."""
        if weights == "live" or not self.averaged(name):
            return False
        updates = self.average_updates(run, name) if weights == "auto" else None
        return updates is None or updates[1] >= settling_updates(updates[0])


def _step_dir(run: Path, step: int) -> Path:
    return run / CKPT_DIR / f"step_{step:09d}"


def save(run: Path, model: ComboGAN, state: TrainState, step: int, trainer_state: dict[str, Any], previous: CheckpointIndex | None,
         changed: list[str] | None = None, rank_pools: list[dict[str, dict]] | None = None) -> CheckpointIndex:
    """Write a checkpoint for `step` of `model` and its TrainState `state`. Domains not in
    `changed` (default: the trainable ones) keep pointing at their files in `previous`, which
    stay byte-identical. `rank_pools`: every torchrun rank's pools."""
    folder = _step_dir(run, step)
    folder.mkdir(parents=True, exist_ok=True)
    changed = state.trainable if changed is None else changed
    arch = dataclasses.asdict(model.arch)
    entries: dict[str, dict[str, str]] = {}
    for name in model.names:
        if previous is not None and name not in changed and name in previous.domains:
            entries[name] = dict(previous.domains[name])
            continue
        nets, train = folder / f"{name}.safetensors", folder / f"{name}.state.pt"
        weight_files.save_domain(nets, name, model.domain_state(name), model.arch)
        entries[name] = {"nets": str(nets.relative_to(run)), "state": str(train.relative_to(run))}
        averaged = state.ema.weights(name) if state.ema is not None else None
        if averaged is not None:  # what inference uses; the critic is the live one
            ema = folder / f"{name}.ema.safetensors"
            critic = {k: v for k, v in model.domain_state(name).items() if k.startswith("discriminator.")}
            weight_files.save_domain(ema, name, {**averaged, **critic}, model.arch, {"ema_decay": str(state.ema.decay), "ema_updates": str(state.ema.count[name])})
            entries[name]["ema"] = str(ema.relative_to(run))
        atomic.save_torch(train, {"format": "combogan-state", "version": FORMAT_VERSION, "domain": name,
                                  **state.domain_state(name, [r[name] for r in rank_pools] if rank_pools else None)})
    atomic.save_torch(folder / "trainer.pt", {"format": "combogan-trainer", "version": FORMAT_VERSION, "step": step, **trainer_state})
    index = {"format": "combogan-checkpoint", "version": FORMAT_VERSION, "step": step, "arch": arch, "domains": entries, "trainer": str((folder / "trainer.pt").relative_to(run))}
    atomic.write_json(folder / "index.json", index)  # last: its presence marks the checkpoint complete
    return CheckpointIndex(folder, step, entries, index["trainer"], arch)


def load_weights(path: Path) -> dict[str, torch.Tensor]:
    """A domain's weights (encoder.*, decoder.*, discriminator.*) from either format."""
    if path.suffix == ".safetensors":
        return weight_files.load_domain(path)[2]
    nets = safe_load(path)  # combogan 0.1
    if not isinstance(nets, dict) or nets.get("format") != "combogan-nets":
        raise UserError(f"{path} is not a combogan weights file")
    return nets["state_dict"]


def read_index(run: Path, folder: Path) -> CheckpointIndex:
    path = folder / "index.json"
    try:
        data = json.loads(path.read_text())
        if data.get("format") != "combogan-checkpoint":
            raise ValueError("not a combogan checkpoint index")
        if data.get("version", 0) > FORMAT_VERSION:
            raise UserError(f"{path} was written by a newer combogan (format {data['version']}); upgrade to load it")
        index = CheckpointIndex(folder, int(data["step"]), {k: dict(v) for k, v in data["domains"].items()}, str(data["trainer"]), dict(data["arch"]))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        raise UserError(f"checkpoint index {path} is missing or damaged") from None
    for files in index.domains.values():
        if "nets" not in files or "state" not in files:
            raise UserError(f"checkpoint index {path} is damaged (a domain without its files)")
        for kind in [k for k in ("nets", "state", "ema") if k in files]:
            if not (run / files[kind]).is_file():
                raise UserError(f"checkpoint {folder.name} is incomplete: {files[kind]} is missing")
    if not (run / index.trainer).is_file():
        raise UserError(f"checkpoint {folder.name} is incomplete: {index.trainer} is missing")
    return index


def list_checkpoints(run: Path) -> list[Path]:
    root = run / CKPT_DIR
    return sorted(root.glob("step_*")) if root.is_dir() else []


def latest(run: Path, verify: bool = True, warn: Callable[[str], None] | None = None) -> CheckpointIndex | None:
    """The newest complete checkpoint; damaged newer ones are reported (via `warn`) and skipped."""
    for folder in reversed(list_checkpoints(run)):
        try:
            index = read_index(run, folder)
            if verify:  # every file must load, not just exist
                for name in index.domains:
                    load_weights(index.file(run, name, "nets"))
                    if index.averaged(name):
                        load_weights(index.file(run, name, "ema"))
                    safe_load(index.file(run, name, "state"))
                safe_load(run / index.trainer)
            return index
        except UserError as exc:
            (warn or (lambda m: print(f"warning: {m}", file=sys.stderr)))(f"skipping checkpoint {folder.name}: {exc}")
    return None


def require_latest(run: Path, action: str) -> CheckpointIndex:
    """latest(), or a UserError that tells "nothing saved yet" from "saved, but none loads"
    (a damaged or newer-version checkpoint: the warnings above name each one and why)."""
    index = latest(run)
    if index is None:
        found = len(list_checkpoints(run))
        if found:
            raise UserError(f"{action}: none of the {found} checkpoint(s) in {run} can be loaded (see the warnings above)")
        raise UserError(f"{action}: {run} has no complete checkpoint yet")
    return index


def prune(run: Path, keep: int) -> None:
    """Delete all but the newest `keep` complete checkpoints, sparing folders they still reference."""
    folders = list_checkpoints(run)
    kept, referenced = [], set()
    for folder in reversed(folders):
        if len(kept) == keep:
            break
        try:
            index = read_index(run, folder)
        except UserError:
            continue
        kept.append(folder)
        referenced |= {(run / f).parent for files in index.domains.values() for f in files.values()}
    if len(kept) < keep:
        return
    for folder in folders:
        if folder not in kept and folder not in referenced and folder < kept[-1]:
            _delete(folder)


def _delete(folder: Path) -> None:
    """Rename, then delete: a kill half way leaves a hidden folder no reader lists, never a
    checkpoint that still has its index.json but lost some of its files."""
    trash = folder.with_name(f".{folder.name}.deleting")
    try:
        folder.rename(trash)
    except OSError:
        return
    shutil.rmtree(trash, ignore_errors=True)


def sweep(run: Path) -> None:
    """Before a run continues: remove what kills left behind, the temporary files of interrupted
    writes, checkpoint folders whose write never finished (no index.json) and half-deleted ones."""
    atomic.sweep_temp_files(run)
    root = run / CKPT_DIR
    for trash in root.glob(".step_*.deleting") if root.is_dir() else []:
        shutil.rmtree(trash, ignore_errors=True)
    for folder in list_checkpoints(run):
        if not (folder / "index.json").exists():
            _delete(folder)


def load_arch(index: CheckpointIndex) -> ModelConfig:
    try:
        return config_mod.saved_arch(index.arch)
    except TypeError as exc:
        raise UserError(f"checkpoint {index.path.name} has an architecture this version does not understand ({exc})") from None


def load_into(run: Path, index: CheckpointIndex, model: ComboGAN, state: TrainState | None = None, names: list[str] | None = None) -> dict[str, Any]:
    """Fill `model`'s domains `names` (default: all) and, if given, its TrainState from the
    checkpoint (optimizers and pools of the domains `state` trains); return the trainer state."""
    fresh_pools = []
    for name in model.names if names is None else names:
        model.load_domain_state(name, load_weights(index.file(run, name, "nets")))
        if state is not None and name in state.pools and not state.load_domain_state(name, safe_load(index.file(run, name, "state"))):
            fresh_pools.append(name)
    if fresh_pools:
        print(f"note: rank {state.rank} starts with empty image pools (the checkpoint holds fewer ranks' pools)", file=sys.stderr)
    trainer = safe_load(run / index.trainer)
    if not isinstance(trainer, dict) or trainer.get("format") != "combogan-trainer":
        raise UserError(f"{run / index.trainer} is not a combogan trainer-state file")
    return trainer


def load_model(run: str | Path, device: torch.device | str = "cpu", weights: str = "auto") -> tuple[ComboGAN, CheckpointIndex]:
    """The model of the run's newest complete checkpoint, in eval mode on `device`, each domain
    with the weights `weights` (one of WEIGHTS) chooses."""
    if weights not in WEIGHTS:
        raise ValueError(f"weights must be one of {', '.join(WEIGHTS)}, not {weights!r}")
    run = Path(run)  # the README's API example passes a string
    index = require_latest(run, "cannot load the model")
    model = ComboGAN(load_arch(index), index.domains)
    load_into(run, index, model)
    for name in index.domains:
        if index.uses_average(run, name, weights):
            model.load_domain_state(name, load_weights(index.file(run, name, "ema")))
    return model.to(device).eval(), index
