"""Find the domains in a dataset folder, whatever tool it was laid out for.

Precedence (first match wins):
  1. ComboGAN official: DIR/train0..trainK (+ test0..), numeric order; names from DIR/domains.txt,
     else a known recipe's names (alps_seasons), else domain0..K.
  2. CycleGAN: DIR/trainA, DIR/trainB (+ testA, testB); names A and B.
  3. Split first: DIR/train/<domain>/ (+ DIR/test/<domain>/, DIR/val/<domain>/).
  4. Domain first: DIR/<domain>/train/ (+ test/, val/).
  5. Flat: DIR/<domain>/ with images (all used for training).
DIR/domains.yaml then renames ({names: {folder: name}}) and excludes ({exclude: [folder]}).
Images may be nested; hidden files and non-image files are ignored.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from ..errors import UserError

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".gif"}  # GIF: its first frame
SPLITS = ("train", "test", "val")


@dataclass
class DomainFiles:
    name: str
    folder: str  # the folder name it came from (before renaming)
    splits: dict[str, list[Path]] = field(default_factory=dict)

    def files(self, split: str = "train") -> list[Path]:
        return self.splits.get(split, [])


@dataclass
class Layout:
    root: Path
    kind: str
    domains: dict[str, DomainFiles]

    @property
    def names(self) -> list[str]:
        return list(self.domains)

    def counts(self) -> dict[str, dict[str, int]]:
        return {n: {s: len(f) for s, f in d.splits.items()} for n, d in self.domains.items()}


def _visible(path: Path, root: Path) -> bool:
    return not any(part.startswith(".") for part in path.relative_to(root).parts)


def list_images(folder: Path) -> list[Path]:
    """Image files under folder (recursively), sorted, hidden ones skipped."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file() and _visible(p, folder))


def _subdirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def _recipe_names(root: Path) -> list[str] | None:
    from ..domains import recipe_domain_names

    return recipe_domain_names(root.name)


def _combogan(root: Path, dirs: dict[str, Path]) -> Layout | None:
    pattern = re.compile(r"(train|test|val)(\d+)")
    found = {(m.group(1), int(m.group(2))): p for n, p in dirs.items() if (m := pattern.fullmatch(n))}
    if not any(split == "train" for split, _ in found):
        return None
    indices = sorted({i for _, i in found})  # numeric: train10 comes after train9
    names_file = root / "domains.txt"
    if names_file.is_file():
        names = [line.strip() for line in names_file.read_text().splitlines() if line.strip()]
        if len(names) <= indices[-1]:
            raise UserError(f"{names_file} names {len(names)} domains but the folder has train0..train{indices[-1]}")
    else:
        names = _recipe_names(root) or []
        if len(names) <= indices[-1]:
            names = [f"domain{i}" for i in range(indices[-1] + 1)]
    domains: dict[str, DomainFiles] = {}
    for i in indices:
        d = domains.setdefault(names[i], DomainFiles(names[i], f"train{i}"))
        for split in SPLITS:
            if (split, i) in found:
                d.splits[split] = list_images(found[(split, i)])
    return Layout(root, "combogan (train0..trainK)", domains)


def _cyclegan(root: Path, dirs: dict[str, Path]) -> Layout | None:
    letters = sorted({m.group(1) for n in dirs if (m := re.fullmatch(r"train([A-Z])", n))})
    if not letters:
        return None
    domains = {}
    for letter in letters:
        d = DomainFiles(letter, f"train{letter}")
        for split in SPLITS:
            if f"{split}{letter}" in dirs:
                d.splits[split] = list_images(dirs[f"{split}{letter}"])
        domains[letter] = d
    return Layout(root, "cyclegan (trainA/trainB)", domains)


def _split_first(root: Path, dirs: dict[str, Path]) -> Layout | None:
    if "train" not in dirs or not _subdirs(dirs["train"]):
        return None
    domains: dict[str, DomainFiles] = {}
    for split in SPLITS:
        if split in dirs:
            for sub in _subdirs(dirs[split]):
                domains.setdefault(sub.name, DomainFiles(sub.name, sub.name)).splits[split] = list_images(sub)
    return Layout(root, "split/domain (train/<domain>/)", domains)


