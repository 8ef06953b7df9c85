"""combogan.accel: every speed switch computes the same step as plain eager."""

from __future__ import annotations

import copy
import shutil
import threading
import time

import pytest
import torch
from conftest import Trainee, assert_same_functions

from combogan.accel import plan as perf
from combogan.accel.executor import PlannedExecutor
from combogan.accel.overlap import Overlap
from combogan.config import LossConfig, ModelConfig, PerfConfig
from combogan.errors import UserError
from combogan.training.step import Executor

CPU = torch.device("cpu")
# Outputs (of size ~1) of the networks after one step from identical state. Measured: ~1e-6
# between correct implementations, up to ~1e-3 when a weight whose gradient is at the rounding
# level takes Adam's first step (lr * sign(g)) the other way; 0.07-0.11 after a step on other
# data (test_the_step_check_can_fail).
FUNCTION_ATOL = 1e-2
EAGER = PerfConfig(overlap="off", compile="off", precision="fp32", channels_last="off", fused_adam="off")


def make_registry(model: ModelConfig | None = None, names=("a", "b", "c"), pool_size: int = 2) -> Trainee:
    return Trainee(names, model, pool_size)


def batches(steps: int, batch: int = 2, size: int = 32):
    g = torch.Generator().manual_seed(3)
    pairs = [("a", "b"), ("c", "a"), ("b", "c")]
    for step in range(steps):
        yield pairs[step % 3], torch.rand(batch, 3, size, size, generator=g) * 2 - 1, torch.rand(batch, 3, size, size, generator=g) * 2 - 1


def trajectory(reg: Trainee, executor: Executor, steps: int = 4, loss: LossConfig = LossConfig()) -> list[dict[str, float]]:
    """The losses of `steps` steps in a row (for comparing an implementation with itself)."""
    return [{k: v.item() for k, v in reg.step(pair, x, y, loss, executor).items()} for pair, x, y in batches(steps)]


def assert_same_steps(reg: Trainee, executor: Executor, ref: Trainee, rtol: float, atol: float, steps: int = 4,
                      loss: LossConfig = LossConfig(), fmt=torch.contiguous_format, data=None, grad_atol: float | None = None) -> None:
    """Every step taken from identical state: before each, the plain eager reference `ref` takes
    `reg`'s whole training state (weights, Adam moments, pools); then both take the step, and
    their losses, the gradients they applied and the networks after it (outputs on fixed inputs)
    must agree. Several steps cover other pairs, filling pools and non-trivial Adam moments.
    Gradients are compared within rtol and grad_atol (default: atol) times the largest one.

    Nothing is compared after drift: over several steps, two correct implementations (threads,
    kernels, CPUs) part ways, because the conv biases before InstanceNorm have no true gradient
    and Adam turns the rounding noise there into lr-sized steps, which later steps amplify.
    """
    for pair, x, y in data or batches(steps):
        ref.take_state(reg)
        got = reg.step(pair, x.contiguous(memory_format=fmt), y.contiguous(memory_format=fmt), loss, executor)
        g_got = {n: p.grad.clone() for n, p in reg.model.named_parameters() if p.grad is not None}
        want = ref.step(pair, x, y, loss, Executor())
        g_want = {n: p.grad.clone() for n, p in ref.model.named_parameters() if p.grad is not None}
        assert got.keys() == want.keys() and g_got.keys() == g_want.keys()
        for k in want:
            assert got[k].item() == pytest.approx(want[k].item(), rel=rtol, abs=atol), (pair, k)
        scale = max(g.abs().max().item() for g in g_want.values()) * (atol if grad_atol is None else grad_atol)
        for k in g_want:
            torch.testing.assert_close(g_got[k], g_want[k], rtol=rtol, atol=scale, msg=lambda m, k=k, pair=pair: f"{pair} {k}: {m}")
        assert_same_functions(reg.model, ref.model, rtol=0, atol=FUNCTION_ATOL)


