"""`combogan translate`: files, folders and globs in, image files out.

Each input is encoded once by its domain's encoder and decoded by every target's decoder, at a
working size, and its outputs are saved at the input's own size. The working size is the
training scale by default (shorter side at the run's data.load_size: the networks see content
at the size they learned it), capped by --max-side. Unreadable inputs are skipped with one
warning each; the rest go on.
"""

from __future__ import annotations

import glob
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torchvision.transforms.v2 import functional as TF

from ..data.images import BadImage, load_image, resize, to_model_range, to_uint8
from ..data.layouts import IMAGE_EXTENSIONS, list_images
from ..errors import UserError
from ..progress import Progress
from .translator import Translator

# By default a larger input (a 24-megapixel photo) is translated with its longer side at this size
# and the outputs resized back: at full size its activations alone would take tens of GB.
DEFAULT_MAX_SIDE = 2048
# Pixels of one translate batch: ngf=64 keeps ~64 floats per pixel per activation at full
# resolution, so this bounds a batch's activations to a few hundred MB whatever --batch-size says.
BATCH_PIXELS = 4 * 1024 * 1024


def working_size(h: int, w: int, load_size: int | None = None, max_side: int | None = None) -> tuple[int, int]:
    """The size an (h, w) input is translated at: shorter side at `load_size` (if given; None:
    its own size), then scaled down so the longer side is at most `max_side` (0 or None: no cap)."""
    scale = load_size / min(h, w) if load_size else 1.0
    if max_side and max(h, w) * scale > max_side:
        scale = max_side / max(h, w)
    return (h, w) if scale == 1.0 else (max(1, round(h * scale)), max(1, round(w * scale)))


@dataclass
class TranslateReport:
    written: int
    skipped: list[str]
    out: Path
    grid: Path | None


def translate_files(tr: Translator, inputs: list[str], source: str, to: list[str], out: Path, batch_size: int = 8,
                    grid: Path | None = None, overwrite: bool = False, progress: bool = True,
                    load_size: int | None = None, max_side: int | None = DEFAULT_MAX_SIDE) -> TranslateReport:
    """Translate files; each is translated at working_size(load_size, max_side) (load_size None:
    the input's own size) and its outputs are resized back to the input's own size."""
    targets = tr.targets(source, to)
    files = expand_inputs(inputs)
    out = Path(out)
    _refuse_overwriting_inputs(files, out, targets, overwrite)
    job = _Job(tr, source, targets, out, grid is not None)
    with Progress(len(files), f"{source} -> {','.join(targets)}", unit="img", disable=not progress) as bar:
        for batch in _same_size_batches(files, batch_size, job.skipped, _sizer(load_size, max_side)):
            job.translate(batch)
            bar.update(len(batch))
    if job.capped and progress:
        print(f"note: {job.capped} input(s) over --max-side {max_side} were translated at that size and resized back "
              "(--max-side 0 translates at any size)", file=sys.stderr)
    if job.written == 0:
        if job.failed:
            raise UserError(f"could not translate any input ({job.failed[0]})")
        raise UserError(f"no readable images among the inputs ({len(job.skipped)} skipped)")
    if grid is not None:
        from ..data.grid import save_grid

        size = max(max(r[0].shape[-2:]) for r in job.grid_rows)
        save_grid([[_fit(img, size) for img in row] for row in job.grid_rows], Path(grid))
    return TranslateReport(job.written, job.skipped + [f.split(": ", 1)[0] for f in job.failed], out, Path(grid) if grid else None)


def _sizer(load_size: int | None, max_side: int | None) -> Callable[[int, int], tuple[tuple[int, int], bool]]:
    def size_for(h: int, w: int) -> tuple[tuple[int, int], bool]:
        work = working_size(h, w, load_size, max_side)
        return work, work != working_size(h, w, load_size)
    return size_for


class _Job:
    """What translating a list of files writes and collects, batch by batch."""

    def __init__(self, tr: Translator, source: str, targets: list[str], out: Path, grid: bool):
        self.tr, self.source, self.targets, self.out, self.grid = tr, source, targets, out, grid
        self.skipped: list[str] = []
        self.failed: list[str] = []
        self.grid_rows: list[list[torch.Tensor]] = []
        self.written = self.capped = 0

    def translate(self, batch: list[_Input]) -> None:
        self.capped += sum(1 for item in batch if item.capped)
        x = torch.stack([to_model_range(item.image) for item in batch]).to(self.tr.device)
        try:
            outputs = self.tr.batch(x, self.source, self.targets)
        except (RuntimeError, ValueError) as exc:  # e.g. out of memory: skip these, go on
            reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
            for item in batch:
                print(f"warning: skipping {item.path}: could not translate it ({reason})", file=sys.stderr)
                self.failed.append(f"{item.path}: {reason}")
            return
        for t in self.targets:
            folder = self.out / t if len(self.targets) > 1 else self.out
            for item, y in zip(batch, outputs[t]):
                y = to_uint8(y).cpu()
                if tuple(y.shape[-2:]) != item.size:  # translated at another scale: back to the input's size
                    y = resize(y, item.size)
                _save(y, folder / item.rel)
        self.written += len(batch)
        if self.grid and len(self.grid_rows) < 8:
            for i, item in enumerate(batch[: 8 - len(self.grid_rows)]):
                self.grid_rows.append([to_model_range(item.image)] + [outputs[t][i].cpu() for t in self.targets])


