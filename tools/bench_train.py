"""Time the real training step (combogan.accel.stepper.Stepper, the code path `train` uses).

    python tools/bench_train.py --config configs/demo.yaml                 # CPU: eager vs auto, side by side
    python tools/bench_train.py --crop 256 --domains 2 4 8 --batch 1 8 --variants eager auto bf16+compile
    python tools/bench_train.py --config configs/demo.yaml --data data/seasons   # with the real data path

A variant is 'eager' (plain fp32 NCHW, everything in `perf` off), 'auto' (the config's perf
section, whose 'auto' picks per device), or '+'-joined switches turned on over eager, or over
auto when it starts with 'auto+': overlap, compile, bf16, channels_last, fused (Adam), graphs
(CUDA graphs; the warm-up then lasts until every ordered pair has been captured).

Each variant gets its own identically initialised model; timed windows are interleaved
across variants (A B A B ...), so a slow patch of a shared machine hits all of them alike.
Prints one JSON line per setting and variant: ms/iter (median over windows) and the fastest
window, images/s (2 x batch images enter each step), speedup over the first variant, peak
memory, the memory of weights + gradients + Adam state (grows with N), the data-wait fraction
(with --data; synthetic tensors otherwise), model FLOPs per iteration
(torch.utils.flop_counter), the achieved TFLOP/s and the warm-up time (compilation).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import resource
import statistics
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from combogan.accel import plan as perf
from combogan.accel.graphs import step_state
from combogan.accel.stepper import Stepper
from combogan.config import Config, PerfConfig, load, policy
from combogan.data.layouts import discover
from combogan.data.loader import DomainImages, StepBatches, make_loader
from combogan.data.sampler import PairSampler
from combogan.errors import UserError
from combogan.model.combogan import ComboGAN
from combogan.training.state import TrainState
from combogan.training.step import Step

SWITCHES = {"overlap": {"overlap": "on"}, "compile": {"compile": "on"}, "bf16": {"precision": "bf16"},
            "channels_last": {"channels_last": "on"}, "fused": {"fused_adam": "on"}, "graphs": {"cuda_graphs": "on"}}
EAGER = PerfConfig(overlap="off", compile="off", precision="fp32", channels_last="off", fused_adam="off", cuda_graphs="off")


def variant_perf(name: str, cfg: Config) -> PerfConfig:
    parts = name.split("+")
    base = {"eager": EAGER, "auto": cfg.perf}.get(parts[0])
    if base is not None:
        parts = parts[1:]
    fields: dict[str, str] = {}
    for switch in parts:
        if switch not in SWITCHES:
            raise SystemExit(f"error: unknown variant part '{switch}' (use eager, auto or {'+'.join(SWITCHES)})")
        fields.update(SWITCHES[switch])
    return dataclasses.replace(base or EAGER, **fields)


def variant_plan(name: str, cfg: Config, device: torch.device) -> perf.PerfPlan:
    """The variant's plan, refused where `train` refuses it (DiffAugment's fresh draws each step
    refuse CUDA graphs: time the defaults' graphed step with `--set train.diffaugment=`)."""
    return perf.plan(variant_perf(name, cfg), cfg.model, device, augmented=bool(policy(cfg.train.diffaugment)))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class SyntheticBatches:
    """Random tensors already on the device: measures the step alone."""

    def __init__(self, names: list[str], batch: int, crop: int, device: torch.device, fmt: torch.memory_format):
        self.data = {n: (torch.rand(batch, 3, crop, crop, device=device) * 2 - 1).contiguous(memory_format=fmt) for n in names}

    def get(self, pair: tuple[str, str]) -> tuple[torch.Tensor, torch.Tensor, float]:
        return self.data[pair[0]], self.data[pair[1]], 0.0


class LoaderBatches:
    """The training data path (decode, crop, flip, workers, pinned copies), endlessly."""

    def __init__(self, root: Path, cfg: Config, pairs: PairSampler, names: list[str], device: torch.device, fmt: torch.memory_format):
        layout = discover(root)
        files = [layout.domains[n].files("train") for n in layout.names]
        if len(layout.names) < len(names):
            raise SystemExit(f"error: {root} has {len(layout.names)} domains, fewer than --domains {len(names)}")
        files = files[: len(names)]
        dataset = DomainImages(files, cfg.data.load_size, cfg.data.crop_size, cfg.data.flip, cfg.data.cache, cfg.data.resize)
        batches = StepBatches(pairs, names, [len(f) for f in files], cfg.data.batch_size, 0, 10**9, cfg.train.seed)
        self.it = iter(make_loader(dataset, batches, cfg.data.num_workers, device))
        self.b, self.device, self.fmt = cfg.data.batch_size, device, fmt

    def get(self, pair: tuple[str, str]) -> tuple[torch.Tensor, torch.Tensor, float]:
        t = time.perf_counter()
        batch, _ = next(self.it)
        batch = batch.to(self.device, non_blocking=True, memory_format=self.fmt)
        return batch[: self.b], batch[self.b :], time.perf_counter() - t


