"""Image files in, tensors out: decoding any file a user has (gray, palette, CMYK, 16-bit,
transparent, EXIF-rotated, huge), resizing, cropping, and the [-1, 1] model range."""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
from PIL import Image, ImageOps
from torchvision.transforms.v2 import functional as TF

# Guard against decompression bombs but allow big photos (a 16k x 16k pano is ~268M px).
Image.MAX_IMAGE_PIXELS = 300_000_000


class BadImage(Exception):
    pass


def _to_rgb(img: Image.Image) -> Image.Image:
    """Gray/palette/CMYK/16-bit -> RGB; transparency is composited on white (not dropped),
    so a transparent background reads as white paper rather than as whatever colour hid under it."""
    if img.mode == "RGB":
        return img
    if img.mode in ("I;16", "I;16B", "I;16L", "I"):
        arr = np.asarray(img, dtype=np.float64)
        peak = 65535.0 if arr.max() > 255 else 255.0
        img = Image.fromarray((arr / peak * 255.0).round().clip(0, 255).astype(np.uint8), "L")
    if img.mode == "P" or img.mode == "LA" or img.mode == "PA" or "transparency" in img.info:
        img = img.convert("RGBA")
    if img.mode == "RGBA":
        background = Image.new("RGB", img.size, (255, 255, 255))
        background.paste(img, mask=img.getchannel("A"))
        return background
    return img.convert("RGB")


RESIZE_MODES = ("shorter_side", "square")


def open_image(path: str | Path | BinaryIO, draft_side: int | None = None) -> Image.Image:
    """The RGB image every reader of combogan sees: EXIF orientation applied, converted from any
    mode, first frame of an animation; a JPEG decoded at reduced scale when only `draft_side`
    pixels are needed on its shorter side. BadImage for anything that cannot be read."""
    try:
        with Image.open(path) as img:
            if img.width * img.height > Image.MAX_IMAGE_PIXELS:
                # PIL only warns between 1x and 2x the limit; a header this large is refused outright.
                raise BadImage(f"{path}: {img.width}x{img.height} pixels is over the {Image.MAX_IMAGE_PIXELS:,}-pixel limit (decompression bomb?)")
            if draft_side and img.format == "JPEG":
                img.draft("RGB", (draft_side * img.width // min(img.size), draft_side * img.height // min(img.size)))
            img = ImageOps.exif_transpose(img)
            img = _to_rgb(img)
            img.load()
            return img
    except BadImage:
        raise
    except Exception as exc:  # noqa: BLE001 - a damaged file can make a decoder raise anything (struct.error, IndexError, ...)
        raise BadImage(f"{path}: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None


def load_image(path: str | Path | BinaryIO, short_side: int | None = None, resize: str = "shorter_side") -> torch.Tensor:
    """Decode (open_image) to a uint8 RGB tensor (3, H, W), then resized (if `short_side` is
    given): 'shorter_side' scales the shorter side to it, keeping the aspect ratio; 'square'
    stretches to short_side x short_side, as the official CycleGAN/ComboGAN resize_and_crop does."""
    t = TF.pil_to_tensor(open_image(path, short_side))
    if short_side:
        t = TF.resize(t, [short_side, short_side] if resize == "square" else [short_side], antialias=True)
    return t


def resize(img: torch.Tensor, size: list[int] | tuple[int, int]) -> torch.Tensor:
    """Antialiased resize of a uint8 (3, H, W) image to exactly (h, w). PyTorch's uint8
    antialiasing kernel fails on 1x1 outputs, so those go through float."""
    if tuple(size) != (1, 1):
        return TF.resize(img, list(size), antialias=True)
    return TF.resize(img.float(), [1, 1], antialias=True).round().clamp(0, 255).to(torch.uint8)


def to_model_range(t: torch.Tensor) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1] (the tanh output range)."""
    return t.float().div(127.5).sub(1.0)


def to_uint8(t: torch.Tensor) -> torch.Tensor:
    return ((t.detach().float().clamp(-1, 1) + 1.0) * 127.5).round().to(torch.uint8)


def random_crop_flip(t: torch.Tensor, size: int, flip: bool, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    h, w = t.shape[-2:]
    if h < size or w < size:  # tiny image: upscale rather than fail
        t = TF.resize(t, [size], antialias=True)
        h, w = t.shape[-2:]
    top = int(torch.randint(0, h - size + 1, (1,), generator=g))
    left = int(torch.randint(0, w - size + 1, (1,), generator=g))
    t = t[..., top : top + size, left : left + size]
    if flip and torch.rand((), generator=g) < 0.5:
        t = t.flip(-1)
    return t


def center_crop(t: torch.Tensor, size: int) -> torch.Tensor:
    if min(t.shape[-2:]) < size:
        t = TF.resize(t, [size], antialias=True)
    return TF.center_crop(t, [size, size])


