"""CUDA graphs for the training step: capture each ordered pair's step once, then replay it.

At batch 1 an eager step is launch-bound: thousands of small kernels, and the GPU idles while
Python queues them. A graph replays all of them with one call, but it needs fixed shapes and
fixed addresses, so for each (pair, batch shape) the step is cut into four graphs with host
decisions between them, exactly where the eager Step (combogan.training.step) makes them:

    copy the batch into the static inputs
    G graph       zero G grads; both generator halves forward+backward -> losses, fakes
    host          finite check (one sync): a bad step stops here, as in eager
    G-step graph  the two domains' generator Adams (capturable; lr read from a device tensor)
    host          each history pool picks from the new fakes (its own RNG, on the host);
                  the picks are copied into the static critic inputs
    D graph       zero D grads; both critics forward+backward
    host          finite check;  D-step graph

Pair sampling, pool choices and the lr schedule stay on the host, so a graphed run makes the
same decisions as an eager one: before each Adam graph replays, the lr the schedule set (a float,
as in any run) is copied into the device tensor that graph reads. Capturable Adam and the lr
tensors are swapped into the optimizers only while an update is captured, so the training state,
and every checkpoint of it, keeps plain settings. Gradients are allocated once and zeroed in place (a graph
writes to the addresses it saw at capture). All graphs share one memory pool: they never run
concurrently and none reads another's temporaries. The first step of each (pair, shape) runs
eagerly as the warm-up capture needs (cuDNN algorithm choice, optimizer state, compilation).
The pieces are the step's own (combogan.training.step.Step.generators / .critics and the
executor's update), run through an executor that zeroes gradients in place.

`EagerCapture` stands in for the GPU where there is none (the test suite): same plumbing,
with "capture" changing nothing and "replay" writing into the captured outputs.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Callable
from typing import Any

import torch
from torch.utils._pytree import tree_leaves

from ..model.combogan import ComboGAN
from ..training.state import TrainState
from ..training.step import Executor, Step

Replay = Callable[[], None]


class CudaCapture:
    """Real CUDA graphs, all in one private memory pool, captured on one side stream."""

    def __init__(self, device: torch.device):
        self.stream = torch.cuda.Stream(device)
        self.pool = torch.cuda.graph_pool_handle()

    def warmup(self, fn: Callable[[], Any]) -> Any:
        # torch.cuda.graphs: run eagerly on a side stream before capturing.
        self.stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(self.stream):
            out = fn()
        torch.cuda.current_stream().wait_stream(self.stream)
        return out

    def record(self, fn: Callable[[], Any]) -> tuple[Replay, Any]:
        graph = torch.cuda.CUDAGraph()
        # thread_local: the DataLoader's pin-memory thread may allocate while we capture.
        with torch.cuda.graph(graph, pool=self.pool, stream=self.stream, capture_error_mode="thread_local"):
            out = fn()
        return graph.replay, out


class EagerCapture:
    """CudaCapture's stand-in without a GPU, with the semantics the step relies on.

    record() runs fn once to learn its outputs and then restores every tensor of `state` (so,
    as with a real capture, nothing has happened yet); replay() runs fn again and copies the
    results into the tensors record() returned, as a graph writes into its static outputs.
    """

    def __init__(self, state: Callable[[], list[torch.Tensor]]):
        self.state = state  # every tensor a step may write: weights, grads, optimizer state

    def warmup(self, fn: Callable[[], Any]) -> Any:
        return fn()

    def record(self, fn: Callable[[], Any]) -> tuple[Replay, Any]:
        tensors = self.state()
        saved, rng = [t.detach().clone() for t in tensors], torch.get_rng_state()
        out = fn()
        with torch.no_grad():
            for t, s in zip(tensors, saved):
                t.copy_(s)
        torch.set_rng_state(rng)  # dropout's draws, too, are the replay's to make

        def replay() -> None:
            new = _tensors(fn())
            with torch.no_grad():
                for static, value in zip(_tensors(out), new):
                    static.copy_(value)

        return replay, out


def _tensors(tree: Any) -> list[torch.Tensor]:
    return [t for t in tree_leaves(tree) if isinstance(t, torch.Tensor)]


def step_state(model: ComboGAN, state: TrainState) -> list[torch.Tensor]:
    """Every tensor a training step may write (for EagerCapture): weights, BatchNorm statistics,
    gradients and optimizer state."""
    out: list[torch.Tensor] = list(model.buffers())
    for name in state.trainable:
        params = [p for part in model.parts(name).values() for p in part.parameters()]
        out += params + [p.grad for p in params if p.grad is not None]
    for opt in state.all_optimizers():
        out += [v for st in opt.state.values() for v in st.values() if isinstance(v, torch.Tensor)]
    return out


class InPlaceZeroing(Executor):
    """The given executor, but gradients are zeroed in place, never freed: a captured graph keeps
    writing to the addresses it saw, so a gradient tensor must never be replaced."""

    def __init__(self, base: Executor):
        self.base = base

    def both(self, first: Callable[[], Any], second: Callable[[], Any]) -> tuple[Any, Any]:
        return self.base.both(first, second)

    def autocast(self, device: torch.device) -> contextlib.AbstractContextManager:
        return self.base.autocast(device)

    def zero(self, opts: list[torch.optim.Optimizer]) -> None:
        for opt in opts:
            opt.zero_grad(set_to_none=False)

    def update(self, opts: list[torch.optim.Optimizer]) -> None:
        self.base.update(opts)

    def finite(self, loss: torch.Tensor) -> bool:
        return self.base.finite(loss)


class GraphedStep:
    """A Step with each (pair, batch shape) captured as graphs after one eager warm-up.

    Called like the Step: step(pair, real_a, real_b). The returned losses are the caller's own
    tensors (the static ones are overwritten by the next replay). Not for torchrun (the gradient
    all-reduce is not captured) or CPU threads.
    """

    def __init__(self, step: Step, capture: CudaCapture | EagerCapture | None = None):
        if getattr(step.executor, "dist", None) is not None or getattr(step.executor, "overlap", None) is not None:
            raise ValueError("graphed steps run on one device without CPU-thread overlap")
        self.model, self.state = step.model, step.state
        self.step = Step(step.model, step.state, step.loss, InPlaceZeroing(step.executor))
        self.device = next(self.model.parameters()).device
        if capture is None:  # without a GPU the stand-in runs the same plumbing (slower than eager)
            capture = CudaCapture(self.device) if self.device.type == "cuda" else EagerCapture(lambda: step_state(self.model, self.state))
        self.capture = capture
        self._graphs: dict[tuple, _PairGraphs] = {}
        self._warm: Counter = Counter()
        self._prepare_optimizers()

    def _prepare_optimizers(self) -> None:
        """A device tensor for each group's lr, and every gradient allocated now, so that no graph
        ever sees a gradient tensor replaced."""
        self._lr: dict[tuple[int, int], torch.Tensor] = {}
        for opt in self.state.all_optimizers():
            for i, group in enumerate(opt.param_groups):
                self._lr[id(opt), i] = torch.tensor(float(group["lr"]), dtype=torch.float32, device=group["params"][0].device)
                for p in group["params"]:
                    if p.grad is None:
                        p.grad = torch.zeros_like(p)
            # Uncaptured steps (the warm-ups) are expected here; PyTorch would warn on each.
            opt._warned_capturable_if_run_uncaptured = True

    def fill_lr(self, opts: list[torch.optim.Optimizer]) -> None:
        """Copy each group's scheduled lr into the tensor its captured update reads."""
        for opt in opts:
            for i, group in enumerate(opt.param_groups):
                self._lr[id(opt), i].fill_(float(group["lr"]))

    def update(self, opts: list[torch.optim.Optimizer]) -> Callable[[], None]:
        """The executor's update of `opts`, as it must run inside a capture: capturable Adam (on
        CUDA) reading lr from the device tensors, restored to plain settings afterwards."""
        cuda = self.device.type == "cuda"
        for opt in opts:  # capturable Adam keeps its step counts on the device: moved before any capture
            for st in opt.state.values():
                if isinstance(st.get("step"), torch.Tensor):
                    st["step"] = st["step"].to(self.device)

        def run() -> None:
            saved = [(group, group["lr"], group.get("capturable", False)) for opt in opts for group in opt.param_groups]
            for opt in opts:
                for i, group in enumerate(opt.param_groups):
                    group["lr"], group["capturable"] = self._lr[id(opt), i], cuda
            try:
                self.step.executor.update(opts)
            finally:
                for group, lr, capturable in saved:
                    group["lr"], group["capturable"] = lr, capturable
        return run

    @property
    def captured(self) -> list[tuple]:
        """The (pair, shape of A's batch, shape of B's batch) keys captured so far."""
        return list(self._graphs)

    def __call__(self, pair: tuple[str, str], real_a: torch.Tensor, real_b: torch.Tensor) -> dict[str, torch.Tensor]:
        key = (tuple(pair), tuple(real_a.shape), tuple(real_b.shape))
        graphs = self._graphs.get(key)
        if graphs is None:
            if not self._warm[key] or not self._has_state(pair):
                out = self.capture.warmup(lambda: self.step(pair, real_a, real_b))
                if "skipped" not in out:
                    self._warm[key] += 1
                return out
            graphs = self._graphs[key] = _PairGraphs(self, pair, real_a, real_b)
        return graphs.run(real_a, real_b)

    def _has_state(self, pair: tuple[str, str]) -> bool:
        # Adam creates its state on the first step; creating it inside a capture would bake the
        # initialisation into every replay.
        opts = self.state.optimizers(pair, "generator") + self.state.optimizers(pair, "critic")
        return all(p in opt.state for opt in opts for group in opt.param_groups for p in group["params"])



