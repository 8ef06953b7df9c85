"""CUDA graphs for the training step: capture each ordered pair's step once, then replay it.

At batch 1 an eager step is launch-bound: thousands of small kernels, and the GPU idles while
Python queues them. A graph replays all of them with one call, but it needs fixed shapes and
fixed addresses, so for each (pair, batch shape) the step is cut into four graphs with host
decisions between them, exactly where the eager step (combogan.step.train_step) makes them:

    copy the batch into the static inputs
    G graph       zero G grads; both generator halves forward+backward -> losses, fakes
    host          finite check (one sync): a bad step stops here, as in eager
    G-step graph  the two domains' generator Adams (capturable; lr is a device tensor)
    host          each history pool picks from the new fakes (its own RNG, on the host);
                  the picks are copied into the static critic inputs
    D graph       zero D grads; both critics forward+backward
    host          finite check;  D-step graph

Pair sampling, pool choices and the lr schedule stay on the host, so a graphed run makes the
same decisions as an eager one. Gradients are allocated once and zeroed in place (a graph
writes to the addresses it saw at capture). All graphs share one memory pool: they never run
concurrently and none reads another's temporaries. The first step of each (pair, shape) runs
eagerly as the warm-up capture needs (cuDNN algorithm choice, optimizer state, compilation).

`EagerCapture` stands in for the GPU where there is none (the test suite): same plumbing,
with "capture" changing nothing and "replay" writing into the captured outputs.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from typing import Any, Callable

import torch
from torch.utils._pytree import tree_leaves

from .config import LossConfig
from .registry import DomainRegistry
from .step import StepOptions, apply_updates, critics_pass, finite, generator_pass, optimizers, train_step, zero_grads

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


def step_state(registry: DomainRegistry) -> list[torch.Tensor]:
    """Every tensor a training step may write (for EagerCapture): weights, BatchNorm statistics,
    gradients, optimizer state and lr."""
    out: list[torch.Tensor] = list(registry.buffers())
    for name in registry.trainable:
        d = registry[name]
        out += [p for p in d.nets.parameters()] + [p.grad for p in d.nets.parameters() if p.grad is not None]
        for opt in (d.gen_opt, d.dis_opt):
            out += [v for st in opt.state.values() for v in st.values() if isinstance(v, torch.Tensor)]
            out += [g["lr"] for g in opt.param_groups if isinstance(g["lr"], torch.Tensor)]
    return out


class GraphedStep:
    """`train_step` with each (pair, batch shape) captured as graphs after one eager warm-up.

    Call it like train_step without the registry and loss: step(pair, real_a, real_b).
    The returned losses are the caller's own tensors (the static ones are overwritten by the
    next replay). Not for torchrun (the gradient all-reduce is not captured) or CPU threads.
    """

    def __init__(self, registry: DomainRegistry, loss: LossConfig, options: StepOptions = StepOptions(),
                 capture: CudaCapture | EagerCapture | None = None):
        if options.dist is not None or options.overlap is not None:
            raise ValueError("graphed steps run on one device without CPU-thread overlap")
        self.registry, self.loss = registry, loss
        self.options = replace(options, keep_grads=True)
        if capture is None:  # without a GPU the stand-in runs the same plumbing (slower than eager)
            capture = CudaCapture(registry.device) if registry.device.type == "cuda" else EagerCapture(lambda: step_state(registry))
        self.capture = capture
        self._graphs: dict[tuple, _PairGraphs] = {}
        self._warm: Counter = Counter()
        self._prepare_optimizers()

    def _prepare_optimizers(self) -> None:
        """lr as a device tensor (the schedule fills it in place), capturable Adam on CUDA, and
        every gradient allocated now, so that no graph ever sees a gradient tensor replaced."""
        cuda = self.registry.device.type == "cuda"
        for name in self.registry.trainable:
            d = self.registry[name]
            for opt in (d.gen_opt, d.dis_opt):
                for group in opt.param_groups:
                    dev = group["params"][0].device
                    if not isinstance(group["lr"], torch.Tensor):
                        group["lr"] = torch.tensor(float(group["lr"]), dtype=torch.float32, device=dev)
                    group["capturable"] = cuda
                    for p in group["params"]:
                        if p.grad is None:
                            p.grad = torch.zeros_like(p)
                        st = opt.state.get(p)
                        if st and isinstance(st.get("step"), torch.Tensor):
                            st["step"] = st["step"].to(dev)
                # Uncaptured steps (the warm-ups) are expected here; PyTorch would warn on each.
                opt._warned_capturable_if_run_uncaptured = True

    @property
    def captured(self) -> list[tuple]:
        """The (pair, shape of A's batch, shape of B's batch) keys captured so far."""
        return list(self._graphs)

    def __call__(self, pair: tuple[str, str], real_a: torch.Tensor, real_b: torch.Tensor) -> dict[str, torch.Tensor]:
        key = (tuple(pair), tuple(real_a.shape), tuple(real_b.shape))
        graphs = self._graphs.get(key)
        if graphs is None:
            if not self._warm[key] or not self._has_state(pair):
                out = self.capture.warmup(lambda: train_step(self.registry, pair, real_a, real_b, self.loss, self.options))
                if "skipped" not in out:
                    self._warm[key] += 1
                return out
            graphs = self._graphs[key] = _PairGraphs(self.registry, pair, real_a, real_b, self.loss, self.options, self.capture)
        return graphs.run(real_a, real_b)

    def _has_state(self, pair: tuple[str, str]) -> bool:
        # Adam creates its state on the first step; creating it inside a capture would bake the
        # initialisation into every replay.
        domains = [self.registry[n] for n in pair]
        return all(p in opt.state for opt in optimizers(domains, "gen_opt") + optimizers(domains, "dis_opt")
                   for group in opt.param_groups for p in group["params"])


class _PairGraphs:
    """The four captured graphs of one ordered pair and batch shape, and their static tensors."""

    def __init__(self, registry: DomainRegistry, pair: tuple[str, str], real_a: torch.Tensor, real_b: torch.Tensor,
                 loss: LossConfig, options: StepOptions, capture: CudaCapture | EagerCapture):
        a, b = registry[pair[0]], registry[pair[1]]
        self.options = options
        self.real_a, self.real_b = torch.empty_like(real_a), torch.empty_like(real_b)
        self.real_a.copy_(real_a)
        self.real_b.copy_(real_b)
        g_opts, d_opts = optimizers((a, b), "gen_opt"), optimizers((a, b), "dis_opt")

        def g_pass():
            zero_grads(g_opts, options)  # in place: options.keep_grads
            g = generator_pass(a, b, self.real_a, self.real_b, loss, options)
            self.g_names = [*g.terms, "G_total"]  # recorded from the very trace that is captured
            return torch.stack([*g.terms.values(), g.total.detach()]), g.fake_b, g.fake_a

        self.g_replay, (self.g_values, fake_b, fake_a) = capture.record(g_pass)
        self.g_update, _ = capture.record(lambda: apply_updates(g_opts, options))
        # Each trainable critic: (critic, its real batch, the static tensor its pool's pick is
        # copied into) and the fake its pool draws from; D_B (judging fake_b) first, as in eager.
        self.critics = [(d, real, torch.empty_like(real)) for d, real in ((b, self.real_b), (a, self.real_a)) if not d.frozen]
        self.fakes = [fake_b if d is b else fake_a for d, _, _ in self.critics]
        self.d_names = [f"D/{d.name}" for d, _, _ in self.critics]

        def d_pass():
            zero_grads(d_opts, options)
            return torch.stack(list(critics_pass(self.critics, loss.gan_mode, options).values()))

        if self.critics:
            self.d_replay, self.d_values = capture.record(d_pass)
            self.d_update, _ = capture.record(lambda: apply_updates(d_opts, options))

    def run(self, real_a: torch.Tensor, real_b: torch.Tensor) -> dict[str, torch.Tensor]:
        self.real_a.copy_(real_a, non_blocking=True)
        self.real_b.copy_(real_b, non_blocking=True)
        self.g_replay()
        if not finite(self.g_values[-1], self.options):
            return {"skipped": torch.ones(())}
        self.g_update()
        values = [self.g_values]
        if self.critics:
            for (d, _, static), fake in zip(self.critics, self.fakes):
                static.copy_(d.pool.query(fake))
            self.d_replay()
            if finite(self.d_values.sum(), self.options):
                self.d_update()
            values.append(self.d_values)
        # One copy of all the losses, so the next replay cannot change what the caller holds.
        mine = torch.cat(values).clone()
        out = dict(zip(self.g_names + self.d_names, mine.unbind()))
        out["G_total"] = out.pop("G_total")  # last, as train_step returns it
        return out
