"""combogan.accel.graphs: the CUDA-graphed step makes the same updates as the eager step.

Without a GPU the graphs are played by EagerCapture, which keeps what the step relies on:
capture changes nothing, replay writes into the tensors capture returned. So these tests run
the real plumbing (static inputs, host-side pools and finite checks, lr read from a tensor,
gradients zeroed in place, capture per pair and shape); one uses real CUDA graphs when it can.
"""

from __future__ import annotations

import copy

import pytest
import torch
from conftest import Trainee, tiny_model

from combogan.accel import plan as perf
from combogan.accel.executor import PlannedExecutor
from combogan.accel.graphs import EagerCapture, GraphedStep, step_state
from combogan.accel.stepper import Stepper
from combogan.config import LossConfig, ModelConfig, PerfConfig
from combogan.errors import UserError
from combogan.training.step import Step

LOSS = LossConfig(lambda_identity=0.5)  # every optional term traced too
PAIRS = [("a", "b"), ("b", "c"), ("a", "b"), ("a", "b"), ("c", "a"), ("b", "c"), ("c", "a"), ("a", "b"), ("a", "b"), ("b", "c")]


def make_registry(model: ModelConfig | None = None, device: str = "cpu", names=("a", "b", "c")) -> Trainee:
    return Trainee(names, model, pool_size=2, device=device)


def graphed(reg: Trainee, loss: LossConfig = LOSS) -> GraphedStep:
    capture = EagerCapture(lambda: step_state(reg.model, reg.state)) if device_of(reg).type == "cpu" else None
    return GraphedStep(Step(reg.model, reg.state, loss), capture)


def device_of(reg: Trainee) -> torch.device:
    return next(reg.model.parameters()).device


def train_step(reg: Trainee, pair, a, b, loss):
    return reg.step(pair, a, b, loss)


def data(steps: int, device: str = "cpu"):
    """(pair, a, b, lr) per step; batch 2 then, from step 7, batch 1 (a second shape to capture)."""
    g = torch.Generator().manual_seed(1)
    for i, pair in enumerate(PAIRS[:steps]):
        n = 2 if i < 7 else 1
        a, b = (torch.rand(n, 3, 32, 32, generator=g).to(device) * 2 - 1 for _ in range(2))
        yield pair, a, b, 2.0**-12 * (1 - i / 16)  # exact in float32, like the graphs' lr tensor


def assert_same_function(ref: Trainee, reg: Trainee, atol: float) -> None:
    """Same translations and critic outputs (raw weights would compare conv biases before
    InstanceNorm, which get no true gradient and so only Adam-amplified rounding noise)."""
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(9)).to(device_of(reg)) * 2 - 1
    ref, reg = ref.model.eval(), reg.model.eval()
    with torch.no_grad():
        for n in ref.names:
            others = [m for m in ref.names if m != n]
            want, got = ref.translate(x, n, others), reg.translate(x, n, others)
            for m in others:
                torch.testing.assert_close(got[m], want[m], rtol=0, atol=atol, msg=lambda s, n=n, m=m: f"{n}->{m}: {s}")
            torch.testing.assert_close(reg.discriminators[n](x), ref.discriminators[n](x), rtol=0, atol=atol)


@pytest.mark.parametrize("model", [tiny_model(), ModelConfig(ngf=8, ndf=8, n_blocks=2, n_downsampling=1, norm="batch", dropout=0.5, output="image")],
                         ids=["instance", "batchnorm+dropout"])
