"""Image-reader fuzz: mutated images through `translate`, `data check`, `train` and `serve`.

    python tools/fuzz_images.py --images 1000   # after make demo (or --run RUN)

Writes --images files made from valid images of many formats and modes (PNG, JPEG, GIF, WebP,
BMP, TIFF; gray, palette, RGBA, 16-bit, CMYK, 1-bit; animated; EXIF orientations 0-9 and out of
range) by mutating them: bit flips, truncations, wrong extensions, declared sizes in the
billions, corrupted chunk lengths, appended garbage, empty files. An independent reader (Pillow
alone, in a separate process with a time limit) says which files are readable. Then every
command must take the whole folder without a traceback or a hang: the readable files processed,
each unreadable one a warning (translate, train), a listed problem (data check) or a 4xx (serve).
One JSON line; a non-empty "disagreements" names the files where combogan and the oracle differ.
"""

from __future__ import annotations

import argparse
import http.client
import io
import json
import random
import re
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from pathlib import Path

import numpy as np
from PIL import Image

EXTENSIONS = {"PNG": ".png", "JPEG": ".jpg", "GIF": ".gif", "WEBP": ".webp", "BMP": ".bmp", "TIFF": ".tif"}


def seed_images(rng: random.Random) -> list[tuple[str, bytes]]:
    """Valid images: (extension, bytes) in many formats, modes, sizes and EXIF orientations."""
    out = []
    for i in range(40):
        w, h = rng.choice([(1, 1), (3, 200), (17, 9), (64, 48), (120, 90), (300, 200)])
        rgb = np.random.default_rng(i).integers(0, 256, (h, w, 3), dtype=np.uint8)
        img = Image.fromarray(rgb)
        fmt = rng.choice(list(EXTENSIONS))
        mode = rng.choice(["RGB", "L", "LA", "P", "RGBA", "1", "I;16", "CMYK"])
        try:
            variant = img.convert(mode) if mode not in ("I;16",) else Image.fromarray(rgb[..., 0].astype(np.uint16) * 257)
            buf = io.BytesIO()
            kwargs = {}
            if fmt in ("JPEG", "WEBP", "PNG", "TIFF") and rng.random() < 0.5:
                exif = Image.Exif()
                exif[0x0112] = rng.choice([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 65535])  # orientation, in range and not
                kwargs["exif"] = exif
            if fmt in ("GIF", "WEBP", "PNG") and rng.random() < 0.3:  # animated
                frames = [variant] + [Image.fromarray(np.roll(rgb, k, 1)).convert(variant.mode) for k in (5, 10)]
                frames[0].save(buf, format=fmt, save_all=True, append_images=frames[1:], **kwargs)
            else:
                variant.save(buf, format=fmt, **kwargs)
            out.append((EXTENSIONS[fmt], buf.getvalue()))
        except (OSError, ValueError, KeyError):
            continue  # that format can't hold that mode: a combination Pillow refuses to write
    return out


def huge_png_header(data: bytes, rng: random.Random) -> bytes:
    """Claim a width and height in the tens of thousands (billions of pixels) in a PNG's IHDR."""
    if not data.startswith(b"\x89PNG"):
        return data
    w, h = rng.choice([(100_000, 100_000), (65_535, 65_535), (2**31 - 1, 1), (30_000, 30_000)])
    ihdr = data[16:29]
    return data[:16] + struct.pack(">II", w, h) + ihdr[8:] + data[29:]  # the CRC no longer fits either


def mutate(data: bytes, ext: str, rng: random.Random) -> tuple[str, bytes, str]:
    """(extension, bytes, what was done)."""
    kind = rng.choice(["none", "bitflips", "bitflips", "truncate", "truncate", "extension", "huge", "length", "garbage", "empty",
                       "text"])
    b = bytearray(data)
    if kind == "bitflips" and b:
        for _ in range(rng.randint(1, 20)):
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
    elif kind == "truncate" and b:
        b = b[: rng.randrange(len(b))]
    elif kind == "extension":
        ext = rng.choice([e for e in EXTENSIONS.values() if e != ext])
    elif kind == "huge":
        b = bytearray(huge_png_header(bytes(b), rng))
    elif kind == "length" and len(b) > 40:
        pos = rng.randrange(8, min(len(b) - 4, 64))
        b[pos:pos + 4] = struct.pack(">I", rng.choice([0, 2**31 - 1, 2**32 - 1, rng.randrange(2**32)]))
    elif kind == "garbage":
        b += bytes(rng.randrange(256) for _ in range(rng.randint(1, 5000)))
    elif kind == "empty":
        b = bytearray()
    elif kind == "text":
        b = bytearray(b"this is not an image\n" * rng.randint(1, 50))
    return ext, bytes(b), kind


def oracle(path: str) -> bool:
    """Pillow alone: does the file decode to an RGB image (its first frame)?"""
    from PIL import ImageOps

    try:
        with Image.open(path) as img:
            if img.width * img.height > 300_000_000:
                return False
            ImageOps.exif_transpose(img).convert("RGB").load()
        return True
    except Exception:  # noqa: BLE001 - any failure means unreadable, whatever Pillow raises
        return False


def readable(files: list[Path], seconds: float) -> dict[str, bool]:
    """The oracle per file, each in a worker process with a time limit (a hang counts as unreadable)."""
    out = {}
    with ProcessPoolExecutor(2) as pool:
        futures = {f.name: pool.submit(oracle, str(f)) for f in files}
        for name, fut in futures.items():
            try:
                out[name] = fut.result(timeout=seconds)
            except FutureTimeout:
                out[name] = False
    return out


