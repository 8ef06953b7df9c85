"""Crash anywhere: kill -9 `combogan train` and `combogan add-domain` at random moments (a share
of them while a checkpoint file is being written) and resume after each kill. One JSON line.

    python tools/soak_crash.py --kills 20

After every kill it checks that every complete checkpoint on disk loads in full (none
half-written), that the next resume starts exactly at the newest complete checkpoint's step,
and (add-domain) that the frozen domains' files are byte-identical. At the end: both runs reached
their last step, the grown run translates, and both hold the weights of an uninterrupted run
bit for bit (the perf plan is deterministic: perf.overlap=off).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from combogan.domains.alps_seasons import synthesize
from safetensors.torch import load_file

from combogan.runs import checkpoint, rundir

TINY = ["model.ngf=8", "model.ndf=8", "model.n_blocks=2", "data.load_size=36", "data.crop_size=32", "data.num_workers=0",
        "train.checkpoint_every=3", "train.sample_every=1000", "perf.overlap=off"]


def combogan(*args: str | Path, settings: bool = True) -> list[str]:
    sets = [a for s in TINY for a in ("--set", s)] if settings else []
    return [sys.executable, "-m", "combogan", *map(str, args), *sets, "--device", "cpu"]


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def newest_complete(run: Path) -> int | None:
    """Every complete checkpoint on disk loads in full; the newest one's step (None: none yet)."""
    newest = None
    for folder in checkpoint.list_checkpoints(run):
        if (folder / "index.json").exists():
            index = checkpoint.read_index(run, folder)  # every file it names exists...
            for name, files in index.domains.items():
                checkpoint.load_weights(index.file(run, name, "nets"))  # ... and loads
                if "ema" in files:
                    checkpoint.load_weights(index.file(run, name, "ema"))
                checkpoint.safe_load(index.file(run, name, "state"))
            checkpoint.safe_load(run / index.trainer)
            newest = index.step
    return newest