def test_graphed_steps_match_eager(model):
    ref, reg = make_registry(model), make_registry(model)
    step = graphed(reg)
    kept = None
    torch.manual_seed(5)  # dropout draws: both runs consume the same ones
    rng = torch.get_rng_state()
    want_all, got_all = [], []
    for i, (pair, a, b, lr) in enumerate(data(len(PAIRS))):
        ref.state.set_lr(lr, pair), reg.state.set_lr(lr, pair)
        torch.set_rng_state(rng)
        want = train_step(ref, pair, a, b, LOSS)
        torch.set_rng_state(rng)
        got = step(pair, a, b)
        rng = torch.get_rng_state()
        assert list(got) == list(want)
        want_all.append({k: v.item() for k, v in want.items()})
        got_all.append({k: v.item() for k, v in got.items()})
        if i == 3:
            kept = (got, dict(got_all[-1]))
    for w, g in zip(want_all, got_all):
        for k in w:
            assert g[k] == w[k], k
    # (pair, shape) keys: the first sight of each is an eager warm-up, the second is captured.
    assert sorted((k[0], k[1][0]) for k in step.captured) == [(("a", "b"), 1), (("a", "b"), 2), (("b", "c"), 2), (("c", "a"), 2)]
    # What a step returned is the caller's: later replays do not overwrite it.
    assert {k: v.item() for k, v in kept[0].items()} == kept[1]
    # Every trainable weight took exactly one Adam step per step it was in.
    steps_in = {n: sum(n in p for p in PAIRS) for n in "abc"}
    for n in "abc":
        opt = reg.state.generator_opt[n]
        assert {int(s["step"]) for s in opt.state.values()} == {steps_in[n]}
    assert_same_function(ref, reg, atol=0)  # bit for bit: same kernels, same order, same lr


def test_non_finite_step_is_skipped_and_training_goes_on():
    ref, reg = make_registry(), make_registry()
    step = graphed(reg)
    for pair, a, b, _ in data(3):  # the third step, ("a", "b") again, is the first captured one
        train_step(ref, pair, a, b, LOSS), step(pair, a, b)
    assert step.captured
    before = copy.deepcopy(reg.model.state_dict())
    adam_steps = {n: int(next(iter(reg.state.generator_opt[n].state.values()))["step"]) for n in "ab"}
    bad = torch.full((2, 3, 32, 32), float("nan"))
    assert "skipped" in step(("a", "b"), bad, bad)
    assert "skipped" in train_step(ref, ("a", "b"), bad, bad, LOSS)
    for k, v in reg.model.state_dict().items():
        assert torch.equal(v, before[k]), k
    assert {n: int(next(iter(reg.state.generator_opt[n].state.values()))["step"]) for n in "ab"} == adam_steps
    pair, a, b, _ = next(data(1))
    got, want = step(pair, a, b), train_step(ref, pair, a, b, LOSS)
    for k in want:
        assert got[k].item() == pytest.approx(want[k].item(), rel=1e-4, abs=1e-5), k
    assert_same_function(ref, reg, atol=1e-4)


def test_frozen_domains_stay_untouched():
    """add-domain: the old domains are frozen; only the new one's nets and critic learn."""
    def setup():
        reg = make_registry(names=("old1", "old2", "new"))
        reg.state.freeze("old1"), reg.state.freeze("old2")
        return reg

    ref, reg = setup(), setup()
    frozen = copy.deepcopy({n: reg.model.domain_state(n) for n in ("old1", "old2")})
    step = graphed(reg)
    g = torch.Generator().manual_seed(2)
    for pair in [("new", "old1"), ("old2", "new"), ("new", "old1"), ("old2", "new"), ("new", "old1")]:
        a, b = (torch.rand(2, 3, 32, 32, generator=g) * 2 - 1 for _ in range(2))
        want, got = train_step(ref, pair, a, b, LOSS), step(pair, a, b)
        assert list(got) == list(want) and not any(k.startswith("D/old") for k in got)
        for k in want:
            assert got[k].item() == pytest.approx(want[k].item(), rel=1e-4, abs=1e-5), k
    assert len(step.captured) == 2
    for n, state in frozen.items():
        for k, v in reg.model.domain_state(n).items():
            assert torch.equal(v, state[k]), (n, k)
    assert_same_function(ref, reg, atol=1e-4)


def test_optimizers_and_checkpoints_keep_plain_settings():
    """The captured updates read lr from device tensors (the schedule is followed: see
    test_graphed_steps_match_eager), but the optimizers keep a float lr and plain Adam settings,
    so a checkpoint of a graphed run loads into a plain eager registry and trains on."""
    reg = make_registry()
    step = graphed(reg)
    for pair, a, b, lr in data(4):
        reg.state.set_lr(lr, pair)
        step(pair, a, b)
    assert step.captured
    for opt in reg.state.all_optimizers():
        assert all(type(g["lr"]) is float and not g.get("capturable") for g in opt.param_groups)
    state = reg.state.domain_state("a")
    assert all(type(g["lr"]) is float and g["capturable"] is False for g in state["gen_opt"]["param_groups"])
    plain = make_registry()
    for n in "abc":
        plain.model.load_domain_state(n, reg.model.domain_state(n))
        plain.state.load_domain_state(n, reg.state.domain_state(n))
    out = train_step(plain, ("a", "b"), *next(data(1))[1:3], LOSS)
    assert torch.isfinite(out["G_total"])


