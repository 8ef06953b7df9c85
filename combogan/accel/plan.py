"""Turn the `perf` config section into concrete settings for one device, and apply them.

'auto' picks what docs/BENCHMARKS.md measured to be fastest at equal quality:
- CPU: overlap the two halves (when there are >= 2 intra-op threads), fused Adam, NCHW, no
  compile; bf16 autocast where the CPU has AMX tile units (1.5x faster there at the same
  quality), fp32 elsewhere (bf16 ran ~10x slower on an AVX2 CPU without bf16 units).
  channels_last was slower in eager; compiling never paid back on 2 cores.
- CUDA: cudnn.benchmark and fused Adam on; everything else (bf16, channels_last, compile,
  CUDA graphs) stays off until it has been measured on a GPU with this code (none was
  available when these defaults were set; docs/BENCHMARKS.md says how to measure).
Explicit on/off always wins, unless the setting cannot work here (then a UserError says why).
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass

import torch

from ..config import ModelConfig, PerfConfig
from ..errors import UserError
from ..model.combogan import ComboGAN
from ..training.state import TrainState
from . import optim


@dataclass(frozen=True)
class PerfPlan:
    overlap: bool
    compile: bool
    precision: str  # fp32 | bf16
    channels_last: bool
    fused_adam: bool
    cudnn_benchmark: bool
    cuda_graphs: bool = False

    @property
    def memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.channels_last else torch.contiguous_format

    def describe(self) -> str:
        return (f"overlap {'on' if self.overlap else 'off'}, compile {'on' if self.compile else 'off'}, {self.precision}, "
                f"{'channels_last' if self.channels_last else 'NCHW'}, {'fused' if self.fused_adam else 'default'} Adam"
                + (", CUDA graphs" if self.cuda_graphs else ""))


def _overlap_blocker(model: ModelConfig, device: torch.device) -> str | None:
    if device.type != "cpu":
        return "it runs the halves on CPU threads (not implemented for CUDA streams)"
    if model.norm != "instance":
        # BatchNorm updates running statistics in forward; two threads would race on them.
        return "model.norm=batch updates running statistics in forward, which the two halves would race on"
    if model.dropout > 0:
        # Dropout draws from the global RNG; the interleaving would make runs unrepeatable.
        return "model.dropout > 0 draws from the shared random generator, making runs unrepeatable"
    return None


def _compile_blocker(device: torch.device) -> str | None:
    if device.type == "cpu" and not shutil.which(os.environ.get("CXX", "g++")):
        return "torch.compile on CPU needs a C++ compiler (g++ or $CXX) on PATH"
    if device.type == "cuda":
        try:
            import triton  # noqa: F401
        except ImportError:
            return "torch.compile on CUDA needs triton (pip install triton)"
    return None


def _graphs_blocker(device: torch.device, distributed: bool, augmented: bool = False) -> str | None:
    if device.type != "cuda":
        return "CUDA graphs need a CUDA GPU"
    if distributed:
        return "the gradient all-reduce of torchrun runs is not captured; use one GPU per run"
    if augmented:
        return "train.diffaugment draws new transforms every step, which a captured graph would freeze; set train.diffaugment=''"
    return None


def cpu_has_amx() -> bool:
    """Whether this CPU has AMX tiles (Intel Sapphire Rapids and later), where oneDNN runs bf16
    convolutions natively. Without them (AVX2, or AVX-512 alone) bf16 is emulated or unmeasured."""
    probe = getattr(torch.cpu, "_is_amx_tile_supported", None)
    return bool(probe and probe())


def _auto_precision(device: torch.device) -> str:
    return "bf16" if device.type == "cpu" and cpu_has_amx() else "fp32"


def _choose(key: str, value: str, auto: bool, blocker: str | None) -> bool:
    if value == "off":
        return False
    if value == "on":
        if blocker:
            raise UserError(f"perf.{key}=on cannot be used here: {blocker}")
        return True
    return auto and blocker is None


def plan(perf: PerfConfig, model: ModelConfig, device: torch.device, distributed: bool = False, augmented: bool = False) -> PerfPlan:
    """Resolve every 'auto' for `device`; explicit settings that cannot work raise UserError.
    augmented: train.diffaugment is on."""
    cpu = device.type == "cpu"
    precision = perf.precision if perf.precision != "auto" else _auto_precision(device)
    if precision == "bf16" and device.type == "cuda" and not torch.cuda.is_bf16_supported():
        raise UserError("perf.precision=bf16 needs a GPU with bfloat16 support (Ampere or newer)")
    compile_ = _choose("compile", perf.compile, False, _compile_blocker(device))
    # torch.compile compiles lazily, on a network's first call, and is not thread-safe: the two
    # halves would compile the same encoders and decoders from two threads at once.
    overlap_blocker = _overlap_blocker(model, device) or (
        "perf.compile is on, and torch.compile is not thread-safe (the two halves would compile the same networks at once)"
        if compile_ else None)
    return PerfPlan(
        overlap=_choose("overlap", perf.overlap, cpu and torch.get_num_threads() >= 2, overlap_blocker),
        compile=compile_,
        precision=precision,
        channels_last=_choose("channels_last", perf.channels_last, False, None),
        fused_adam=_choose("fused_adam", perf.fused_adam, True, None),
        cudnn_benchmark=perf.cudnn_benchmark and device.type == "cuda",
        cuda_graphs=_choose("cuda_graphs", perf.cuda_graphs, False, _graphs_blocker(device, distributed, augmented)),
    )


def prepare(p: PerfPlan, model: ComboGAN, state: TrainState | None = None) -> None:
    """Set up the networks for `p` (memory format, compilation), the optimizers and global backends."""
    if p.cudnn_benchmark:
        torch.backends.cudnn.benchmark = True
    if p.channels_last:
        model.to(memory_format=torch.channels_last)
    if state is not None:
        optim.use_fused_adam(state.all_optimizers(), p.fused_adam)
        optim.match_layouts(state.all_optimizers())  # moments loaded from a checkpoint keep their saved layout
    if p.compile:
        if next(model.parameters()).device.type == "cpu":
            # Inductor would switch convs to channels_last on CPU; oneDNN's NHWC backward is slower
            # for these layers, and keeping NCHW measured ~15% faster (docs/BENCHMARKS.md).
            import torch._inductor.config as inductor_config

            inductor_config.layout_optimization = False
        for name in model.names:
            for net in model.parts(name).values():
                net.compile()  # in place: state_dict keys stay the same
