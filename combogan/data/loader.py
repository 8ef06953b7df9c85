"""Training batches: every batch is a function of (seed, step).

The pair comes from the PairSampler, each domain reads its own reshuffled-every-pass stream of
files, and crop/flip parameters come from a per-sample seed. So results do not depend on worker
count, and resume continues the exact same data sequence. One DataLoader serves all domains
(not one per domain), so 14 domains do not mean 14 sets of worker processes.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from .images import BadImage, center_crop, load_image, random_crop_flip, to_model_range
from .sampler import PairSampler


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
