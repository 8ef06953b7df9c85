"""Does an imported official-ComboGAN model grow? Train 3 seasons with the official ComboGAN
networks (PReLU, 4x4 transposed convolutions, its two-view critic of depth 4), write them out in
the official code's file layout (<epoch>_net_G<i>.pth, <epoch>_net_D<i>.pth), `combogan import
combogan` them, add the 4th season and score the pairs with it against ground truth and
histogram matching. One JSON line. --critics fresh trains the 3 seasons with PatchGAN critics and
writes no D files (the import then creates fresh PatchGAN critics).

    python tools/bench_import.py --iters 900 [--critics official|fresh]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch
from combogan.domains.alps_seasons import synthesize

from combogan.apps import importing
from combogan.apps.evaluate import evaluate
from combogan.apps.train import add_domains, train
from combogan.config import load
from combogan.runs import checkpoint

SEASONS = ["spring", "summer", "autumn"]


def write_official(run: Path, out: Path, epoch: str = "1", critics: bool = True) -> None:
    """The run's encoders and decoders as the official code saves them (G<i>, then G<N+i>), and its
    critics (D<i>, whose keys are the official ones already)."""
    model, _ = checkpoint.load_model(run)
    out.mkdir(parents=True, exist_ok=True)
    official = lambda m: {k.replace("net.", "model.", 1).replace(".block.", ".conv_block."): v for k, v in m.state_dict().items()}  # noqa: E731
    for i, name in enumerate(SEASONS):
        torch.save(official(model.encoders[name]), out / f"{epoch}_net_G{i}.pth")
        torch.save(official(model.decoders[name]), out / f"{epoch}_net_G{len(SEASONS) + i}.pth")
        if critics:
            torch.save(model.discriminators[name].state_dict(), out / f"{epoch}_net_D{i}.pth")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--iters", type=int, default=900, help="iterations of the 3-season run; add-domain gets 2/3 of them")
    p.add_argument("--config", default="configs/demo.yaml")
    p.add_argument("--device", default="auto")
    p.add_argument("--workdir")
    p.add_argument("--critics", choices=["official", "fresh"], default="official")
    args = p.parse_args()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="cg-import-"))
    full = work / "all4"
    if not full.exists():
        synthesize(full, size=72, train=150, test=12)
    three = work / "three"
    three.mkdir(exist_ok=True)
    (three / "domains.yaml").write_text("exclude: [winter]\n")
    for split in ("train", "test"):
        (three / split).mkdir(exist_ok=True)
        for season in (full / split).iterdir():
            if not (three / split / season.name).exists():
                (three / split / season.name).symlink_to(season.resolve(), target_is_directory=True)
    batch = load(args.config).data.batch_size
    epochs = lambda iters: f"train.epochs={max(1, round(iters * batch / 150))}"  # noqa: E731
    arch = ["model.activation=prelu", "model.upsample=transpose4"]
    if args.critics == "official":
        arch += ["model.discriminator=two_view", "model.n_layers_d=4"]
    t = time.perf_counter()
    train(three, load(args.config, [*arch, epochs(args.iters)]), run=work / "trained", device=args.device, max_iters=args.iters, quiet=True)
    write_official(work / "trained", work / "official", critics=args.critics == "official")
    importing.write_run(importing.combogan_dir(work / "official", SEASONS, "1"), work / "imported")
    add_iters = 2 * args.iters // 3
    add_domains(work / "imported", {"winter": full / "train" / "winter"}, existing_data=full, device=args.device, quiet=True,
                overrides=[epochs(add_iters)], max_iters=add_iters)
    wall = time.perf_counter() - t
    report = evaluate(work / "imported", full, device=args.device, progress=False)
    rows = [r for r in report["pairs"] if "winter" in (r["source"], r["target"]) and r["paired"]]
    mean = lambda which: round(sum(r[which]["l1"] for r in rows) / len(rows), 4)  # noqa: E731
    print(json.dumps({"critics": args.critics, "base_iters": args.iters, "add_iters": add_iters, "pairs_with_winter": len(rows),
                      "l1": {"model": mean("model"), "histogram": mean("histogram"), "identity": mean("identity")},
                      "every_pair_beats_histogram": all(r["model"]["l1"] < r["histogram"]["l1"] for r in rows),
                      "wall_s": round(wall, 1), "workdir": str(work)}))


if __name__ == "__main__":
    main()
