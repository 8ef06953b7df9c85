"""One domain's weights in a file: safetensors (no pickle, memory-mappable, readable from any
language), with the architecture and the domain name in the file's metadata, so the file alone
re-creates its networks."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save

from .. import atomic
from ..config import ModelConfig, saved_arch
from ..errors import UserError

FORMAT = "combogan-domain-weights"
VERSION = 1


def save_domain(path: Path, name: str, state: dict[str, torch.Tensor], arch: ModelConfig, extra: dict[str, str] | None = None) -> None:
    """Write `state` (a ComboGAN.domain_state) atomically."""
    meta = {"format": FORMAT, "version": str(VERSION), "domain": name, "arch": json.dumps(dataclasses.asdict(arch)), **(extra or {})}
    atomic.write_bytes(path, save({k: v.contiguous() for k, v in state.items()}, metadata=meta))


def read_metadata(path: Path) -> dict[str, str]:
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
    except FileNotFoundError:
        raise UserError(f"checkpoint file missing: {path}") from None
    except (SafetensorError, OSError, ValueError) as exc:
        raise UserError(f"weights file {path} is damaged or unreadable ({str(exc).splitlines()[0][:120]})") from None
    if meta.get("format") != FORMAT:
        raise UserError(f"{path} is not a combogan weights file")
    if int(meta.get("version", "0")) > VERSION:
        raise UserError(f"{path} was written by a newer combogan (weights format {meta['version']}); upgrade to load it")
    return meta


def load_domain(path: Path, device: torch.device | str = "cpu") -> tuple[str, ModelConfig, dict[str, torch.Tensor]]:
    """(domain name, architecture, tensors) of a file written by save_domain."""
    meta = read_metadata(path)
    try:
        arch = saved_arch(json.loads(meta["arch"]))
        tensors = load_file(str(path), device=str(device))
    except TypeError as exc:
        raise UserError(f"{path} has an architecture this version does not understand ({exc})") from None
    except (KeyError, ValueError):
        raise UserError(f"{path} has an architecture this version does not understand") from None
    except (SafetensorError, OSError) as exc:
        raise UserError(f"weights file {path} is damaged or unreadable ({str(exc).splitlines()[0][:120]})") from None
    return meta["domain"], arch, tensors
