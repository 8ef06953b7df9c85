"""Time the real training step (combogan.step.train_step, the code path `train` uses).

    python tools/bench_train.py --crop 256 --domains 4 --batch 1 8 --device cuda
    python tools/bench_train.py --config configs/demo.yaml --compare-eager    # CPU, side by side

Prints one JSON line per setting: ms/iter (median of timed windows), images/s (2 x batch
images enter each step), peak memory, model FLOPs per iteration (torch.utils.flop_counter) and
the achieved TFLOP/s. Inputs are synthetic tensors, so data loading is excluded (data-wait is
measured by `train` itself and logged to TensorBoard as perf/data_wait_fraction).
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from combogan.config import load
from combogan.registry import DomainRegistry
from combogan.sampler import PairSampler
from combogan.step import StepOptions, train_step


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench(cfg, n_domains: int, batch: int, crop: int, device: torch.device, options: StepOptions,
          channels_last: bool, warmup: int, windows: int, window_iters: int) -> dict:
    torch.manual_seed(0)
    reg = DomainRegistry(cfg.model, cfg.train, device)
    names = [f"d{i}" for i in range(n_domains)]
    for n in names:
        reg.add(n)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    if channels_last:
        reg.to(memory_format=torch.channels_last)
    data = {n: (torch.rand(batch, 3, crop, crop, device=device) * 2 - 1).contiguous(memory_format=fmt) for n in names}
    pairs = PairSampler(names, seed=0)
    step = 0

    def one():
        nonlocal step
        a, b = pairs.pair(step)
        out = train_step(reg, (a, b), data[a], data[b], cfg.loss, options)
        step += 1
        return out

    for _ in range(warmup):
        one()
    with FlopCounterMode(display=False) as counter:
        one()
    flops = counter.get_total_flops()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    times = []
    for _ in range(windows):
        _sync(device)
        t = time.perf_counter()
        for _ in range(window_iters):
            one()
        _sync(device)
        times.append((time.perf_counter() - t) / window_iters)
    ms = statistics.median(times) * 1000
    peak = (torch.cuda.max_memory_allocated(device) if device.type == "cuda" else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024) / 2**20
    return {"device": str(device), "crop": crop, "domains": n_domains, "batch": batch, "ngf": cfg.model.ngf, "n_blocks": cfg.model.n_blocks,
            "precision": str(options.autocast_dtype or "fp32").replace("torch.", ""), "channels_last": channels_last,
            "ms_per_iter": round(ms, 2), "images_per_s": round(2 * batch / (ms / 1000), 1),
            "peak_mem_mib": round(peak, 1), "peak_mem_kind": "cuda_allocated" if device.type == "cuda" else "process_max_rss",
            "gflop_per_iter": round(flops / 1e9, 2), "achieved_tflops": round(flops / (ms / 1000) / 1e12, 3),
            "threads": torch.get_num_threads()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", help="YAML config (architecture); default: paper settings")
    p.add_argument("--set", dest="overrides", action="append", default=[])
    p.add_argument("--crop", type=int, help="crop size (default: the config's data.crop_size)")
    p.add_argument("--domains", type=int, nargs="+", default=[4])
    p.add_argument("--batch", type=int, nargs="+", help="default: the config's data.batch_size")
    p.add_argument("--device", default="auto")
    p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    p.add_argument("--channels-last", action="store_true")
    p.add_argument("--compare-eager", action="store_true", help="also run plain fp32 NCHW eager, side by side")
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--windows", type=int, default=3)
    p.add_argument("--window-iters", type=int, default=5)
    args = p.parse_args()
    cfg = load(args.config, args.overrides)
    device = torch.device(args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
    crop = args.crop or cfg.data.crop_size
    dtype = torch.bfloat16 if args.precision == "bf16" else None
    variants = [(StepOptions(autocast_dtype=dtype), args.channels_last)]
    if args.compare_eager and (dtype is not None or args.channels_last):
        variants.append((StepOptions(), False))
    for n in args.domains:
        for batch in args.batch or [cfg.data.batch_size]:
            for options, cl in variants:
                print(json.dumps(bench(cfg, n, batch, crop, device, options, cl, args.warmup, args.windows, args.window_iters)), flush=True)


if __name__ == "__main__":
    main()
