"""Dataset recipes: what a known dataset's domains are called, how to fetch it, how to make a
synthetic stand-in. Installed as `combogan.domains`; each recipe is a subpackage with a
dataset.yaml (names in the official train0..K order, fetch URL) and optionally a synthesizer."""

from __future__ import annotations

import importlib
from functools import cache
from pathlib import Path
from typing import Any

import yaml

_HERE = Path(__file__).parent


def recipe_names() -> list[str]:
    return sorted(p.parent.name for p in _HERE.glob("*/dataset.yaml"))


@cache
def recipe(name: str) -> dict[str, Any]:
    path = _HERE / name / "dataset.yaml"
    if not path.is_file():
        from ..errors import UserError

        raise UserError(f"unknown dataset '{name}'; known: {', '.join(recipe_names())}")
    return yaml.safe_load(path.read_text())


def recipe_domain_names(folder_name: str) -> list[str] | None:
    """Names for a folder called like a known recipe (e.g. alps_seasons/train0..3)."""
    if folder_name not in recipe_names():
        return None
    return list(recipe(folder_name)["domains"])


def synthesizer(name: str):
    recipe(name)  # raises the one-line error for unknown names
    module = importlib.import_module(f"{__name__}.{name}")
    if not hasattr(module, "synthesize"):
        from ..errors import UserError

        raise UserError(f"dataset '{name}' has no synthetic generator")
    return module.synthesize
