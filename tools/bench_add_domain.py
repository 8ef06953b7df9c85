"""Does add-domain work? Train on 3 seasons, add the 4th, and compare with a joint 4-season
model trained with the same per-domain budget. Prints one JSON line.

Budget: in a joint N-domain run each domain takes part in 2/N of the steps, so a joint run of
T iterations gives every domain T/2 updates. The 3-season run gets 3T/4 iterations (T/2 each),
and the added season T/2 iterations (it takes part in every add-domain step).

    python tools/bench_add_domain.py --iters 1200 --add winter
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from combogan.domains.alps_seasons import synthesize

from combogan.apps.evaluate import evaluate
from combogan.apps.train import add_domains, train
from combogan.config import load


def _pairs_with(report: dict, name: str) -> dict:
    rows = [p for p in report["pairs"] if name in (p["source"], p["target"]) and p["paired"]]
    mean = lambda which: sum(p[which]["l1"] for p in rows) / len(rows)  # noqa: E731
    return {"model": round(mean("model"), 4), "histogram": round(mean("histogram"), 4), "identity": round(mean("identity"), 4), "pairs": len(rows)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--iters", type=int, default=1200, help="joint run length T")
    p.add_argument("--add", default="winter")
    p.add_argument("--size", type=int, default=72)
    p.add_argument("--train", type=int, default=150)
    p.add_argument("--test", type=int, default=12)
    p.add_argument("--config", default="configs/demo.yaml")
    p.add_argument("--device", default="auto")
    p.add_argument("--workdir")
    args = p.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="cg-add-"))
    full = work / "all4"
    if not full.exists():
        synthesize(full, size=args.size, train=args.train, test=args.test)
    three = work / "three"
    three.mkdir(exist_ok=True)
    (three / "domains.yaml").write_text(f"exclude: [{args.add}]\n")
    for split in ("train", "test"):
        (three / split).mkdir(exist_ok=True)
        for season in (full / split).iterdir():
            link = three / split / season.name
            if not link.exists():
                link.symlink_to(season.resolve(), target_is_directory=True)

    batch = load(args.config).data.batch_size
    per_epoch = -(-args.train // batch)
    cfg = lambda iters: load(args.config, [f"train.epochs={max(1, round(iters / per_epoch))}"])  # noqa: E731
    t = time.perf_counter()
    train(full, cfg(args.iters), run=work / "joint", device=args.device, max_iters=args.iters, quiet=True)
    t_joint = time.perf_counter() - t
    t = time.perf_counter()
    base_iters, add_iters = 3 * args.iters // 4, args.iters // 2
    train(three, cfg(base_iters), run=work / "grown", device=args.device, max_iters=base_iters, quiet=True)
    add_domains(work / "grown", {args.add: full / "train" / args.add}, device=args.device, quiet=True,
                overrides=[f"train.epochs={max(1, round(add_iters / per_epoch))}"], max_iters=add_iters)
    t_grown = time.perf_counter() - t
    joint = evaluate(work / "joint", full, device=args.device, progress=False)
    grown = evaluate(work / "grown", full, device=args.device, progress=False)
    j, g = _pairs_with(joint, args.add), _pairs_with(grown, args.add)
    print(json.dumps({"added": args.add, "joint_iters": args.iters, "base_iters": base_iters, "add_iters": add_iters,
                      "l1_pairs_with_added": {"added_later": g, "joint": j},
                      "added_vs_joint_gap": round(g["model"] / j["model"] - 1, 4), "beats_histogram": g["model"] < g["histogram"],
                      "wall_s": {"joint": round(t_joint, 1), "three_plus_add": round(t_grown, 1)}, "workdir": str(work)}))


if __name__ == "__main__":
    main()
