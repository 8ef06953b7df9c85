"""Quality benchmark on the synthetic seasons: synthesize -> train -> eval -> one JSON line.

    python tools/bench_quality.py --config configs/quality_bench.yaml --iters 2000
    python tools/bench_quality.py --config configs/quality_bench.yaml --seconds 600   # equal wall time

With --iters the schedule spans that many iterations; with --seconds it is fitted to the budget
as `combogan train --time` fits it (from the speed of the run's first iterations), so runs of
different cost are compared at equal wall time, as users pay. Either way the learning rate
decays to 0 at the end, as in a full run.

Prints the mean over all ordered pairs of paired L1 / PSNR / SSIM and the edge-energy ratio
(outputs' mean absolute image gradient over the truth's: 1 is as sharp as the truth) for the
model and for the identity and histogram-matching baselines, the pairs that beat histogram
matching, iterations reached and training wall time. The model's scores are with the weights
translation uses by default (`--weights auto`, which each domain used: "weights"); with a weight
average (train.ema), the same scores for the averages ("average_weights") and for the trained
weights as they are ("live_weights").
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from combogan.domains.alps_seasons import synthesize

from combogan.accel.plan import plan
from combogan.apps.evaluate import evaluate
from combogan.apps.train import train
from combogan.config import Config, load
from combogan.runs import checkpoint


def _cfg(args: argparse.Namespace, iters: int) -> Config:
    iters_per_epoch = -(-args.train // load(args.config, args.overrides).data.batch_size)
    # The schedule spans exactly `iters` (whole epochs): the lr decays to 0 at the end.
    epochs = max(1, round(iters / iters_per_epoch))
    return load(args.config, args.overrides + [f"train.epochs={epochs}", f"train.seed={args.seed}"])


def _wins(report: dict) -> int:
    return sum(p["model"]["l1"] < p["histogram"]["l1"] for p in report["pairs"] if p["paired"])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=72, help="synthetic image side")
    p.add_argument("--train", type=int, default=100, help="training images per season")
    p.add_argument("--test", type=int, default=12, help="ground-truth test scenes")
    budget = p.add_mutually_exclusive_group(required=True)
    budget.add_argument("--iters", type=int, help="train this many iterations")
    budget.add_argument("--seconds", type=float, help="train for this wall-clock budget (the schedule fitted as by train --time)")
    p.add_argument("--config", default="configs/quality_bench.yaml")
    p.add_argument("--seed", type=int, default=0, help="train.seed (initialisation, pairs, data order)")
    p.add_argument("--data-seed", type=int, default=0, help="seed of the synthetic dataset")
    p.add_argument("--set", dest="overrides", action="append", default=[], help="config override key=value")
    p.add_argument("--device", default="auto")
    p.add_argument("--flip-average", action="store_true", help="score flip-averaged translations (translate --flip-average)")
    p.add_argument("--workdir", help="keep data and runs here (default: a temp dir)")
    args = p.parse_args()

    work = Path(args.workdir or tempfile.mkdtemp(prefix="cg-quality-"))
    data = work / "data"
    if not data.exists():
        synthesize(data, size=args.size, train=args.train, test=args.test, seed=args.data_seed)
    # --seconds: the configured schedule (100 x N epochs), shortened to the budget.
    cfg = _cfg(args, args.iters) if args.iters else load(args.config, args.overrides + [f"train.seed={args.seed}"])
    t0 = time.perf_counter()
    run = work / f"run_seed{args.seed}"
    result = train(data, cfg, run=run, device=args.device, max_iters=args.iters, quiet=True, time_budget=args.seconds)
    wall = time.perf_counter() - t0
    report = evaluate(run, data, device=args.device, progress=False, out=work / "eval", flip_average=args.flip_average)
    m = report["mean"]
    index = checkpoint.latest(run)
    by_weights = _by_weights(args, run, data, work, report) if any(index.averaged(n) for n in index.domains) else {}
    device = torch.device(args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
    print(json.dumps({
        "iters": result.step, "wall_s": round(wall, 1), "schedule": result.total_iters, "budget_s": args.seconds,
        "device": str(device), "perf": plan(cfg.perf, cfg.model, device).describe(), "threads": torch.get_num_threads(),
        "size": args.size, "crop": cfg.data.crop_size, "config": args.config, "overrides": args.overrides, "seed": args.seed,
        "data_seed": args.data_seed, "flip_average": args.flip_average,
        **{metric: {k: round(m[k][metric], 4) for k in ("model", "identity", "histogram")} for metric in ("l1", "psnr", "ssim", "edges")},
        "cycle_l1": round(m["cycle_l1"], 4),
        "pairs_beating_histogram": _wins(report),
        "weights": report["weights"],
        "average_weights": by_weights.get("average"),
        "live_weights": by_weights.get("live"),
        "pairs": {f"{p['source']}->{p['target']}": round(p["model"]["l1"], 4) for p in report["pairs"] if p["paired"]},
        "workdir": str(work),
    }))


def _by_weights(args, run: Path, data: Path, work: Path, report: dict) -> dict[str, dict]:
    """The scores with every domain's weight average and with every domain's trained weights
    (what the average gains or costs); auto's report stands in for the one it equals."""
    out = {}
    for weights in ("average", "live"):
        same = all(w == weights for w in report["weights"].values())
        r = report if same else evaluate(run, data, device=args.device, progress=False, out=work / f"eval_{weights}",
                                         flip_average=args.flip_average, weights=weights)
        out[weights] = {metric: round(r["mean"]["model"][metric], 4) for metric in ("l1", "psnr", "ssim", "edges")}
        out[weights]["pairs_beating_histogram"] = _wins(r)
    return out


if __name__ == "__main__":
    main()
