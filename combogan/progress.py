"""Progress on stderr: tqdm's live bar on a terminal; in a file or a CI log, where a bar would be
thousands of carriage-return updates, one plain line every `every` updates or `seconds`, and a
last one when done."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO


class Progress:
    def __init__(self, total: float | None, desc: str, unit: str = "it", initial: int = 0, disable: bool = False,
                 every: int | None = None, seconds: float = 30.0, stream: TextIO | None = None):
        self.stream = stream or sys.stderr
        self.total, self.desc, self.unit, self.count = total, desc, unit, initial
        self.every, self.seconds, self.disable = every, seconds, disable
        self.postfix: dict[str, float] = {}
        self.bar: Any = None
        if not disable and self.stream.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, initial=initial, desc=desc, unit=unit, file=self.stream, dynamic_ncols=True)
        self._line_at, self._line_count = time.monotonic(), initial
        self._start, self._start_count = self._line_at, initial

    def set_postfix(self, values: dict[str, float]) -> None:
        """Numbers shown beside the count (losses, say), from the next line or redraw on."""
        self.postfix = dict(values)
        if self.bar is not None:
            self.bar.set_postfix({k: f"{v:.3f}" for k, v in values.items()}, refresh=False)

    def set_total(self, total: float | None) -> None:
        self.total = total
        if self.bar is not None:
            self.bar.total = total
            self.bar.refresh()

    def update(self, n: float = 1) -> None:
        self.count += n
        if self.bar is not None:
            self.bar.update(n)
        elif not self.disable:
            now = time.monotonic()
            due = self.every is not None and self.count - self._line_count >= self.every
            if due or now - self._line_at >= self.seconds:
                self._line(now)

    def _line(self, now: float) -> None:
        rate = (self.count - self._line_count) / max(now - self._line_at, 1e-9)
        done = _number(self.count) + (f"/{_number(self.total)} ({100 * self.count / self.total:.0f}%)" if self.total else "")
        extra = "".join(f", {k} {v:.3f}" for k, v in self.postfix.items())
        print(f"{self.desc}: {done}, {rate:.2f} {self.unit}/s{extra}", file=self.stream, flush=True)
        self._line_at, self._line_count = now, self.count

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif not self.disable and self.count > self._line_count:
            self._line(time.monotonic())

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _number(x: float) -> str:
    return f"{x:.1f}" if isinstance(x, float) and not x.is_integer() else f"{x:.0f}"