def _domain_first(root: Path, dirs: dict[str, Path]) -> Layout | None:
    candidates = [p for p in dirs.values() if (p / "train").is_dir()]
    if not candidates:
        return None
    domains = {}
    for p in dirs.values():
        d = DomainFiles(p.name, p.name)
        for split in SPLITS:
            if (p / split).is_dir():
                d.splits[split] = list_images(p / split)
        if not d.splits:  # a stray folder beside the domains: treat its images as train
            d.splits["train"] = list_images(p)
        domains[p.name] = d
    return Layout(root, "domain/split (<domain>/train/)", domains)


def _flat(root: Path, dirs: dict[str, Path]) -> Layout:
    return Layout(root, "flat (<domain>/)", {n: DomainFiles(n, n, {"train": list_images(p)}) for n, p in dirs.items()})


def _apply_mapping(layout: Layout) -> Layout:
    path = layout.root / "domains.yaml"
    if not path.is_file():
        return layout
    try:
        spec = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError:
        raise UserError(f"{path} is not valid YAML") from None
    if not isinstance(spec, dict) or not set(spec) <= {"names", "exclude"}:
        raise UserError(f"{path} must be a mapping with 'names: {{folder: name}}' and/or 'exclude: [folder]'")
    names, exclude = spec.get("names") or {}, set(spec.get("exclude") or [])
    out: dict[str, DomainFiles] = {}
    for d in layout.domains.values():
        if d.folder in exclude or d.name in exclude:
            continue
        new = str(names.get(d.folder, names.get(d.name, d.name)))
        if new in out:
            raise UserError(f"{path}: two folders map to the domain name '{new}'")
        out[new] = DomainFiles(new, d.folder, d.splits)
    return Layout(layout.root, layout.kind + " + domains.yaml", out)


def dataset_marker(folder: Path) -> str | None:
    """What makes `folder` look like a whole dataset rather than one domain: official train0 /
    trainA folders, or train/ holding only subfolders (train/<domain>/). None if nothing does."""
    dirs = [p.name for p in _subdirs(folder)]
    marked = sorted(n for n in dirs if re.fullmatch(r"(train|test)(\d+|[A-Z])", n))
    if marked:
        return ", ".join(marked[:3]) + (", …" if len(marked) > 3 else "")
    train = folder / "train"
    if train.is_dir() and _subdirs(train) and not any(p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS for p in train.iterdir()):
        return "train/<domain>/"
    return None


def discover(root: str | Path, flag: str = "--domains") -> Layout:
    """Detect the layout of `root` and list each domain's image files per split."""
    root = Path(root).expanduser()
    if not root.exists():
        raise UserError(f"domains folder not found: {root}")
    if not root.is_dir():
        raise UserError(f"--domains expects a folder, got a file: {root}")
    dirs = {p.name: p for p in _subdirs(root)}
    if not dirs:
        raise UserError(f"no domain folders in {root} (expected one subfolder per domain, e.g. {root}/summer/)")
    layout = _combogan(root, dirs) or _cyclegan(root, dirs) or _split_first(root, dirs)
    if layout is None:
        # e.g. `data fetch alps DIR` twice, or a folder holding several datasets: its subfolders
        # would each become one domain made of every image below it.
        for sub in dirs.values():
            marker = dataset_marker(sub)
            if marker:
                raise UserError(f"{root} looks like a folder of datasets ({sub.name}/ holds {marker}); did you mean {flag} {sub}?")
        layout = _domain_first(root, dirs) or _flat(root, dirs)
    return _apply_mapping(layout)


def require_trainable(layout: Layout, split: str = "train") -> None:
    """At least two domains, none empty: else the one-line error training would hit later."""
    empty = [n for n, d in layout.domains.items() if not d.files(split)]
    if empty:
        raise UserError(f"domain '{empty[0]}' has no {split} images in {layout.root} (layout: {layout.kind})")
    if len(layout.domains) < 2:
        found = ", ".join(layout.names) or "none"
        raise UserError(f"need at least two domains to train, found {len(layout.domains)} in {layout.root}: {found}")
