"""Download an official dataset zip: progress bar, resumable, size/checksum check, safe unzip.

After unzipping, a domains.txt naming the official train0..K folders is written (unless the
archive brought one), so `--domains` reads them by name.
"""

from __future__ import annotations

import hashlib
import shutil
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

from ..domains import recipe
from ..errors import UserError
from ..progress import Progress

CHUNK = 1 << 20


def _download(url: str, dest: Path, progress: bool, timeout: float = 30.0) -> None:
    part = dest.with_name(dest.name + ".part")
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # already complete
            part.rename(dest)
            return
        raise UserError(f"download failed: {url} answered HTTP {exc.code}") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise UserError(f"cannot reach {url} ({reason}); offline? `combogan data synth alps_seasons DIR` makes a synthetic stand-in") from None
    with response:
        resumed = response.status == 206
        if not resumed:
            have = 0  # the server ignored Range: start over
        length = response.headers.get("Content-Length")
        total = have + int(length) if length is not None else None
        mib = 2**20
        with open(part, "ab" if resumed else "wb") as f, Progress(total / mib if total else None, dest.name, unit="MiB", initial=have / mib,
                                                                  disable=not progress) as bar:
            while True:
                try:
                    chunk = response.read(CHUNK)
                except OSError as exc:
                    raise UserError(f"download interrupted ({exc}); run the same command again to resume") from None
                if not chunk:
                    break
                f.write(chunk)
                bar.update(len(chunk) / mib)
    size = part.stat().st_size
    if total is not None and size != total:
        raise UserError(f"download incomplete ({size} of {total} bytes); run the same command again to resume")
    part.rename(dest)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def safe_extract(archive: Path, out: Path) -> list[str]:
    """Unzip, refusing absolute paths, '..' components and links (zip-slip). Returns top-level names."""
    try:
        zf = zipfile.ZipFile(archive)
    except zipfile.BadZipFile:
        raise UserError(f"{archive} is not a valid zip file (delete it and fetch again)") from None
    with zf:
        for info in zf.infolist():
            name = PurePosixPath(info.filename.replace("\\", "/"))
            if name.is_absolute() or ".." in name.parts or (info.filename[1:2] == ":"):
                raise UserError(f"refusing to unzip {archive}: unsafe path '{info.filename}' (zip-slip)")
            if (info.external_attr >> 16) & 0o170000 == 0o120000:
                raise UserError(f"refusing to unzip {archive}: symbolic link '{info.filename}'")
        out.mkdir(parents=True, exist_ok=True)
        root = out.resolve()
        for info in zf.infolist():
            target = (out / info.filename).resolve()
            if root != target and root not in target.parents:  # belt and braces
                raise UserError(f"refusing to unzip {archive}: '{info.filename}' escapes {out}")
            zf.extract(info, out)
        return sorted({PurePosixPath(i.filename).parts[0] for i in zf.infolist() if i.filename.strip("/")})


def fetch(dataset: str, out: str | Path, url: str | None = None, sha256: str | None = None, progress: bool = True) -> Path:
    """Download and unpack `dataset` into `out` itself (an archive's single top folder is
    dropped), so `out` is the folder to pass to --domains. Returns `out`."""
    spec = recipe(dataset)
    url = url or spec["url"]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    archive = out / f"{dataset}.zip"
    if not archive.exists():
        _download(url, archive, progress)
    expected_sha = sha256 or spec.get("sha256")
    if expected_sha and _sha256(archive) != expected_sha:
        archive.rename(archive.with_suffix(".zip.bad"))
        raise UserError(f"checksum mismatch for {archive.name} (moved aside as .zip.bad); fetch again")
    if spec.get("size") and archive.stat().st_size != spec["size"]:
        raise UserError(f"{archive.name} has {archive.stat().st_size} bytes, expected {spec['size']}")
    staging = out / f".{dataset}.unzipping"
    shutil.rmtree(staging, ignore_errors=True)  # a previous extraction cut short
    tops = safe_extract(archive, staging)
    content = staging / tops[0] if len(tops) == 1 and (staging / tops[0]).is_dir() else staging
    clashes = [p.name for p in content.iterdir() if (out / p.name).exists()]
    if clashes:
        shutil.rmtree(staging, ignore_errors=True)
        raise UserError(f"{out} already holds {', '.join(sorted(clashes)[:3])}: fetch into an empty folder (the archive is kept for that)")
    for p in content.iterdir():
        p.rename(out / p.name)
    shutil.rmtree(staging, ignore_errors=True)
    names_file = out / "domains.txt"
    if not names_file.exists():
        names_file.write_text("\n".join(spec["domains"]) + "\n")
    archive.unlink()
    return out
