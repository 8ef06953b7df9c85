import shutil

import pytest
from conftest import Clock, logged_lr, tiny_config

from combogan.apps.train import train
from combogan.errors import UserError
from combogan.runs import checkpoint, rundir
from combogan.training.budget import TimeBudget, parse_duration, shortest_exact
from combogan.training.schedule import Schedule


@pytest.mark.parametrize("text, seconds", [("8h", 28800), ("90m", 5400), ("1h30m", 5400), ("45s", 45), ("2d", 172800),
                                           ("1.5h", 5400), ("3600", 3600), (" 2H ", 7200), ("1d2h3m4s", 93784)])
def test_durations(text, seconds):
    assert parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "h", "1x", "1h-3m", "-5", "0", "0m", "nan", "inf", "3m1h"])
def test_bad_durations_are_refused(text):
    with pytest.raises(UserError, match="--time"):
        parse_duration(text)


def test_the_shortest_exact_length_keeps_every_done_step_at_the_full_rate():
    s = Schedule(1, 100, 0.25)
    for done in (0, 1, 29, 30, 31, 33, 75):
        total = shortest_exact(s, done)
        assert s.with_total(total).constant_iters >= done
        assert s.with_total(total - 1).constant_iters < done or total == 1
    assert shortest_exact(s, 30) == 40
    assert shortest_exact(Schedule(1, 100, 0.0), 30) == 30
    assert shortest_exact(Schedule(1, 100, 1.0), 30) is None


def test_fit_is_the_speed_times_the_time_left_within_its_bounds():
    b = TimeBudget(100.0, clock=Clock(), margin=0.0)
    b.start(0)
    for done in range(1, 11):
        b.observe(done, float(done))
    assert b.measured(10, 10.0) and b.rate(10, 10.0) == 1.0
    long = Schedule(1, 1000, 0.25)
    assert b.fit(long, 1000, 10, 10.0) == 100  # 10 done + 90 s at 1 it/s
    assert b.fit(long, 50, 10, 10.0) == 50  # never longer than the configured schedule
    assert b.fit(long, 1000, 10, 95.0) == 13  # slower (8 steps in 93 s): never below the exact floor
    assert b.fit(long, 1000, 60, 99.0) == 80  # 60 done: the constant part must still cover them
    assert b.fit(Schedule(1, 100, 0.25), 1000, 80, 10.0) == 100  # already in the decay: the length stays
    assert not TimeBudget(100.0).measured(10, 10.0)  # nothing timed yet


def test_the_speed_is_the_recent_one():
    """Another job on the machine ends: the time left is spent at the new speed."""
    b = TimeBudget(100.0, clock=Clock())
    b.start(0)
    now = 0.0
    for done in range(1, 31):
        now += 3.0 if done <= 10 else 1.0
        b.observe(done, now)
    assert b.rate(30, now) == 1.0  # the last 10 s of a 100 s budget, not 28 steps in 48 s


def _run_config(*extra):
    return tiny_config("train.checkpoint_every=5", "train.keep_checkpoints=20", *extra)


def test_train_fits_the_schedule_and_its_decay_into_the_budget(seasons, tmp_path):
    cfg = _run_config()
    result = train(seasons, cfg, run=tmp_path / "r", device="cpu", quiet=True, time_budget=TimeBudget(24.0, clock=Clock()))
    configured = 4 * 100 * 5  # 4 domains x 100 epochs x 10 images / batch 2
    assert not result.interrupted
    assert result.step == result.total_iters < configured
    assert 18 <= result.total_iters <= 24  # one step per simulated second
    assert rundir.read_config(tmp_path / "r").train.iters == result.total_iters
    assert rundir.read_manifest(tmp_path / "r")["total_iters"] == result.total_iters


def test_a_budget_cannot_lengthen_the_configured_schedule(seasons, tmp_path):
    result = train(seasons, _run_config("train.epochs=2"), run=tmp_path / "r", device="cpu", quiet=True,
                   time_budget=TimeBudget(1000.0, clock=Clock()))
    assert result.step == result.total_iters == 10
    assert rundir.read_config(tmp_path / "r").train.iters == 0


@pytest.mark.parametrize("log_every", [1, 1000])
def test_a_run_that_speeds_up_still_fills_its_budget(seasons, tmp_path, log_every):
    """Slow while the first fit is made, then three times faster: the length is fitted again
    (at the log steps, and in any case as the decay begins), and the run ends near the
    deadline, not early."""
    clock = Clock(lambda reading: 3.0 if reading < 12 else 1.0)
    result = train(seasons, _run_config(f"train.log_every={log_every}"), run=tmp_path / "r", device="cpu", quiet=True,
                   time_budget=TimeBudget(60.0, clock=clock))
    assert not result.interrupted and result.step == result.total_iters
    assert 0.9 * 60 <= clock.now <= 60 + 3


def test_the_run_stops_and_saves_at_the_deadline(seasons, tmp_path, capsys):
    """With the decay over the whole schedule nothing can be shortened exactly: the deadline stops it."""
    result = train(seasons, _run_config("train.decay_fraction=1.0", "train.log_every=1000"), run=tmp_path / "r", device="cpu",
                   time_budget=TimeBudget(12.0, clock=Clock()))
    assert result.interrupted and result.step == 12
    assert result.metrics  # the steps since the last log step are logged at the stop
    assert checkpoint.latest(tmp_path / "r").step == 12
    err = capsys.readouterr().err
    assert "cannot shorten it" in err and "budget is spent at step 12" in err


def test_a_run_fitted_to_a_budget_resumes_exactly_from_any_checkpoint(seasons, tmp_path):
    """The speed drops midway, so the length is fitted again after checkpoints were written, and
    rises again once the decay has begun, when the length must stay. Every step trained at the learning rate of the final config.yaml's schedule, and a resume
    from the early checkpoint with that config trains the rest at the same rates."""
    slower_then_faster = Clock(lambda reading: 1.0 if reading < 16 else 3.0 if reading < 24 else 0.5)
    full = tmp_path / "full"
    result = train(seasons, _run_config(), run=full, device="cpu", quiet=True, time_budget=TimeBudget(60.0, clock=slower_then_faster))
    first_fit = 5 + int(55 * 0.98)  # the fit at 5 steps, at 1 it/s
    assert result.total_iters < first_fit  # fitted again, shorter, once the clock slowed
    cfg = rundir.read_config(full)
    schedule = Schedule(1, 1, cfg.train.decay_fraction, iters=cfg.train.iters)
    assert cfg.train.iters == result.total_iters

    def follows_the_final_schedule(run, steps):
        logged = logged_lr(run)
        return all(logged[n] == pytest.approx(cfg.train.lr * schedule.lr_factor(n - 1), rel=1e-6) for n in steps)

    assert follows_the_final_schedule(full, range(1, result.step + 1))
    split = tmp_path / "split"
    shutil.copytree(full, split)
    shutil.rmtree(split / "tb")
    for folder in checkpoint.list_checkpoints(split):
        if int(folder.name.split("_")[1]) > 10:
            shutil.rmtree(folder)
    again = train(seasons, cfg, run=split, device="cpu", quiet=True, resume=True, max_iters=result.step)
    assert again.step == result.step and min(logged_lr(split)) == 11
    assert follows_the_final_schedule(split, range(11, result.step + 1))
