"""Translate throughput at 256 x 256 on this machine: PyTorch eager vs onnxruntime, same process,
interleaved windows, the paper architecture (ngf 64, 9 blocks) by default. One JSON line.

    python tools/bench_export.py --windows 5 --images 8
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from combogan.domains.alps_seasons import synthesize

from combogan.apps.export import export
from combogan.apps.train import train
from combogan.apps.translator import Translator
from combogan.config import load


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, default=256)
    p.add_argument("--images", type=int, default=8, help="images per window (batch 1 each)")
    p.add_argument("--windows", type=int, default=5)
    p.add_argument("--set", dest="overrides", action="append", default=[], help="config overrides (architecture)")
    args = p.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cg-export-"))
    synthesize(work / "data", size=64, train=4, test=1)
    cfg = load(None, ["data.load_size=64", "data.crop_size=64", "data.num_workers=0", *args.overrides])
    train(work / "data", cfg, run=work / "run", device="cpu", max_iters=0, quiet=True)  # weights do not change the timing
    export(work / "run", work / "onnx", announce=False)
    model = Translator(work / "run", device="cpu").model
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    enc = ort.InferenceSession(str(work / "onnx" / "summer.encoder.onnx"), options, providers=["CPUExecutionProvider"])
    dec = ort.InferenceSession(str(work / "onnx" / "winter.decoder.onnx"), options, providers=["CPUExecutionProvider"])
    x = torch.rand(1, 3, args.size, args.size) * 2 - 1
    runs = {"pytorch_eager": lambda: model.translate(x, "summer", "winter"),
            "onnxruntime": lambda: dec.run(None, {"latent": enc.run(None, {"image": x.numpy()})[0]})[0]}
    diff = float(np.abs(runs["onnxruntime"]() - runs["pytorch_eager"]().numpy()).max())
    times: dict[str, list[float]] = {k: [] for k in runs}
    for _ in range(args.windows):
        for name, fn in runs.items():
            t = time.perf_counter()
            for _ in range(args.images):
                fn()
            times[name].append((time.perf_counter() - t) / args.images)
    print(json.dumps({"size": args.size, "arch": {"ngf": cfg.model.ngf, "n_blocks": cfg.model.n_blocks}, "threads": torch.get_num_threads(),
                      "max_abs_diff": diff,
                      **{k: {"ms_per_image": round(statistics.median(v) * 1000, 1), "images_per_s": round(1 / statistics.median(v), 2)}
                         for k, v in times.items()}}))


if __name__ == "__main__":
    main()