def run(cmd: list[str], timeout: float) -> tuple[int | str, str]:
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        return res.returncode, res.stderr
    except subprocess.TimeoutExpired:
        return "timeout", ""


def stage_translate(run_dir: str, fuzz: Path, out: Path, good: dict[str, bool], src: str, dst: str, timeout: float) -> dict:
    code, err = run([sys.executable, "-m", "combogan", "translate", "--run", run_dir, "--from", src, "--to", dst, str(fuzz),
                     "--out", str(out), "--device", "cpu", "-q"], timeout)
    warned = set(re.findall(r"warning: skipping (?:unreadable image )?\S*/([^/\s:]+)", err))
    done = {p.name for p in out.glob("*")}
    return {"exit": code, "traceback": "Traceback" in err, "translated": len(done), "warned": len(warned),
            "disagreements": sorted([n for n, ok in good.items() if ok != (n in done)] + [n for n in good if (n in done) == (n in warned)])}


def stage_check(root: Path, good: dict[str, bool], timeout: float) -> dict:
    code, err = run([sys.executable, "-m", "combogan", "data", "check", str(root), "-q"], timeout)
    from combogan.data.check import check

    report = check(root)
    corrupt = {Path(c.split(": ", 1)[0]).name for c in report.corrupt}
    return {"exit": code, "traceback": "Traceback" in err, "corrupt_listed": len(corrupt),
            "disagreements": sorted(n for n, ok in good.items() if ok == (n in corrupt))}


def stage_train(root: Path, run_dir: Path, good: dict[str, bool], timeout: float) -> dict:
    sets = ["model.ngf=8", "model.ndf=8", "model.n_blocks=2", "data.load_size=36", "data.crop_size=32", "data.cache=true",
            "data.num_workers=0", "train.sample_every=1000"]
    code, err = run([sys.executable, "-m", "combogan", "train", "--domains", str(root), "--run", str(run_dir), "--max-iters", "40",
                     "--device", "cpu", *[a for s in sets for a in ("--set", s)]], timeout)
    manifest = json.loads((run_dir / "manifest.json").read_text()) if (run_dir / "manifest.json").exists() else {}
    skipped = {Path(p).name for p in manifest.get("skipped_files", {}).get("fuzz", [])}
    return {"exit": code, "traceback": "Traceback" in err, "skipped_recorded": len(skipped),
            "skipped_but_readable": sorted(n for n in skipped if good.get(n))}


def stage_serve(run_dir: str, fuzz: Path, good: dict[str, bool], src: str, dst: str, timeout: float) -> dict:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "combogan", "serve", "--run", run_dir, "--port", str(port), "--device", "cpu", "-q"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    statuses, slowest = {}, 0.0
    try:
        for _ in range(600):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
        for f in sorted(fuzz.iterdir()):
            start = time.perf_counter()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
            try:
                conn.request("POST", f"/api/translate?from={src}&to={dst}", body=f.read_bytes())
                r = conn.getresponse()
                r.read()
                statuses[f.name] = r.status
            except OSError as exc:
                statuses[f.name] = f"connection error: {type(exc).__name__}"
            finally:
                conn.close()
            slowest = max(slowest, time.perf_counter() - start)
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    wrong = sorted(n for n, s in statuses.items() if s != (200 if good[n] else 400))
    return {"answers": {str(k): list(statuses.values()).count(k) for k in set(statuses.values())}, "traceback": "Traceback" in err,
            "slowest_request_s": round(slowest, 2), "disagreements": wrong}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", default="runs/demo", help="a trained run (default: the one `make demo` writes)")
    p.add_argument("--images", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=float, default=900, help="seconds each command may take over the whole folder")
    p.add_argument("--workdir")
    args = p.parse_args()
    rng = random.Random(args.seed)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="cg-fuzz-"))
    fuzz = work / "data" / "train" / "fuzz"
    fuzz.mkdir(parents=True, exist_ok=True)
    seeds, kinds = seed_images(rng), {}
    for i in range(args.images):
        ext, data = rng.choice(seeds)
        ext, data, kind = mutate(data, ext, rng)
        (fuzz / f"{i:04d}{ext}").write_bytes(data)
        kinds[kind] = kinds.get(kind, 0) + 1
    good = readable(sorted(fuzz.iterdir()), 30)
    from combogan.domains.alps_seasons import synthesize

    synthesize(work / "seasons", size=40, train=10, test=0, workers=1)
    shutil.copytree(work / "seasons" / "train" / "winter", work / "data" / "train" / "winter")
    from combogan.runs import rundir

    if not (Path(args.run) / rundir.MANIFEST).exists():
        sys.exit(f"error: no run at {args.run}: run `make demo` first, or pass --run")
    names = rundir.domain_names(rundir.read_manifest(Path(args.run)))
    src, dst = names[0], names[-1]
    report = {"images": args.images, "mutations": kinds, "readable": sum(good.values()), "workdir": str(work)}
    report["translate"] = stage_translate(args.run, fuzz, work / "out", good, src, dst, args.timeout)
    report["data_check"] = stage_check(work / "data", good, args.timeout)
    report["train"] = stage_train(work / "data", work / "run", good, args.timeout)
    report["serve"] = stage_serve(args.run, fuzz, good, src, dst, 60)
    print(json.dumps(report))


if __name__ == "__main__":
    main()