class Variant:
    def __init__(self, name: str, cfg: Config, names: list[str], batch: int, crop: int, device: torch.device, data: Path | None):
        self.name = name
        self.plan = variant_plan(name, cfg, device)
        self.model, self.state = make_model(cfg, names, device)
        self.stepper = Stepper(self.plan, self.model, self.state, cfg.loss)
        self.pairs = PairSampler(names, seed=0)
        fmt = self.plan.memory_format
        self.batches = LoaderBatches(data, cfg, self.pairs, names, device, fmt) if data else SyntheticBatches(names, batch, crop, device, fmt)
        self.step, self.times, self.waits, self.peak = 0, [], [], 0.0
        self.device, self.n_pairs = device, len(names) * (len(names) - 1)

    def run(self, iters: int) -> None:
        wait = 0.0
        for _ in range(iters):
            pair = self.pairs.pair(self.step)
            a, b, w = self.batches.get(pair)
            wait += w
            self.stepper(pair, a, b)
            self.step += 1
        self.waits.append(wait)

    def warm_up(self, iters: int) -> None:
        """`iters` steps, and with CUDA graphs as many more as it takes to capture every pair."""
        self.run(iters)
        graphed = self.stepper.graphed
        while graphed is not None and len(graphed.captured) < self.n_pairs:
            self.run(1)

    def timed(self, iters: int) -> None:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        _sync(self.device)
        t = time.perf_counter()
        self.run(iters)
        _sync(self.device)
        elapsed = time.perf_counter() - t
        self.times.append(elapsed / iters)
        self.waits[-1] /= elapsed
        if self.device.type == "cuda":
            self.peak = max(self.peak, torch.cuda.max_memory_allocated(self.device) / 2**20)


def make_model(cfg: Config, names: list[str], device: torch.device) -> tuple[ComboGAN, TrainState]:
    model = ComboGAN(cfg.model, names).to(device)
    state = TrainState(model, cfg.train)
    for n in names:
        state.add(n)
    return model, state


def state_mib(model: ComboGAN, state: TrainState) -> float:
    """Weights, gradients and Adam moments of every domain: the part that grows with N."""
    return sum(t.numel() * t.element_size() for t in step_state(model, state)) / 2**20


def count_flops(cfg: Config, names: list[str], batch: int, crop: int, device: torch.device) -> int:
    """FLOPs of one eager fp32 step (every variant does the same math; counting modes are
    thread-local, so an overlapped step would be under-counted)."""
    model, state = make_model(cfg, names[:2], device)
    x = torch.rand(batch, 3, crop, crop, device=device) * 2 - 1
    with FlopCounterMode(display=False) as counter:
        Step(model, state, cfg.loss)((names[0], names[1]), x, x.clone())
    return counter.get_total_flops()


def bench(cfg: Config, variants: list[str], n_domains: int, batch: int, device: torch.device, data: Path | None,
          warmup: int, windows: int, window_iters: int) -> list[dict]:
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, batch_size=batch))
    crop = cfg.data.crop_size
    names = [f"d{i}" for i in range(n_domains)]
    flops = count_flops(cfg, names, batch, crop, device)
    runs = [Variant(v, cfg, names, batch, crop, device, data) for v in variants]
    setup = {}
    for r in runs:
        t = time.perf_counter()
        r.warm_up(warmup)  # compiles, autotunes, captures graphs, fills pools and caches
        setup[r.name] = time.perf_counter() - t
    for _ in range(windows):
        for r in runs:
            r.timed(window_iters)
    base = statistics.median(runs[0].times)
    out = []
    for r in runs:
        sec = statistics.median(r.times)
        peak = r.peak if device.type == "cuda" else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        out.append({
            "variant": r.name, "perf": r.plan.describe(), "device": str(device), "crop": crop, "domains": n_domains, "batch": batch,
            "ngf": cfg.model.ngf, "n_blocks": cfg.model.n_blocks, "n_downsampling": cfg.model.n_downsampling, "output": cfg.model.output, "data": str(data) if data else "synthetic",
            "ms_per_iter": round(sec * 1000, 2), "ms_min": round(min(r.times) * 1000, 2), "images_per_s": round(2 * batch / sec, 1),
            f"speedup_vs_{runs[0].name}": round(base / sec, 3),
            "peak_mem_mib": round(peak, 1), "model_state_mib": round(state_mib(r.model, r.state), 2), "peak_mem_kind": "cuda_allocated" if device.type == "cuda" else "process_max_rss (all variants)",
            "data_wait_fraction": round(statistics.median(r.waits), 4), "warmup_s": round(setup[r.name], 1),
            "gflop_per_iter": round(flops / 1e9, 2), "achieved_tflops": round(flops / sec / 1e12, 3),
            "threads": torch.get_num_threads(), "windows": windows, "window_iters": window_iters,
        })
    for r in runs:
        r.stepper.close()
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", help="YAML config (architecture, perf); default: the defaults")
    p.add_argument("--set", dest="overrides", action="append", default=[])
    p.add_argument("--crop", type=int, help="crop size (default: the config's data.crop_size)")
    p.add_argument("--domains", type=int, nargs="+", default=[4])
    p.add_argument("--batch", type=int, nargs="+", help="default: the config's data.batch_size")
    p.add_argument("--device", default="auto")
    p.add_argument("--variants", nargs="+", default=["eager", "auto"], help="first one is the speedup baseline")
    p.add_argument("--data", type=Path, help="a domains folder: time the real data path too (else synthetic tensors)")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--windows", type=int, default=7)
    p.add_argument("--window-iters", type=int, default=4)
    args = p.parse_args()
    try:
        run(args)
    except UserError as e:
        raise SystemExit(f"error: {e}") from None


def run(args: argparse.Namespace) -> None:
    cfg = load(args.config, args.overrides)
    if args.crop:  # loaded again with the crop, so that the model's auto keys follow it
        cfg = load(args.config, [*args.overrides, f"data.crop_size={args.crop}", f"data.load_size={max(args.crop, cfg.data.load_size)}"])
    device = torch.device(args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
    for n in args.domains:
        for batch in args.batch or [cfg.data.batch_size]:
            for row in bench(cfg, args.variants, n, batch, device, args.data,
                             args.warmup, args.windows, args.window_iters):
                print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
