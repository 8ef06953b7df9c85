"""Run the step's two independent halves at the same time, one per worker thread (CPU).

Why: a ComboGAN step is two mirror-image chains (A->B->A and B->A->B) that share weights but no
activations. On a few CPU cores one convolution at a time scales poorly across threads (two
threads run the demo step only ~1.4x faster than one), so giving each chain its own core keeps
both busy. Autograd runs a CPU backward on the thread that calls it, so the backward passes
overlap as well. Weights used by both chains receive exactly two gradient contributions, and
a + b == b + a in floating point, so the result does not depend on which thread finishes first.

Python threads share the GIL, but PyTorch releases it inside every op; the GIL only serialises
the thin Python layer between ops.
"""

from __future__ import annotations

import concurrent.futures as cf
from collections.abc import Callable
from typing import TypeVar

import torch

T = TypeVar("T")
U = TypeVar("U")


class Overlap:
    """overlap(first, second) -> (first(), second()), the two run concurrently (the plain
    Executor.both runs them one after the other).

    Each worker thread gets half of the intra-op threads (at least one). Thread-local state
    (grad mode, autocast) does not cross threads: callables must set up their own.
    """

    def __init__(self, threads: int | None = None):
        total = threads or torch.get_num_threads()
        self.threads_per_half = max(1, total // 2)
        # Started on first use: the trainer's DataLoader forks its workers before the first step,
        # and forking while other threads exist is best avoided.
        self._pool: cf.ThreadPoolExecutor | None = None

    def __call__(self, first: Callable[[], T], second: Callable[[], U]) -> tuple[T, U]:
        if self._pool is None:
            self._pool = cf.ThreadPoolExecutor(2, thread_name_prefix="combogan-half", initializer=torch.set_num_threads,
                                               initargs=(self.threads_per_half,))
        futures = [self._pool.submit(first), self._pool.submit(second)]
        # Wait for both before raising: returning while the other half still runs backward
        # would let the next step race with it.
        cf.wait(futures)
        return futures[0].result(), futures[1].result()

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None

    def __repr__(self) -> str:
        return f"Overlap(2 halves x {self.threads_per_half} threads)"
