"""combogan: unpaired image-to-image translation across many domains (ComboGAN / CycleGAN).

    from combogan import Translator, train, load_config
    cfg = load_config("configs/demo.yaml", ["model.ngf=16"])
    train("data/alps", cfg, run="runs/alps")
    winter = Translator("runs/alps").translate(pil_image, "summer", "winter")

Layers, each importing only those below it: combogan.data (images, layouts, batches) ->
combogan.model (networks, losses, the ComboGAN model object) -> combogan.runs (run directory,
checkpoints) -> combogan.training (the step, training state, session, loop) -> combogan.accel
(speed plans that wrap the step) -> combogan.apps (train, translate, evaluate, export, serve,
import) -> combogan.cli.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.3.0"

# Imported on first use, so `combogan --help` does not pay for importing torch.
_LAZY = {
    "Config": "config", "load_config": ("config", "load"), "UserError": "errors", "ComboGAN": "model.combogan",
    "TrainState": "training.state", "Step": "training.step", "TrainResult": "training.session", "train": "apps.train",
    "Translator": "apps.translator",
}
__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'combogan' has no attribute {name!r}")
    module, attr = _LAZY[name] if isinstance(_LAZY[name], tuple) else (_LAZY[name], name)
    return getattr(importlib.import_module(f".{module}", __name__), attr)
