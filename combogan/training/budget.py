"""`train --time`: a wall-clock budget that the schedule, its decay included, is fitted into.

Cutting a schedule short with --max-iters stops it at a constant learning rate; fitting it
shortens the whole schedule, so the run still ends with its decay. The learning rate is constant
until the last train.decay_fraction of the schedule, so shortening it while the run is still in
that constant part changes nothing already done, and a resume from any checkpoint replays the
same steps. The length is fitted once the speed is measured and again at every logged step while
that holds, from the speed of the last tenth of the budget, the last time as the decay is about
to begin; it never grows past the configured schedule. If the deadline still comes first (the
machine slowed down once the decay had begun), the run stops there and saves.
"""

from __future__ import annotations

import math
import re
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from ..errors import UserError
from .schedule import Schedule

_UNITS = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0}
_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)d)?(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?")


def parse_duration(text: str) -> float:
    """'8h', '90m', '1h30m', '45s', '2d' or a plain number of seconds -> seconds (> 0)."""
    s = text.strip().lower().replace(" ", "")
    try:
        seconds = float(s)
    except ValueError:
        m = _DURATION.fullmatch(s)
        if not s or m is None:
            raise UserError(f"--time expects a duration like 8h, 90m, 1h30m or a number of seconds, got '{text}'") from None
        seconds = sum(float(v) * _UNITS[u] for v, u in zip(m.groups(), "dhms") if v)
    if not math.isfinite(seconds) or seconds <= 0:
        raise UserError(f"--time must be a positive duration, got '{text}'")
    return seconds


def shortest_exact(schedule: Schedule, done: int) -> int | None:
    """The shortest length whose constant part still covers the `done` steps [0, done): a
    schedule cut to it gives every step done so far the same learning rate. None when there is
    no constant part (train.decay_fraction = 1)."""
    if schedule.decay_fraction >= 1.0:
        return None
    # The constant part, total - round(total x fraction), grows by 0 or 1 with each step of
    # total and is below `done` at this start, so the first total that reaches it is the shortest.
    total = max(1, math.floor((done - 1) / (1.0 - schedule.decay_fraction)))
    while schedule.with_total(total).constant_iters < done:
        total += 1
    return total


@dataclass
class TimeBudget:
    """`seconds` of training from start(); `clock` is read once per step by the loop."""

    seconds: float
    clock: Callable[[], float] = time.monotonic
    warmup: int = 2  # steps not timed: the first ones allocate, autotune and start data workers
    margin: float = 0.02  # of the time left, kept for the final checkpoint and sample grid
    window: float = 0.1  # of the budget: the recent speed, which predicts the time left (see rate)
    _t0: float = field(default=0.0, init=False)
    _first: int = field(default=0, init=False)
    _seen: deque[tuple[int, float]] = field(default_factory=deque, init=False)  # (steps done, clock) since the warm-up

    def start(self, done: int) -> None:
        self._t0, self._first = self.clock(), done
        self._seen.clear()

    def observe(self, done: int, now: float) -> None:
        """Called after each step (`done` steps so far) with the clock's reading."""
        if done - self._first < self.warmup:
            return
        self._seen.append((done, now))
        span = max(self.window * self.seconds, min(60.0, 0.01 * self.seconds))
        while len(self._seen) > 4 and now - self._seen[1][1] >= span:
            self._seen.popleft()

    def expired(self, now: float) -> bool:
        return now - self._t0 >= self.seconds

    def measured(self, done: int, now: float) -> bool:
        """Whether enough steps were timed to trust the speed: 3, over at least 1% of the budget
        (at most a minute)."""
        if not self._seen:
            return False
        steps, spent = done - self._seen[0][0], now - self._seen[0][1]
        return steps >= 3 and spent >= min(60.0, 0.01 * self.seconds)

    def rate(self, done: int, now: float) -> float:
        """Steps per second over the last tenth of the budget (at least 3 steps). On a shared
        machine the speed changes as other jobs come and go; the recent speed predicts the time
        left better than the average since the start."""
        steps, spent = done - self._seen[0][0], now - self._seen[0][1]
        return steps / max(spent, 1e-9)

    def fit(self, schedule: Schedule, configured: int, done: int, now: float) -> int:
        """The schedule's length that ends within the budget at the recent speed, `done` steps
        in: never longer than `configured`, never so short that a step done would fall in the
        decay. Once the run is in the decay the length stays."""
        floor = shortest_exact(schedule, done)
        if floor is None or schedule.constant_iters < done:
            return schedule.total_iters
        left = max(0.0, self.seconds - (now - self._t0)) * (1.0 - self.margin)
        total = done + int(self.rate(done, now) * left)
        return min(configured, max(total, floor))