def _fit(img: torch.Tensor, size: int) -> torch.Tensor:
    """Letterbox into a size x size square so differently sized inputs share one grid."""
    h, w = img.shape[-2:]
    scale = size / max(h, w)
    img = TF.resize(img, [max(1, round(h * scale)), max(1, round(w * scale))], antialias=True)
    h, w = img.shape[-2:]
    return F.pad(img, ((size - w) // 2, size - w - (size - w) // 2, (size - h) // 2, size - h - (size - h) // 2), value=1.0)


def expand_inputs(inputs: list[str]) -> list[tuple[Path, Path]]:
    """Files, folders (recursively) and globs -> [(file, output name relative to --out)]."""
    found: list[tuple[Path, Path]] = []
    for item in inputs:
        path = Path(item).expanduser()
        if path.is_dir():
            found += [(f, f.relative_to(path)) for f in list_images(path)]
        elif path.is_file():
            if path.suffix.lower() not in IMAGE_EXTENSIONS:
                raise UserError(f"not an image file: {item} (supported: {', '.join(sorted(IMAGE_EXTENSIONS))})")
            found.append((path, Path(path.name)))
        else:
            matches = sorted(Path(m) for m in glob.glob(str(path), recursive=True))
            if not matches:
                raise UserError(f"input not found: {item}")
            found += [(m, Path(m.name)) for m in matches if m.is_file() and m.suffix.lower() in IMAGE_EXTENSIONS]
    if not found:
        raise UserError("no image files among the inputs")
    seen: dict[Path, int] = {}
    unique = []
    for f, rel in found:  # two inputs with one name (from different folders) must not overwrite each other
        if rel in seen:
            seen[rel] += 1
            rel = rel.with_name(f"{rel.stem}_{seen[rel]}{rel.suffix}")
        else:
            seen[rel] = 0
        unique.append((f, rel))
    return unique


def _refuse_overwriting_inputs(files: list[tuple[Path, Path]], out: Path, targets: list[str], overwrite: bool) -> None:
    if overwrite:
        return
    out_resolved = out.resolve()
    inputs = {f.resolve() for f, _ in files}
    folders = [out_resolved / t for t in targets] if len(targets) > 1 else [out_resolved]
    for f, rel in files:
        if f.resolve().parent == out_resolved or any((folder / rel).resolve() in inputs for folder in folders):
            raise UserError(f"output folder {out} would overwrite or mix with the inputs; choose another --out (or pass --overwrite)")


@dataclass
class _Input:
    path: Path
    rel: Path  # output name relative to --out
    image: torch.Tensor  # uint8 (3, h, w) at the working size
    size: tuple[int, int]  # the input's own (h, w): outputs are saved at this size
    capped: bool = False  # the working size was scaled down to --max-side


def _same_size_batches(files: list[tuple[Path, Path]], batch_size: int, skipped: list[str],
                       size_for: Callable[[int, int], tuple[tuple[int, int], bool]]) -> Iterator[list[_Input]]:
    """Stream decoded images, resized to size_for(h, w) (the working size, and whether --max-side
    capped it), in batches of equal size (never holding more than one batch, and at most
    BATCH_PIXELS pixels in one)."""
    batch: list[_Input] = []
    for path, rel in files:
        try:
            img = load_image(path)
        except BadImage as exc:
            print(f"warning: skipping unreadable image {exc}", file=sys.stderr)
            skipped.append(str(path))
            continue
        h, w = img.shape[-2:]
        work, capped = size_for(h, w)
        if work != (h, w):
            img = resize(img, work)
        room = max(1, min(batch_size, BATCH_PIXELS // (work[0] * work[1])))
        if batch and (img.shape != batch[0].image.shape or len(batch) >= room):
            yield batch
            batch = []
        batch.append(_Input(path, rel, img, (h, w), capped))
    if batch:
        yield batch


def _save(img: torch.Tensor, path: Path) -> None:
    pil = TF.to_pil_image(img)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.suffix.lower() in (".jpg", ".jpeg"):
            pil.save(path, quality=95)
        else:
            pil.save(path)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot write {path}: {exc}") from None
