"""combogan.perf and combogan.overlap: every speed switch computes the same step as plain eager."""

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
FUNCTION_ATOL = 2e-3
EAGER = PerfConfig(overlap="off", compile="off", precision="fp32", channels_last="off", fused_adam="off")


def make_registry(model: ModelConfig | None = None, names=("a", "b", "c"), pool_size: int = 2) -> Trainee:
    return Trainee(names, model, pool_size)


def batches(steps: int, batch: int = 2, size: int = 32):
    g = torch.Generator().manual_seed(3)
    pairs = [("a", "b"), ("c", "a"), ("b", "c")]
    for step in range(steps):
        yield pairs[step % 3], torch.rand(batch, 3, size, size, generator=g) * 2 - 1, torch.rand(batch, 3, size, size, generator=g) * 2 - 1


def run_steps(reg: Trainee, options: Executor, steps: int = 4, loss: LossConfig = LossConfig(), fmt=torch.contiguous_format):
    """Losses and, after each step, the gradients that step applied (they stay in .grad)."""
    history = []
    for pair, x, y in batches(steps):
        out = reg.step(pair, x.contiguous(memory_format=fmt), y.contiguous(memory_format=fmt), loss, options)
        grads = {n: p.grad.clone() for n, p in reg.model.named_parameters() if p.grad is not None}
        history.append(({k: v.item() for k, v in out.items()}, grads))
    return history


def assert_same_run(h1, h2, reg1, reg2, rtol, atol):
    """Same losses at every step, the same gradients at the first step (identical state), and the
    same networks as functions at the end (outputs on fixed inputs).

    Weights themselves are not compared: the conv biases before InstanceNorm cannot change any
    output, their true gradient is 0, and Adam turns the rounding noise autograd leaves there into
    lr-sized steps that differ between two correct implementations (threads, kernels, CPUs).
    """
    for (l1, _), (l2, _) in zip(h1, h2, strict=True):
        assert l1.keys() == l2.keys()
        for k in l1:
            assert l1[k] == pytest.approx(l2[k], rel=rtol, abs=atol), k
    (_, g1), (_, g2) = h1[0], h2[0]
    assert g1.keys() == g2.keys()
    scale = max(g.abs().max().item() for g in g2.values())
    for k in g1:
        torch.testing.assert_close(g1[k], g2[k], rtol=rtol, atol=atol * scale, msg=lambda m, k=k: f"{k}: {m}")
    if rtol == atol == 0:  # the same implementation twice: bit for bit, weights and all
        for (k1, p), (k2, q) in zip(reg1.model.state_dict().items(), reg2.model.state_dict().items(), strict=True):
            assert k1 == k2 and torch.equal(p, q), k1
    else:
        # Measured: ~1e-4 at most between correct implementations after 4 steps (outputs of size
        # ~1); 0.1-0.2 for the same training on other data (test_the_final_check_can_fail).
        assert_same_functions(reg1.model, reg2.model, rtol=0, atol=FUNCTION_ATOL)


def test_the_final_check_can_fail():
    """The same training on other data must not pass assert_same_run's final check."""
    ref, other = make_registry(), make_registry()
    run_steps(ref, Executor())
    for pair, x, y in batches(4):
        other.step(pair, x.flip(-1), y.flip(-2))
    with pytest.raises(AssertionError):
        assert_same_functions(ref.model, other.model, rtol=0, atol=FUNCTION_ATOL)


# ---- plan: what 'auto' means, and refusals ---------------------------------------------------
def test_auto_plan_on_cpu():
    torch.set_num_threads(2)
    p = perf.plan(PerfConfig(), ModelConfig(), CPU)
    assert (p.overlap, p.compile, p.precision, p.channels_last, p.fused_adam, p.cudnn_benchmark) == (True, False, "fp32", False, True, False)
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
        perf.plan(PerfConfig(overlap="on"), model, CPU)


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
        perf.plan(PerfConfig(compile="on", overlap="on"), ModelConfig(), CPU)


# ---- overlap ---------------------------------------------------------------------------------
def test_overlap_matches_sequential_and_is_repeatable():
    loss = LossConfig(lambda_identity=0.5, lambda_latent=1.0)  # every term, both halves
    ref, a, b = make_registry(), make_registry(), make_registry()
    h_ref = run_steps(ref, Executor(), loss=loss)
    overlap = Overlap(threads=2)
    try:
        h_a = run_steps(a, PlannedExecutor(overlap=overlap), loss=loss)
        h_b = run_steps(b, PlannedExecutor(overlap=overlap), loss=loss)
    finally:
        overlap.close()
    assert_same_run(h_a, h_ref, a, ref, rtol=1e-4, atol=1e-6)  # op-level rounding: 1 vs 2 threads
    assert_same_run(h_a, h_b, a, b, rtol=0, atol=0)  # bit for bit: resume stays exact
    assert torch.get_num_threads() == 2  # the workers' thread setting did not leak to the caller