class _PairGraphs:
    """The four captured graphs of one ordered pair and batch shape, and their static tensors."""

    def __init__(self, graphed: GraphedStep, pair: tuple[str, str], real_a: torch.Tensor, real_b: torch.Tensor):
        a, b = pair
        step, capture = graphed.step, graphed.capture
        self.step, self.pools, self.fill_lr = step, step.state.pools, graphed.fill_lr
        self.real_a, self.real_b = torch.empty_like(real_a), torch.empty_like(real_b)
        self.real_a.copy_(real_a)
        self.real_b.copy_(real_b)
        self.g_opts, self.d_opts = step.state.optimizers(pair, "generator"), step.state.optimizers(pair, "critic")

        def g_pass():
            g = step.generators(pair, self.real_a, self.real_b)  # zeroes G's gradients in place first
            self.g_names = [*g.terms, "G_total"]  # recorded from the very trace that is captured
            return torch.stack([*g.terms.values(), g.total.detach()]), g.fake_b, g.fake_a

        self.g_replay, (self.g_values, fake_b, fake_a) = capture.record(g_pass)
        self.g_update, _ = capture.record(graphed.update(self.g_opts))
        # Each trainable critic: (name, its real batch, the static tensor its pool's pick is
        # copied into) and the fake its pool draws from; D_B (judging fake_b) first, as in eager.
        self.critics = [(d, real, torch.empty_like(real)) for d, real in ((b, self.real_b), (a, self.real_a)) if d not in step.state.frozen]
        self.fakes = [fake_b if d == b else fake_a for d, _, _ in self.critics]
        self.d_names = [f"D/{d}" for d, _, _ in self.critics]

        def d_pass():
            return torch.stack(list(step.critics(self.critics).values()))

        if self.critics:
            self.d_replay, self.d_values = capture.record(d_pass)
            self.d_update, _ = capture.record(graphed.update(self.d_opts))

    def run(self, real_a: torch.Tensor, real_b: torch.Tensor) -> dict[str, torch.Tensor]:
        self.real_a.copy_(real_a, non_blocking=True)
        self.real_b.copy_(real_b, non_blocking=True)
        self.g_replay()
        if not self.step.executor.finite(self.g_values[-1]):
            return {"skipped": torch.ones(())}
        self.fill_lr(self.g_opts)
        self.g_update()
        values = [self.g_values]
        if self.critics:
            for (d, _, static), fake in zip(self.critics, self.fakes):
                static.copy_(self.pools[d].query(fake))
            self.d_replay()
            if self.step.executor.finite(self.d_values.sum()):
                self.fill_lr(self.d_opts)
                self.d_update()
            values.append(self.d_values)
        # One copy of all the losses, so the next replay cannot change what the caller holds.
        mine = torch.cat(values).clone()
        out = dict(zip(self.g_names + self.d_names, mine.unbind()))
        out["G_total"] = out.pop("G_total")  # last, as the Step returns it
        return out
