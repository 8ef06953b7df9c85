"""Which ordered domain pair, and which images, each iteration uses.

Both are pure functions of (seed, step): every DDP rank draws the same pair without talking,
a resumed run replays exactly, and the data loader can prefetch ahead of the trainer.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np

_BLOCK = 4096  # pairs are drawn in blocks so lookup is O(1) and counting is vectorised


@lru_cache(maxsize=64)
def _pair_block(seed: int, n_first: int, n_second: int, distinct: bool, block: int) -> np.ndarray:
    rng = np.random.default_rng([seed, block, 7919])
    first = rng.integers(0, n_first, _BLOCK)
    if distinct:
        # Draw the second index from the n-1 others: uniform over ordered distinct pairs.
        second = rng.integers(0, n_second - 1, _BLOCK)
        second = second + (second >= first)
    else:
        second = rng.integers(0, n_second, _BLOCK)
    pairs = np.stack([first, second], 1)
    pairs.setflags(write=False)
    return pairs


class PairSampler:
    """Uniform ordered pairs of distinct domains, or (when `anchors` is given, for add-domain)
    one of `names` paired with one of `anchors`, the new domain on a random side."""

    def __init__(self, names: list[str], seed: int, anchors: list[str] | None = None):
        if anchors is None and len(names) < 2:
            raise ValueError("need at least two domains to sample pairs")
        self.names, self.anchors, self.seed = list(names), list(anchors) if anchors else None, seed

    def _indices(self, block: int) -> np.ndarray:
        if self.anchors is None:
            return _pair_block(self.seed, len(self.names), len(self.names), True, block)
        return _pair_block(self.seed, len(self.names), 2 * len(self.anchors), False, block)

    def pair(self, step: int) -> tuple[str, str]:
        i, j = self._indices(step // _BLOCK)[step % _BLOCK]
        if self.anchors is None:
            return self.names[i], self.names[j]
        anchor, new_first = self.anchors[j // 2], j % 2 == 0
        return (self.names[i], anchor) if new_first else (anchor, self.names[i])

    def pairs(self, start: int, stop: int) -> list[tuple[str, str]]:
        return [self.pair(s) for s in range(start, stop)]

    def usage_before(self, step: int) -> dict[str, int]:
        """How many times each domain was drawn (either side) in steps [0, step)."""
        domains = self.names + (self.anchors or [])
        counts = dict.fromkeys(domains, 0)
        full, rest = divmod(step, _BLOCK)
        for block in range(full + (1 if rest else 0)):
            idx = self._indices(block)
            if block == full:
                idx = idx[:rest]
            if self.anchors is None:
                hits = np.bincount(idx.ravel(), minlength=len(self.names))
                for name, c in zip(self.names, hits):
                    counts[name] += int(c)
            else:
                for name, c in zip(self.names, np.bincount(idx[:, 0], minlength=len(self.names))):
                    counts[name] += int(c)
                for name, c in zip(self.anchors, np.bincount(idx[:, 1] // 2, minlength=len(self.anchors))):
                    counts[name] += int(c)
        return counts