class AdamTwice(Executor):
    """A broken speed plan: every optimizer steps twice."""

    def update(self, opts: list[torch.optim.Optimizer]) -> None:
        super().update(opts)
        super().update(opts)


def test_the_step_check_can_fail():
    """A plan that updates wrongly, or one step on other data, fails the check: its tolerances
    are far below what one step changes."""
    with pytest.raises(AssertionError, match="Tensor-likes are not close"):
        assert_same_steps(make_registry(), AdamTwice(), make_registry(), rtol=1e-4, atol=1e-6)
    ref, reg = make_registry(), make_registry()
    for pair, x, y in batches(4):
        ref.take_state(reg)
        reg.step(pair, x, y), ref.step(pair, x.flip(-1), y.flip(-2))
        with pytest.raises(AssertionError):
            assert_same_functions(reg.model, ref.model, rtol=0, atol=FUNCTION_ATOL)


def test_take_state_makes_identical_trainees():
    ref, reg = make_registry(), make_registry()
    for pair, x, y in batches(3):
        reg.step(pair, x, y)
    ref.take_state(reg)
    for (k, p), q in zip(reg.model.state_dict().items(), ref.model.state_dict().values(), strict=True):
        assert torch.equal(p, q), k
    pair, x, y = next(batches(1))
    got, want = reg.step(pair, x, y), ref.step(pair, x, y)
    assert {k: v.item() for k, v in got.items()} == {k: v.item() for k, v in want.items()}
    assert ref.state.generator_opt["a"].state is not reg.state.generator_opt["a"].state


# ---- plan: what 'auto' means, and refusals ---------------------------------------------------
def test_auto_plan_on_cpu(monkeypatch):
    torch.set_num_threads(2)
    monkeypatch.setattr(perf, "cpu_has_amx", lambda: False)
    p = perf.plan(PerfConfig(), ModelConfig(), CPU)
    assert (p.overlap, p.compile, p.precision, p.channels_last, p.fused_adam, p.cudnn_benchmark) == (True, False, "fp32", False, True, False)
    monkeypatch.setattr(perf, "cpu_has_amx", lambda: True)  # native bf16 convolutions: autocast pays
    assert perf.plan(PerfConfig(), ModelConfig(), CPU).precision == "bf16"
    assert perf.plan(PerfConfig(precision="fp32"), ModelConfig(), CPU).precision == "fp32"
    torch.set_num_threads(1)  # one core: nothing to overlap onto
    assert not perf.plan(PerfConfig(), ModelConfig(), CPU).overlap
    torch.set_num_threads(2)
    assert perf.plan(EAGER, ModelConfig(), CPU).describe() == "overlap off, compile off, fp32, NCHW, default Adam"


@pytest.mark.parametrize("model, why", [
    (ModelConfig(norm="batch"), "running statistics"),
    (ModelConfig(dropout=0.5), "random generator"),
])
def test_overlap_refused_where_unsafe(model, why):
    assert not perf.plan(PerfConfig(), model, CPU).overlap  # auto quietly stays sequential
    with pytest.raises(UserError, match=why):
        perf.plan(PerfConfig(overlap="on", precision="fp32"), model, CPU)


def test_overlap_is_cpu_only():
    with pytest.raises(UserError, match="CUDA"):
        perf.plan(PerfConfig(overlap="on"), ModelConfig(), torch.device("cuda"))


def test_compile_needs_a_compiler(monkeypatch):
    monkeypatch.setenv("CXX", "no-such-compiler-xyz")
    assert not perf.plan(PerfConfig(compile="auto"), ModelConfig(), CPU).compile
    with pytest.raises(UserError, match="C\\+\\+ compiler"):
        perf.plan(PerfConfig(compile="on"), ModelConfig(), CPU)


