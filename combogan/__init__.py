"""combogan: unpaired image-to-image translation across many domains (ComboGAN / CycleGAN).

    from combogan import Translator, train, load_config
    cfg = load_config("configs/demo.yaml", ["model.ngf=16"])
    train("data/alps", cfg, run="runs/alps")
    winter = Translator("runs/alps").translate(pil_image, "summer", "winter")
"""

from .config import Config
from .config import load as load_config
from .errors import UserError
from .registry import DomainRegistry
from .step import train_step
from .trainer import TrainResult, train
from .translate import Translator

__all__ = ["Config", "DomainRegistry", "TrainResult", "Translator", "UserError", "load_config", "train", "train_step"]
__version__ = "0.1.0"
