import json

import pytest
import torch
from torch import nn

from combogan.apps.baselines import HistogramMatcher
from combogan.apps.evaluate import evaluate
from combogan.apps.metrics import fid_kid, psnr, ssim
from combogan.cli import main


def test_ssim_psnr_basics():
    x = torch.rand(1, 3, 32, 32)
    assert ssim(x, x) == pytest.approx(1.0, abs=1e-5) and psnr(x, x) == 100.0
    noisy = (x + 0.1 * torch.randn_like(x)).clamp(0, 1)
    assert ssim(x, noisy) < 0.95 and 15 < psnr(x, noisy) < 25
    assert ssim(torch.rand(1, 3, 6, 6), torch.rand(1, 3, 6, 6)) < 0.9  # smaller than the window: still works


def test_edge_energy_ratio_tells_blurred_from_sharp():
    from combogan.apps.metrics import edge_energy, paired_scores

    stripes = torch.zeros(1, 3, 16, 16)
    stripes[..., ::2] = 1.0  # every horizontal neighbour differs by 1, no vertical one
    assert edge_energy(stripes) == pytest.approx(0.5)
    blurred = torch.nn.functional.avg_pool2d(stripes, 3, stride=1, padding=1, count_include_pad=False)
    assert paired_scores(stripes, stripes)["edges"] == pytest.approx(1.0)
    assert paired_scores(blurred, stripes)["edges"] < 0.5  # a blurred output keeps less than half the edges
    assert paired_scores(torch.full_like(stripes, 0.5), stripes)["edges"] == 0.0


def test_histogram_matching_moves_colours_to_the_reference(tmp_path):
    from PIL import Image

    for i in range(3):
        Image.new("RGB", (16, 16), (200, 30, 30)).save(tmp_path / f"{i}.png")
    matcher = HistogramMatcher(sorted(tmp_path.glob("*.png")), load_size=16)
    out = matcher(torch.full((3, 8, 8), 90, dtype=torch.uint8))
    assert out[0].float().mean() > 150 and out[2].float().mean() < 60


def test_eval_report_table_json_grids(trained_run, seasons, tmp_path, capsys):
    code = main(["eval", "--run", str(trained_run), "--domains", str(seasons), "--out", str(tmp_path / "ev"),
                 "--json", str(tmp_path / "r.json"), "--device", "cpu", "-q"])
    assert code == 0
    out = capsys.readouterr().out
    assert "rows: source A" in out and "mean identity" in out and "mean histogram" in out
    report = json.loads((tmp_path / "r.json").read_text())
    assert len(report["pairs"]) == 12 and all(p["paired"] == 3 for p in report["pairs"])
    for which in ("model", "identity", "histogram"):
        assert set(report["mean"][which]) == {"l1", "psnr", "ssim", "edges"}
    assert report["mean"]["identity"]["l1"] > 0.05  # seasons really differ
    assert (tmp_path / "ev" / "summer_to_winter.png").is_file() and (tmp_path / "ev" / "eval.json").is_file()
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(trained_run / "tb"))
    acc.Reload()
    assert "eval_mean/model_l1" in acc.Tags()["scalars"]


class TinyFeatures(nn.Module):
    """Stand-in for Inception (tests must not download weights)."""

    num_features = 8

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 8, 3)

    def forward(self, x):
        return self.conv(x.float()).relu().mean((2, 3)) + self.conv(x.float()).amax((2, 3))


def test_fid_kid_with_a_stand_in_feature_network():
    g = torch.Generator().manual_seed(0)
    real = torch.rand(40, 3, 24, 24, generator=g)
    scores = []
    for strength in (0.0, 0.2, 0.5):
        fid, kid = fid_kid(TinyFeatures(), 40)
        fake = (real + strength * torch.randn(real.shape, generator=g)).clamp(0, 1)
        fid.update(real, real=True), fid.update(fake, real=False)
        scores.append(float(fid.compute()))
        kid.update(real, real=True), kid.update(fake, real=False)
    assert abs(scores[0]) < 1e-3  # FID(x, x) ~ 0
    assert scores[0] < scores[1] < scores[2]  # grows with distortion


def test_eval_with_stand_in_fid_through_the_api(trained_run, seasons):
    report = evaluate(trained_run, seasons, device="cpu", fid_feature=TinyFeatures(), progress=False, max_images=3)
    assert all(p["fid"] is not None and p["kid"] is not None for p in report["pairs"])