def test_graphs_are_refused_where_they_cannot_run():
    with pytest.raises(UserError, match="perf.cuda_graphs=on cannot be used here: CUDA graphs need a CUDA GPU"):
        perf.plan(PerfConfig(cuda_graphs="on"), ModelConfig(), torch.device("cpu"))
    with pytest.raises(UserError, match="torchrun"):
        perf.plan(PerfConfig(cuda_graphs="on"), ModelConfig(), torch.device("cuda"), distributed=True)
    assert not perf.plan(PerfConfig(), ModelConfig(), torch.device("cpu")).cuda_graphs  # auto: off
    assert not perf.plan(PerfConfig(cuda_graphs="auto"), ModelConfig(), torch.device("cuda")).cuda_graphs  # until measured
    with pytest.raises(ValueError):
        t = make_registry()
        GraphedStep(Step(t.model, t.state, LOSS, PlannedExecutor.for_plan(perf.plan(PerfConfig(overlap="on"), tiny_model(), torch.device("cpu")))))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_real_cuda_graphs_match_eager():
    """Every step from identical state (the eager reference takes the graphed run's whole state
    first): the same losses and the same networks after it. Trajectories are not compared."""
    ref, reg = make_registry(device="cuda"), make_registry(device="cuda")
    p = perf.plan(PerfConfig(cuda_graphs="on", fused_adam="on"), tiny_model(), torch.device("cuda"))
    assert p.cuda_graphs and "CUDA graphs" in p.describe()
    stepper = Stepper(p, reg.model, reg.state, LOSS)
    ref.use_fused_adam(True)
    for pair, a, b, lr in data(len(PAIRS), "cuda"):
        reg.state.set_lr(lr, pair)
        ref.take_state(reg)
        want, got = train_step(ref, pair, a, b, LOSS), stepper(pair, a, b)
        for k in want:
            assert got[k].item() == pytest.approx(want[k].item(), rel=1e-4, abs=1e-5), k
        assert_same_function(ref, reg, atol=1e-2)
        ref.model.train(), reg.model.train()
    assert len(stepper.graphed.captured) == 4


def test_train_with_graphs_end_to_end_across_a_resume(seasons, tmp_path, monkeypatch):
    """`train` end to end with perf.cuda_graphs=on (the GPU check lifted, so the stand-in plays
    the graphs): pairs are captured and replayed, checkpoints written mid-run load back and the
    run resumes under graphs. That graphed steps compute what eager steps do is checked bit for
    bit above; 20-step trajectories of two implementations are not compared (they drift)."""
    from conftest import tiny_config

    from combogan import Translator, train
    from combogan.accel import graphs

    monkeypatch.setattr(perf, "_graphs_blocker", lambda device, distributed, augmented=False: None)
    captures, replays = [], []
    real_init, real_run = graphs._PairGraphs.__init__, graphs._PairGraphs.run
    monkeypatch.setattr(graphs._PairGraphs, "__init__", lambda self, graphed, pair, *a: (captures.append(pair), real_init(self, graphed, pair, *a))[1])
    monkeypatch.setattr(graphs._PairGraphs, "run", lambda self, *a: (replays.append(1), real_run(self, *a))[1])
    common = ("perf.overlap=off", "train.checkpoint_every=5", "train.epochs=4")
    train(seasons, tiny_config("perf.cuda_graphs=on", *common), run=tmp_path / "g", device="cpu", max_iters=10, quiet=True)
    first = Translator(tmp_path / "g")
    result = train(seasons, tiny_config("perf.cuda_graphs=on", *common), run=tmp_path / "g", device="cpu", max_iters=20, resume=True, quiet=True)
    assert captures and replays  # some pairs came round again and were replayed from graphs
    assert result.step == 20 and "skipped" not in result.metrics
    got = Translator(tmp_path / "g")
    assert got.step == 20
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1
    for src in got.domains:
        for dst in got.domains:
            if src != dst:
                y = got.translate(x, src, dst)
                assert torch.isfinite(y).all() and not torch.equal(y, first.translate(x, src, dst))  # it kept training