def run_and_kill(cmd: list[str], run: Path, rng: random.Random, during_write: bool) -> tuple[bool, list[str]]:
    """Start cmd and kill -9 it at a random moment of its training loop (or of its start-up, one
    time in ten), or as soon as a temporary file of a checkpoint exists; (killed, its stderr
    lines). Not killed: it finished first."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)
    reader.start()
    if rng.random() >= 0.1:  # the loop prints its perf plan when it starts
        while proc.poll() is None and not any(line.startswith("perf:") for line in lines):
            time.sleep(0.01)
    deadline = time.time() + (300 if during_write else rng.uniform(0.0, 3.0))
    while proc.poll() is None and time.time() < deadline:
        if during_write and any(run.rglob(".*.tmp")):
            break
        time.sleep(0.001 if during_write else 0.05)
    killed = proc.poll() is None
    if killed:
        proc.send_signal(signal.SIGKILL)
    proc.wait()
    reader.join(timeout=10)
    return killed, lines


def soak(fresh: list[str], resumed: list[str], started: Callable[[], bool], run: Path, last: int, kills: int, rng: random.Random,
         offset: int = 0, frozen: dict[Path, str] | None = None) -> dict:
    """Kill and resume until `kills` kills were made (or the run finished first), then finish it
    (`last`: its final global step)."""
    done = in_writes = resumes = 0
    while done < kills:
        expected = newest_complete(run) if started() else None
        during_write = rng.random() < 0.3
        killed, lines = run_and_kill(resumed if expected is not None else fresh, run, rng, during_write)
        if expected is not None and (not killed or any(line.startswith("perf:") for line in lines)):  # it got as far as saying
            start = re.search(r"from \S+ \(step (\d+)\)", "".join(lines))
            if start is None or int(start.group(1)) + offset != expected:
                raise SystemExit(f"error: resumed at {start and start.group(0)!r}, the newest complete checkpoint is step {expected}")
            resumes += 1
        if not killed:
            break  # the run finished before the kill
        done, in_writes = done + 1, in_writes + during_write
        newest_complete(run)
        unfinished = [f.name for f in checkpoint.list_checkpoints(run) if not (f / "index.json").exists()]
        if len(unfinished) > 1:  # the one a kill interrupted; a resume clears it away
            raise SystemExit(f"error: checkpoints left unfinished: {unfinished}")
        changed = [str(p) for p, want in (frozen or {}).items() if digest(p) != want]
        if changed:
            raise SystemExit(f"error: frozen files changed: {changed}")
    if newest_complete(run) != last:
        subprocess.run(resumed if started() else fresh, check=True, timeout=900, capture_output=True)
    return {"kills": done, "during_checkpoint_writes": in_writes, "checked_resumes": resumes, "final_step": newest_complete(run)}


def same_weights(a: Path, b: Path) -> bool:
    ia, ib = checkpoint.latest(a), checkpoint.latest(b)
    for name, files in ia.domains.items():
        for kind in [k for k in ("nets", "ema") if k in files]:
            ta, tb = load_file(str(ia.file(a, name, kind))), load_file(str(ib.file(b, name, kind)))
            if ta.keys() != tb.keys() or any(not ta[k].equal(tb[k]) for k in ta):
                return False
    return True


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--kills", type=int, default=20, help="kills per command")
    p.add_argument("--iters", type=int, default=400, help="train iterations (add-domain: as many more)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workdir")
    args = p.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="cg-crash-"))
    rng = random.Random(args.seed)
    data, old = work / "data", work / "old"  # winter joins the three other seasons later
    synthesize(data, size=40, train=10, test=2, workers=1)
    for split in ("train", "test"):
        for season in ("spring", "summer", "autumn"):
            shutil.copytree(data / split / season, old / split / season)
    t0 = time.perf_counter()

    train = combogan("train", "--domains", old, "--run", work / "run", "--max-iters", args.iters)
    report = {"train": soak(train, train + ["--resume"], lambda: (work / "run" / rundir.MANIFEST).exists(), work / "run", args.iters,
                            args.kills, rng)}
    subprocess.run(combogan("train", "--domains", old, "--run", work / "straight", "--max-iters", args.iters), check=True, timeout=900,
                   capture_output=True)
    report["train"]["equals_uninterrupted"] = same_weights(work / "run", work / "straight")

    for copy in ("grown", "grown_straight"):
        shutil.copytree(work / "straight", work / copy)
    base = checkpoint.latest(work / "grown")
    frozen = {work / "grown" / f: digest(work / "grown" / f) for files in base.domains.values() for f in files.values()}
    add = ["add-domain", "--domain", f"winter={data / 'train' / 'winter'}", "--max-iters", args.iters]
    grown = combogan(*add[:1], "--run", work / "grown", *add[1:])
    adding = lambda: "adding" in rundir.read_manifest(work / "grown") or rundir.read_manifest(work / "grown")["step"] > base.step  # noqa: E731
    report["add_domain"] = soak(grown, grown + ["--resume"], adding, work / "grown", base.step + args.iters, args.kills, rng,
                                offset=base.step, frozen=frozen)
    subprocess.run(combogan(*add[:1], "--run", work / "grown_straight", *add[1:]), check=True, timeout=900, capture_output=True)
    report["add_domain"]["equals_uninterrupted"] = same_weights(work / "grown", work / "grown_straight")
    report["add_domain"]["frozen_files_unchanged"] = all(digest(p) == d for p, d in frozen.items())
    res = subprocess.run(combogan("translate", "--run", work / "grown", "--from", "winter", "--to", "all", data / "test" / "summer",
                                  "--out", work / "translated", settings=False), capture_output=True, text=True, timeout=300)
    report["grown_run_translates"] = res.returncode == 0 and len(list((work / "translated").rglob("*.png"))) == 3 * 2
    report.update(wall_s=round(time.perf_counter() - t0, 1), workdir=str(work))
    print(json.dumps(report))


if __name__ == "__main__":
    main()
