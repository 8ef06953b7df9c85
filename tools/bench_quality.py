"""Quality benchmark on the synthetic seasons: synthesize -> train -> eval -> one JSON line.

    python tools/bench_quality.py --size 72 --iters 1000 --config configs/demo.yaml

Prints mean paired L1/PSNR over all 12 ordered pairs for the model and for the identity and
histogram-matching baselines, plus iterations, wall time and device.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from combogan.domains.alps_seasons import synthesize

from combogan.accel import plan as perf
from combogan.apps.evaluate import evaluate
from combogan.config import load
from combogan.training.loop import train


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=72, help="synthetic image side")
    p.add_argument("--train", type=int, default=150, help="training images per season")
    p.add_argument("--test", type=int, default=12, help="ground-truth test scenes")
    p.add_argument("--iters", type=int, default=1000)
    p.add_argument("--config", default="configs/demo.yaml")
    p.add_argument("--seed", type=int, default=0, help="train.seed (initialisation, pairs, data order)")
    p.add_argument("--data-seed", type=int, default=0, help="seed of the synthetic dataset")
    p.add_argument("--set", dest="overrides", action="append", default=[], help="config override key=value")
    p.add_argument("--device", default="auto")
    p.add_argument("--flip-average", action="store_true", help="score flip-averaged translations (translate --flip-average)")
    p.add_argument("--workdir", help="keep data and run here (default: a temp dir)")
    args = p.parse_args()

    work = Path(args.workdir or tempfile.mkdtemp(prefix="cg-quality-"))
    data = work / "data"
    if not data.exists():
        synthesize(data, size=args.size, train=args.train, test=args.test, seed=args.data_seed)
    # The schedule spans exactly --iters: the lr decays to 0 at the end, as in a full run.
    iters_per_epoch = -(-args.train // load(args.config, args.overrides).data.batch_size)
    cfg = load(args.config, args.overrides + [f"train.epochs={max(1, round(args.iters / iters_per_epoch))}", f"train.seed={args.seed}"])
    t0 = time.perf_counter()
    run = work / f"run_seed{args.seed}"
    result = train(data, cfg, run=run, device=args.device, max_iters=args.iters, quiet=True)
    wall = time.perf_counter() - t0
    report = evaluate(run, data, device=args.device, progress=False, out=work / "eval", flip_average=args.flip_average)
    m = report["mean"]
    print(json.dumps({
        "iters": result.step, "wall_s": round(wall, 1), "device": str(torch.device(args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))),
        "perf": perf.plan(cfg.perf, cfg.model, torch.device(args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))).describe(),
        "threads": torch.get_num_threads(), "size": args.size, "config": args.config, "overrides": args.overrides,
        "l1": {k: round(m[k]["l1"], 4) for k in ("model", "identity", "histogram")},
        "psnr": {k: round(m[k]["psnr"], 2) for k in ("model", "identity", "histogram")},
        "ssim": {k: round(m[k]["ssim"], 4) for k in ("model", "identity", "histogram")},
        "cycle_l1": round(m["cycle_l1"], 4), "seed": args.seed, "flip_average": args.flip_average,
        "pairs_beating_histogram": sum(p["model"]["l1"] < p["histogram"]["l1"] for p in report["pairs"] if p["paired"]),
        "pairs": {f"{p['source']}->{p['target']}": round(p["model"]["l1"], 4) for p in report["pairs"] if p["paired"]},
        "workdir": str(work),
    }))


if __name__ == "__main__":
    main()
