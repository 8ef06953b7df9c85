"""`combogan data check`: what --domains would see, and every problem, before training."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

from PIL import ExifTags, Image

from .images import BadImage, open_image
from .layouts import Layout, discover

MIN_IMAGES = 10


@dataclass
class Report:
    layout: Layout
    sizes: dict[str, tuple[tuple[int, int], tuple[int, int]]] = field(default_factory=dict)  # domain -> (min wh, max wh)
    corrupt: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # training would fail
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors


def _probe(path: Path) -> tuple[int, int]:
    """Decode as training does (at reduced scale for JPEG), so every file training would skip is
    caught, not just bad headers; (width, height) as oriented."""
    open_image(path, draft_side=64)
    with Image.open(path) as header:  # the full size, without decoding it again
        w, h = header.size
        quarter_turn = header.getexif().get(ExifTags.Base.Orientation) in (5, 6, 7, 8)
    return (h, w) if quarter_turn else (w, h)


def check(root: str | Path) -> Report:
    layout = discover(root, flag="combogan data check")
    report = Report(layout)
    seen: dict[str, list[str]] = defaultdict(list)
    for name, domain in layout.domains.items():
        readable = 0
        lo, hi = (10**9, 10**9), (0, 0)
        for split, files in domain.splits.items():
            for f in files:
                try:
                    w, h = _probe(f)
                except BadImage as exc:
                    report.corrupt.append(f"{f}: {str(exc).split(': ', 1)[-1][:100]}")
                    continue
                if split == "train":
                    readable += 1
                    seen[f.name].append(name)
                lo, hi = min(lo, (w, h), key=lambda s: s[0] * s[1]), max(hi, (w, h), key=lambda s: s[0] * s[1])
        if hi != (0, 0):
            report.sizes[name] = (lo, hi)
        if readable == 0:
            report.errors.append(f"domain '{name}' has no readable training images")
        elif readable < MIN_IMAGES:
            report.warnings.append(f"domain '{name}' has only {readable} training images (< {MIN_IMAGES})")
    if len(layout.domains) < 2:
        report.errors.append(f"need at least two domains, found {len(layout.domains)}")
    dups = {n: ds for n, ds in seen.items() if len(set(ds)) > 1}
    if dups:
        example = next(iter(dups))
        report.warnings.append(f"{len(dups)} training file name(s) appear in several domains (e.g. {example} in {', '.join(sorted(set(dups[example])))}): copied by mistake?")
    return report


def format_report(r: Report, problems_only: bool = False) -> list[str]:
    """The report as lines; problems_only: only the corrupt files, warnings and problems."""
    lines = [] if problems_only else [f"layout: {r.layout.kind}", f"root: {r.layout.root}", "domains:"]
    for name, counts in ({} if problems_only else r.layout.counts()).items():
        split_text = ", ".join(f"{s} {n}" for s, n in counts.items())
        size = r.sizes.get(name)
        size_text = f"  sizes {size[0][0]}x{size[0][1]} .. {size[1][0]}x{size[1][1]}" if size else ""
        lines.append(f"  {name:<16} {split_text}{size_text}")
    shown = r.corrupt[:10]
    lines += [f"corrupt: {c}" for c in shown]
    if len(r.corrupt) > 10:
        lines.append(f"corrupt: ... and {len(r.corrupt) - 10} more ({len(r.corrupt)} in all)")
    lines += [f"warning: {w}" for w in r.warnings]
    lines += [f"problem: {e}" for e in r.errors]
    if not problems_only:
        lines.append("ok: ready to train" if r.ok else "not ready: training would fail")
    return lines