@pytest.mark.skipif(shutil.which("g++") is None, reason="torch.compile on CPU needs a C++ compiler")
def test_compile_and_overlap_are_not_combined():
    torch.set_num_threads(2)
    assert not perf.plan(PerfConfig(compile="on"), ModelConfig(), CPU).overlap  # auto steps aside
    assert perf.plan(PerfConfig(compile="on"), ModelConfig(), CPU).compile
    with pytest.raises(UserError, match="perf.overlap=on cannot be used here: perf.compile is on, and torch.compile is not thread-safe"):
        perf.plan(PerfConfig(compile="on", overlap="on", precision="fp32"), ModelConfig(), CPU)


# ---- overlap ---------------------------------------------------------------------------------
def test_overlap_matches_sequential_and_is_repeatable():
    loss = LossConfig(lambda_identity=0.5)  # every term, both halves
    ref, a, b = make_registry(), make_registry(), make_registry()
    overlap = Overlap(threads=2)
    try:
        assert_same_steps(a, PlannedExecutor(overlap=overlap), ref, rtol=1e-4, atol=1e-6, loss=loss)  # op-level rounding: 1 vs 2 threads
        # The same implementation twice, trajectories and all: bit for bit (resume stays exact).
        b_losses = trajectory(b, PlannedExecutor(overlap=overlap), loss=loss)
        a_again = make_registry()
        assert trajectory(a_again, PlannedExecutor(overlap=overlap), loss=loss) == b_losses
    finally:
        overlap.close()
    for (k1, p), (k2, q) in zip(a_again.model.state_dict().items(), b.model.state_dict().items(), strict=True):
        assert k1 == k2 and torch.equal(p, q), k1
    assert torch.get_num_threads() == 2  # the workers' thread setting did not leak to the caller


def test_bf16_on_two_threads_is_repeatable():
    """bf16 autocast with the halves on two threads: from identical state, the same step twice
    gives the same losses, gradients and weights bit for bit (with autocast's shared cast cache,
    the grouping of bf16 gradient sums followed the threads' timing)."""
    loss = LossConfig(lambda_identity=0.5)
    a, b = make_registry(), make_registry()
    executor = PlannedExecutor(torch.bfloat16, Overlap(threads=2))
    try:
        for pair, x, y in batches(6):  # several pairs, filling pools and Adam moments
            b.take_state(a)
            got, want = a.step(pair, x, y, loss, executor), b.step(pair, x, y, loss, executor)
            assert {k: v.item() for k, v in got.items()} == {k: v.item() for k, v in want.items()}, pair
            for (k, p), q in zip(a.model.named_parameters(), b.model.parameters(), strict=True):
                assert (p.grad is None) == (q.grad is None) and (p.grad is None or torch.equal(p.grad, q.grad)), (pair, k)
                assert torch.equal(p, q), (pair, k)
    finally:
        executor.close()


def test_overlap_with_a_frozen_domain_leaves_it_untouched():
    ref, reg = make_registry(), make_registry()
    for r in (ref, reg):
        r.state.freeze("c")
    frozen = copy.deepcopy(reg.model.domain_state("c"))
    overlap = Overlap(threads=2)
    try:
        assert_same_steps(reg, PlannedExecutor(overlap=overlap), ref, rtol=1e-4, atol=1e-6, steps=3)
        out = reg.step(("c", "a"), *next(batches(1))[1:], LossConfig(), PlannedExecutor(overlap=overlap))
    finally:
        overlap.close()
    assert all(torch.equal(frozen[k], v) for k, v in reg.model.domain_state("c").items())
    assert "D/c" not in out and "D/a" in out


def test_overlap_skips_non_finite_steps_without_touching_anything():
    reg = make_registry()
    before = copy.deepcopy(reg.model.state_dict())
    overlap = Overlap(threads=2)
    try:
        x = torch.full((2, 3, 32, 32), float("nan"))
        out = reg.step(("a", "b"), x, torch.zeros(2, 3, 32, 32), LossConfig(), PlannedExecutor(overlap=overlap))
    finally:
        overlap.close()
    assert "skipped" in out
    assert all(torch.equal(before[k], v) for k, v in reg.model.state_dict().items())
    assert all(p.grad is None for p in reg.model.parameters())  # the thrown-away gradients are gone


