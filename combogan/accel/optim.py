"""The optimizers as a perf plan runs them: which Adam kernels, and moments laid out as their
parameters are. Neither changes what Adam computes."""

from __future__ import annotations

from collections.abc import Iterable

import torch


def use_fused_adam(opts: Iterable[torch.optim.Optimizer], fused: bool) -> None:
    """Fused Adam (one kernel per group; on CPU ~6x faster than foreach) or PyTorch's default.
    Set after optimizer state is loaded: loading restores the settings it was saved with."""
    for opt in opts:
        for group in opt.param_groups:
            group["fused"], group["foreach"] = (True, False) if fused else (None, None)


def match_layouts(opts: Iterable[torch.optim.Optimizer]) -> None:
    """Give every Adam moment its parameter's memory layout. Fused Adam assumes they share
    strides and silently computes wrong updates when they do not: after loading moments saved
    from a run in another memory format (perf.channels_last changed at a resume), or after the
    parameters changed format."""
    for opt in opts:
        for param, st in opt.state.items():
            for key, value in st.items():
                if isinstance(value, torch.Tensor) and value.shape == param.shape and value.stride() != param.stride():
                    st[key] = torch.empty_like(param, dtype=value.dtype).copy_(value)
