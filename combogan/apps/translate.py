"""`combogan translate`: files, folders and globs in, image files out.

Each input is encoded once by its domain's encoder and decoded by every target's decoder, at a
working size (--load-size, --max-side) and saved at its own size. Unreadable inputs are skipped
with one warning each; the rest go on.
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

from ..data.images import BadImage, load_image, to_model_range, to_uint8
from ..data.layouts import IMAGE_EXTENSIONS, list_images
from ..errors import UserError
from .translator import Translator

# By default a larger input (a 24-megapixel photo) is translated with its longer side at this size
# and the outputs resized back: at full size its activations alone would take tens of GB.
DEFAULT_MAX_SIDE = 2048
# Pixels of one translate batch: ngf=64 keeps ~64 floats per pixel per activation at full
# resolution, so this bounds a batch's activations to a few hundred MB whatever --batch-size says.
BATCH_PIXELS = 4 * 1024 * 1024


def working_size(h: int, w: int, load_size: int | None = None, max_side: int | None = None) -> tuple[int, int]:
    """The size an (h, w) input is translated at: shorter side at `load_size` (if given), then
    scaled down so the longer side is at most `max_side` (if given; 0 or None: no cap)."""
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
    """Translate files; each is translated at working_size(load_size, max_side) and its
    outputs are resized back to the input's own size."""
    targets = tr.targets(source, to)
    files = expand_inputs(inputs)
    out = Path(out)
    _refuse_overwriting_inputs(files, out, targets, overwrite)
    from tqdm import tqdm

    skipped: list[str] = []
    failed: list[str] = []
    capped = 0
    grid_rows: list[list[torch.Tensor]] = []
    written = 0
    bar = tqdm(total=len(files), desc=f"{source} -> {','.join(targets)}", unit="img", disable=not progress, file=sys.stderr)
    for batch in _same_size_batches(files, batch_size, skipped, lambda h, w: working_size(h, w, load_size, max_side)):
        capped += sum(1 for item in batch if max_side and max(item.size) > max_side and item.image.shape[-2:] != item.size)
        x = torch.stack([to_model_range(item.image) for item in batch]).to(tr.device)
        try:
            outputs = tr.batch(x, source, targets)
        except (RuntimeError, ValueError) as exc:  # e.g. out of memory: skip these, go on
            reason = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
            for item in batch:
                print(f"warning: skipping {item.path}: could not translate it ({reason})", file=sys.stderr)
                failed.append(f"{item.path}: {reason}")
            bar.update(len(batch))
            continue
        for t in targets:
            folder = out / t if len(targets) > 1 else out
            for item, y in zip(batch, outputs[t]):
                y = to_uint8(y).cpu()
                if tuple(y.shape[-2:]) != item.size:  # translated at another scale: back to the input's size
                    y = TF.resize(y, list(item.size), antialias=True)
                _save(y, folder / item.rel)
        written += len(batch)
        if grid is not None and len(grid_rows) < 8:
            for i, item in enumerate(batch[: 8 - len(grid_rows)]):
                grid_rows.append([to_model_range(item.image)] + [outputs[t][i].cpu() for t in targets])
        bar.update(len(batch))
    bar.close()
    if capped and progress:
        print(f"note: {capped} input(s) with a side over --max-side {max_side} were translated at that size and resized back "
              "(--max-side 0 translates at full size)", file=sys.stderr)
    if written == 0:
        if failed:
            raise UserError(f"could not translate any input ({failed[0]})")
        raise UserError(f"no readable images among the inputs ({len(skipped)} skipped)")
    skipped += [f.split(": ", 1)[0] for f in failed]
    if grid is not None:
        from ..data.grid import save_grid

        size = max(max(r[0].shape[-2:]) for r in grid_rows)
        save_grid([[_fit(img, size) for img in row] for row in grid_rows], Path(grid))
    return TranslateReport(written, skipped, out, Path(grid) if grid else None)


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


def _same_size_batches(files: list[tuple[Path, Path]], batch_size: int, skipped: list[str],
                       size_for: Callable[[int, int], tuple[int, int]]) -> Iterator[list[_Input]]:
    """Stream decoded images, resized to size_for(h, w), in batches of equal size (never holding
    more than one batch, and at most BATCH_PIXELS pixels in one)."""
    batch: list[_Input] = []
    for path, rel in files:
        try:
            img = load_image(path)
        except BadImage as exc:
            print(f"warning: skipping unreadable image {exc}", file=sys.stderr)
            skipped.append(str(path))
            continue
        h, w = img.shape[-2:]
        work = size_for(h, w)
        if work != (h, w):
            img = TF.resize(img, list(work), antialias=True)
        room = max(1, min(batch_size, BATCH_PIXELS // (work[0] * work[1])))
        if batch and (img.shape != batch[0].image.shape or len(batch) >= room):
            yield batch
            batch = []
        batch.append(_Input(path, rel, img, (h, w)))
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
