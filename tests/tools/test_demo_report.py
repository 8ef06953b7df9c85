"""tools/demo_report.py, the last step of `make demo`: its numbers are computed against the true
winter renders, so outputs equal to the truth must score perfectly and the inputs themselves
must score as the identity baseline; and it writes the side-by-side comparison."""

import shutil
import subprocess
import sys
from pathlib import Path

from combogan.domains.alps_seasons import synthesize
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]


def _report(demo: Path) -> dict[str, tuple[float, float, float]]:
    out = subprocess.run([sys.executable, str(ROOT / "tools" / "demo_report.py"), str(demo)],
                         capture_output=True, text=True, check=True).stdout
    rows = {}
    for line in out.splitlines():
        if "L1" in line and "SSIM" in line:
            words = line.split()
            rows[words[0]] = (float(words[words.index("L1") + 1]), float(words[words.index("SSIM") + 1]),
                              float(words[words.index("kept") + 1].rstrip("%")))
    return rows


def test_report_scores_against_the_truth_and_writes_the_comparison(tmp_path):
    synthesize(tmp_path / "data", size=32, train=4, test=3, workers=1)
    shutil.copytree(tmp_path / "data" / "test" / "winter", tmp_path / "winter")  # a perfect model
    rows = _report(tmp_path)
    assert rows["model"] == (0.0, 1.0, 100.0)
    assert rows["histogram"][0] > 0.05 and rows["identity"][0] > rows["histogram"][0]
    assert rows["identity"][2] > 50  # the summer trees stand where the winter ones do
    compare = Image.open(tmp_path / "compare.png")
    assert compare.size == (3 * 3 * 32 + 4 * 2, 3 * 3 * 32 + 4 * 2)  # 3 rows x (input, output, truth), 3x, padded

    shutil.rmtree(tmp_path / "winter")
    shutil.copytree(tmp_path / "data" / "test" / "summer", tmp_path / "winter")  # a model that does nothing
    rows = _report(tmp_path)
    assert rows["model"] == rows["identity"]

    for out in (tmp_path / "winter").iterdir():  # snow everywhere: no tree survives
        Image.new("RGB", (32, 32), (245, 247, 252)).save(out)
    assert _report(tmp_path)["model"][2] == 0.0
