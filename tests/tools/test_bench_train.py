"""tools/bench_train.py, the step timer: it plans each variant as `train` would (refusing what
`train` refuses), and a tiny CPU run prints one complete JSON row per variant."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from combogan.config import load
from combogan.errors import UserError

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("bench_train", ROOT / "tools" / "bench_train.py")
bench_train = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_train)

CUDA = torch.device("cuda")  # planning needs no GPU: nothing is allocated


def test_graphs_are_refused_where_train_refuses_them():
    with pytest.raises(UserError, match="train.diffaugment draws new transforms"):
        bench_train.variant_plan("graphs", load(None, []), CUDA)
    assert bench_train.variant_plan("fused+graphs", load(None, ["train.diffaugment="]), CUDA).cuda_graphs
    assert bench_train.variant_plan("graphs", load(str(ROOT / "configs" / "alps_seasons.yaml"), []), CUDA).cuda_graphs


def _bench(*args: str) -> subprocess.CompletedProcess:
    tiny = ["--set", "model.ngf=4", "--set", "model.ndf=4", "--set", "model.n_blocks=2", "--crop", "32",
            "--domains", "2", "--warmup", "1", "--windows", "1", "--window-iters", "1", "--device", "cpu"]
    return subprocess.run([sys.executable, str(ROOT / "tools" / "bench_train.py"), *tiny, *args],
                          capture_output=True, text=True, timeout=300)


def test_a_tiny_cpu_run_prints_one_row_per_variant():
    proc = _bench("--variants", "eager", "auto")
    assert proc.returncode == 0, proc.stderr
    rows = [json.loads(line) for line in proc.stdout.splitlines()]
    assert [r["variant"] for r in rows] == ["eager", "auto"]
    assert all(r["ms_per_iter"] > 0 and r["gflop_per_iter"] > 0 and r["crop"] == 32 for r in rows)
    assert rows[0]["speedup_vs_eager"] == 1.0


def test_a_refused_variant_is_one_error_line():
    proc = _bench("--variants", "graphs")
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == ["error: perf.cuda_graphs=on cannot be used here: CUDA graphs need a CUDA GPU"]