def test_overlap_with_a_frozen_domain_leaves_it_untouched():
    ref, reg = make_registry(), make_registry()
    for r in (ref, reg):
        r.state.freeze("c")
    frozen = copy.deepcopy(reg.model.domain_state("c"))
    overlap = Overlap(threads=2)
    try:
        h = run_steps(reg, PlannedExecutor(overlap=overlap), steps=3)
    finally:
        overlap.close()
    h_ref = run_steps(ref, Executor(), steps=3)
    assert all(torch.equal(frozen[k], v) for k, v in reg.model.domain_state("c").items())
    assert "D/c" not in h[1][0] and "D/a" in h[1][0]
    assert_same_run(h, h_ref, reg, ref, rtol=1e-4, atol=1e-6)


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
    ref.state.use_fused_adam(False)
    reg.state.use_fused_adam(True)
    assert all(g["fused"] for g in reg.state.generator_opt["a"].param_groups)
    assert_same_run(run_steps(reg, Executor()), run_steps(ref, Executor()), reg, ref, rtol=1e-4, atol=1e-5)


def test_channels_last_matches_eager():
    ref, reg = make_registry(), make_registry()
    p = perf.plan(PerfConfig(overlap="off", channels_last="on"), ModelConfig(), CPU)
    perf.apply(p, reg.model, reg.state)
    assert reg.model.encoders["a"].net[1].weight.is_contiguous(memory_format=torch.channels_last)
    h = run_steps(reg, PlannedExecutor.for_plan(p), fmt=p.memory_format)
    # Other oneDNN kernels (NHWC) sum in another order: a little more rounding than threads.
    assert_same_run(h, run_steps(ref, Executor()), reg, ref, rtol=1e-3, atol=1e-5)


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
    model = ModelConfig(ngf=4, ndf=4, n_blocks=2)
    ref, reg = make_registry(model), make_registry(model)
    p = perf.plan(PerfConfig(overlap="off", compile="on"), model, CPU)
    perf.apply(p, reg.model, reg.state)
    assert set(reg.model.state_dict()) == set(ref.model.state_dict())  # compiling in place keeps checkpoint keys
    h = run_steps(reg, PlannedExecutor.for_plan(p), steps=3)
    assert_same_run(h, run_steps(ref, Executor(), steps=3), reg, ref, rtol=1e-4, atol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_bf16_plan_and_step_match_fp32():
    dev = torch.device("cuda")
    p = perf.plan(PerfConfig(precision="bf16"), ModelConfig(), dev)
    assert p.cudnn_benchmark and not p.overlap
    reg, ref = Trainee("ab", pool_size=0, device="cuda"), Trainee("ab", pool_size=0, device="cuda")
    perf.apply(p, reg.model, reg.state)
    x, y = (torch.rand(2, 3, 32, 32, device=dev) * 2 - 1 for _ in range(2))
    got = reg.step(("a", "b"), x, y, LossConfig(), PlannedExecutor.for_plan(p))
    want = ref.step(("a", "b"), x, y, LossConfig(), Executor())
    for k in want:
        assert got[k].item() == pytest.approx(want[k].item(), rel=0.05), k


# ---- through `combogan train` ------------------------------------------------------------------
def test_train_reports_its_perf_plan_and_resume_may_change_it(seasons, tmp_path, capsys):
    from conftest import TINY_SET

    from combogan.cli import main

    args = ["train", "--domains", str(seasons), "--run", str(tmp_path / "run"), "--device", "cpu"]
    args += [a for s in TINY_SET for a in ("--set", s)]
    assert main(args + ["--max-iters", "2"]) == 0
    assert "perf: overlap on, compile off, fp32, NCHW, fused Adam on cpu" in capsys.readouterr().err
    assert main(args + ["--max-iters", "3", "--resume", "--set", "perf.overlap=off", "--set", "perf.fused_adam=off"]) == 0
    err = capsys.readouterr().err
    assert "changed settings: perf.overlap, perf.fused_adam" in err and "perf: overlap off" in err