def test_overlap_waits_for_both_halves_before_raising():
    finished = threading.Event()

    def fails():
        raise RuntimeError("boom")

    def slow():
        time.sleep(0.2)
        finished.set()

    overlap = Overlap(threads=2)
    try:
        with pytest.raises(RuntimeError, match="boom"):
            overlap(fails, slow)
        assert finished.is_set()
        assert overlap(lambda: 1, lambda: 2) == Executor().both(lambda: 1, lambda: 2) == (1, 2)
    finally:
        overlap.close()


# ---- fused Adam, memory format, precision, compile --------------------------------------------
def test_fused_adam_matches_default_adam():
    ref, reg = make_registry(), make_registry()
    reg.use_fused_adam(True)
    assert all(g["fused"] for g in reg.state.generator_opt["a"].param_groups)
    assert_same_steps(reg, Executor(), ref, rtol=1e-4, atol=1e-5)


def test_channels_last_matches_eager():
    ref, reg = make_registry(), make_registry()
    p = perf.plan(PerfConfig(overlap="off", precision="fp32", channels_last="on"), ModelConfig(), CPU)
    perf.prepare(p, reg.model, reg.state)
    reg.fused = p.fused_adam
    assert reg.model.encoders["a"].net[1].weight.is_contiguous(memory_format=torch.channels_last)
    # Other oneDNN kernels (NHWC) sum in another order: ~1e-6 in outputs. Measured: once a critic
    # has trained a few steps, its InstanceNorms over 4x4 and 8x8 maps turn that into up to ~4%
    # of a gradient entry (and 1e-2 of the largest); a wrong layout is off by far more.
    assert_same_steps(reg, PlannedExecutor.for_plan(p), ref, rtol=1e-3, atol=1e-5, fmt=p.memory_format, grad_atol=5e-2)


@pytest.mark.parametrize("saved_channels_last", [False, True], ids=["NCHW->NHWC", "NHWC->NCHW"])
def test_a_resume_may_change_the_memory_format(saved_channels_last):
    """Adam moments saved in one memory layout, loaded beside parameters in the other (a resume
    that changes perf.channels_last): fused Adam assumes equal strides, and silently made wrong
    updates before the moments were given their parameters' layout. Compared as one Adam update
    from identical state and identical gradients, against PyTorch's default Adam (which copes)."""
    on, off = (perf.plan(PerfConfig(overlap="off", channels_last=v), ModelConfig(), CPU) for v in ("on", "off"))
    saved_plan, resumed_plan = (on, off) if saved_channels_last else (off, on)
    saved = make_registry()
    perf.prepare(saved_plan, saved.model, saved.state)
    for pair, x, y in batches(3):
        saved.step(pair, x, y, LossConfig(), PlannedExecutor.for_plan(saved_plan))
    resumed, ref = make_registry(), make_registry()
    resumed.load(saved)  # as `train --resume` does it: load the checkpoint, then prepare the plan
    perf.prepare(resumed_plan, resumed.model, resumed.state)
    ref.take_state(saved)
    assert all(g["fused"] for opt in resumed.state.all_optimizers() for g in opt.param_groups)
    g = torch.Generator().manual_seed(0)
    for p, q in zip(resumed.model.parameters(), ref.model.parameters(), strict=True):
        p.grad = torch.empty_like(p).copy_(torch.randn(p.shape, generator=g))
        q.grad = p.grad.clone(memory_format=torch.contiguous_format)
    for t in (resumed, ref):
        Executor().update(t.state.all_optimizers())
    for (k, p), q in zip(resumed.model.named_parameters(), ref.model.parameters(), strict=True):
        torch.testing.assert_close(p, q, rtol=0, atol=1e-6, msg=lambda m, k=k: f"{k}: {m}")


