"""Images in, training batches out.

Every training batch is a function of (seed, step): the pair comes from the PairSampler, each
domain reads its own reshuffled-every-pass stream of files, and crop/flip parameters come
from a per-sample seed. So results do not depend on worker count, and resume continues the
exact same data sequence. One DataLoader serves all domains (not one per domain), so 14
domains do not mean 14 sets of worker processes.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
import torch
from PIL import Image, ImageOps
from torch.utils.data import DataLoader, Dataset, Sampler
from torchvision.transforms.v2 import functional as TF

from .sampler import PairSampler

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


def load_image(path: str | Path, short_side: int | None = None, resize: str = "shorter_side") -> torch.Tensor:
    """Decode to a uint8 RGB tensor (3, H, W), EXIF orientation applied, then resized (if
    `short_side` is given): 'shorter_side' scales the shorter side to it, keeping the aspect
    ratio; 'square' stretches to short_side x short_side, as the official CycleGAN/ComboGAN
    resize_and_crop does. Large JPEGs are decoded at reduced scale by libjpeg directly."""
    try:
        with Image.open(path) as img:
            if img.width * img.height > Image.MAX_IMAGE_PIXELS:
                # PIL only warns between 1x and 2x the limit; a header this large is refused outright.
                raise BadImage(f"{path}: {img.width}x{img.height} pixels is over the {Image.MAX_IMAGE_PIXELS:,}-pixel limit (decompression bomb?)")
            if short_side and img.format == "JPEG":
                img.draft("RGB", (short_side * img.width // min(img.size), short_side * img.height // min(img.size)))
            img = ImageOps.exif_transpose(img)
            img = _to_rgb(img)
            img.load()
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise BadImage(f"{path}: {exc}") from None
    t = TF.pil_to_tensor(img)
    if short_side:
        t = TF.resize(t, [short_side, short_side] if resize == "square" else [short_side], antialias=True)
    return t


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


class DomainImages(Dataset):
    """Index (domain index, file index, augmentation seed) -> float image in [-1, 1]."""

    def __init__(self, files: Sequence[Sequence[Path]], load_size: int, crop_size: int, flip: bool, cache: bool = False,
                 resize: str = "shorter_side"):
        self.files = [list(f) for f in files]
        self.load_size, self.crop_size, self.flip, self.resize = load_size, crop_size, flip, resize
        self.cache: dict[tuple[int, int], torch.Tensor] | None = None
        if cache:
            self.preload()

    def preload(self) -> None:
        """Decode everything once in this process; forked workers then share it copy-on-write."""
        self.cache = {}
        for d, files in enumerate(self.files):
            for i, _ in enumerate(files):
                img = self._decode(d, i)
                if img is not None:
                    self.cache[(d, i)] = img

    def _decode(self, d: int, i: int) -> torch.Tensor | None:
        try:
            return load_image(self.files[d][i], self.load_size, self.resize)
        except BadImage:
            return None

    def _image(self, d: int, i: int) -> tuple[torch.Tensor | None, list[str]]:
        """The image, or the next readable one of its domain; plus the unreadable paths met."""
        n, bad = len(self.files[d]), []
        for k in range(n):
            j = (i + k) % n
            img = self.cache.get((d, j)) if self.cache is not None else self._decode(d, j)
            if img is not None:
                return img, bad
            bad.append(str(self.files[d][j]))
        return None, bad

    def __len__(self) -> int:
        return sum(len(f) for f in self.files)

    def __getitem__(self, key: tuple[int, int, int]) -> tuple[torch.Tensor, str]:
        """(image in [-1, 1], note). The note lists skipped unreadable files, one per line, so the
        main process can report them even when they were found inside a worker; it is
        EMPTY_DOMAIN when none of the domain's files can be read."""
        d, i, seed = key
        img, bad = self._image(d, i)
        if img is None:
            return torch.zeros(3, self.crop_size, self.crop_size), EMPTY_DOMAIN
        return to_model_range(random_crop_flip(img, self.crop_size, self.flip, seed)), "\n".join(bad)


EMPTY_DOMAIN = "!empty"


def _stream_index(seed: int, domain: int, n: int, position: int) -> int:
    """The position-th file of a domain's endless stream: a fresh permutation every pass."""
    epoch, offset = divmod(position, n)
    return int(_permutation(seed, domain, n, epoch)[offset])


_perm_cache: dict[tuple[int, int, int, int], np.ndarray] = {}


def _permutation(seed: int, domain: int, n: int, epoch: int) -> np.ndarray:
    key = (seed, domain, n, epoch)
    if key not in _perm_cache:
        if len(_perm_cache) > 256:
            _perm_cache.clear()
        _perm_cache[key] = np.random.default_rng([seed, domain, epoch, 104729]).permutation(n)
    return _perm_cache[key]


class StepBatches(Sampler[list[tuple[int, int, int]]]):
    """For each step in [start, stop): batch_size keys of the pair's first domain, then of its second.

    With world_size > 1 each rank takes its own slice of a world_size x batch_size global batch,
    so ranks see different images of the same pair and together equal one big-batch run.
    """

    def __init__(self, pairs: PairSampler, names: list[str], counts: list[int], batch_size: int, start: int, stop: int, seed: int, rank: int = 0, world_size: int = 1):
        self.pairs, self.index = pairs, {n: i for i, n in enumerate(names)}
        self.counts, self.batch, self.start, self.stop = counts, batch_size, start, stop
        self.seed, self.rank, self.world = seed, rank, world_size

    def __len__(self) -> int:
        return max(0, self.stop - self.start)

    def __iter__(self) -> Iterator[list[tuple[int, int, int]]]:
        global_batch = self.batch * self.world
        used = self.pairs.usage_before(self.start)
        position = {name: used.get(name, 0) * global_batch for name in self.index}
        for step in range(self.start, self.stop):
            keys = []
            for side, name in enumerate(self.pairs.pair(step)):
                d = self.index[name]
                base = position[name] + self.rank * self.batch
                for k in range(self.batch):
                    file_index = _stream_index(self.seed, d, self.counts[d], base + k)
                    aug_seed = (self.seed * 1_000_003 + step) * 4099 + side * 2053 + self.rank * self.batch + k
                    keys.append((d, file_index, aug_seed % (2**63)))
                position[name] += global_batch
            yield keys


def make_loader(dataset: DomainImages, batches: StepBatches, num_workers: int, device: torch.device) -> DataLoader:
    # Workers would only add start-up cost on tiny runs, and macOS/Windows spawn is slow.
    workers = num_workers if sys.platform == "linux" else 0
    return DataLoader(
        dataset,
        batch_sampler=batches,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        persistent_workers=False,
        prefetch_factor=4 if workers > 0 else None,
        # Its own generator: the loader must not draw from the global RNG (dropout's), or a
        # resumed run would diverge from an uninterrupted one.
        generator=torch.Generator().manual_seed(0),
    )


def fixed_samples(files: Sequence[Path], crop_size: int, load_size: int, count: int, resize: str = "shorter_side") -> torch.Tensor | None:
    """A few deterministic, centre-cropped images of one domain (for progress grids); None if
    none of `files` can be read."""
    out = []
    for path in files:
        try:
            out.append(to_model_range(center_crop(load_image(path, load_size, resize), crop_size)))
        except BadImage:
            continue
        if len(out) == count:
            break
    return torch.stack(out) if out else None