def test_bf16_autocast_keeps_fp32_weights_and_losses():
    ref, reg = make_registry(pool_size=0), make_registry(pool_size=0)
    p = perf.plan(PerfConfig(overlap="on", precision="bf16"), ModelConfig(), CPU)
    options = PlannedExecutor.for_plan(p)
    try:
        out = reg.step(("a", "b"), *next(batches(1))[1:], LossConfig(), options)
    finally:
        options.close()
    want = ref.step(("a", "b"), *next(batches(1))[1:], LossConfig(), Executor())
    assert all(v.dtype == torch.float32 for v in out.values())
    assert all(p.dtype == torch.float32 for p in reg.model.parameters())
    for k in want:  # bf16 keeps ~3 significant digits
        assert out[k].item() == pytest.approx(want[k].item(), rel=0.05), k


@pytest.mark.skipif(shutil.which("g++") is None, reason="torch.compile on CPU needs a C++ compiler")
def test_compile_matches_eager():
    """In float64: Inductor fuses and reorders float32 reductions, and in some states (a step of
    this test with the local critic, on one CPU) the rounding came out at 4e-4 of the largest
    gradient, where a float32 tolerance can't tell it from a bug. In float64 the compiled step
    agrees with eager to ~1e-15, so the check can be tight and hold on any CPU."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        model = ModelConfig(n_downsampling=1, ngf=4, ndf=4, n_blocks=2, output="image")
        assert model.n_layers_d_local  # the default critic, local critic included
        ref, reg = make_registry(model), make_registry(model)
        p = perf.plan(PerfConfig(overlap="off", compile="on"), model, CPU)
        perf.prepare(p, reg.model, reg.state)
        reg.fused = p.fused_adam
        assert set(reg.model.state_dict()) == set(ref.model.state_dict())  # compiling in place keeps checkpoint keys
        assert_same_steps(reg, PlannedExecutor.for_plan(p), ref, rtol=1e-9, atol=1e-10, steps=3)
    finally:
        torch.set_default_dtype(old)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_bf16_plan_and_step_match_fp32():
    dev = torch.device("cuda")
    p = perf.plan(PerfConfig(precision="bf16"), ModelConfig(), dev)
    assert p.cudnn_benchmark and not p.overlap
    reg, ref = Trainee("ab", pool_size=0, device="cuda"), Trainee("ab", pool_size=0, device="cuda")
    perf.prepare(p, reg.model, reg.state)
    x, y = (torch.rand(2, 3, 32, 32, device=dev) * 2 - 1 for _ in range(2))
    got = reg.step(("a", "b"), x, y, LossConfig(), PlannedExecutor.for_plan(p))
    want = ref.step(("a", "b"), x, y, LossConfig(), Executor())
    for k in want:
        assert got[k].item() == pytest.approx(want[k].item(), rel=0.05), k


# ---- through `combogan train` ------------------------------------------------------------------
def test_train_reports_its_perf_plan_and_resume_may_change_it(seasons, tmp_path, capsys, monkeypatch):
    from conftest import TINY_SET

    from combogan.cli import main

    monkeypatch.setattr(perf, "cpu_has_amx", lambda: False)  # the same plan on every CPU

    args = ["train", "--domains", str(seasons), "--run", str(tmp_path / "run"), "--device", "cpu"]
    args += [a for s in TINY_SET for a in ("--set", s)]
    assert main(args + ["--max-iters", "2"]) == 0
    assert "perf: overlap on, compile off, fp32, NCHW, fused Adam on cpu" in capsys.readouterr().err
    assert main(args + ["--max-iters", "3", "--resume", "--set", "perf.overlap=off", "--set", "perf.fused_adam=off"]) == 0
    err = capsys.readouterr().err
    assert "changed settings: perf.overlap, perf.fused_adam" in err and "perf: overlap off" in err
