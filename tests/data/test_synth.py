import numpy as np
from combogan.domains.alps_seasons import synthesize
from combogan.domains.alps_seasons.synth import SEASONS, make_scene, render, render_all
from PIL import Image


def test_layout_pairs_and_disjoint_train(seasons):
    for split, n in (("train", 10), ("test", 3)):
        for s in SEASONS:
            assert len(list((seasons / split / s).glob("*.png"))) == n
    test_names = [sorted(p.name for p in (seasons / "test" / s).iterdir()) for s in SEASONS]
    assert all(names == test_names[0] for names in test_names)  # ground-truth pairs by file name
    train_ids = [{p.name for p in (seasons / "train" / s).iterdir()} for s in SEASONS]
    for i in range(4):
        for j in range(i + 1, 4):
            assert not train_ids[i] & train_ids[j]  # unpaired: disjoint scene ids
        assert not train_ids[i] & set(test_names[0])


def test_seeded_and_deterministic():
    a = render_all(5, 48, seed=1)
    b = render_all(5, 48, seed=1)
    c = render_all(5, 48, seed=2)
    assert all(np.array_equal(a[s], b[s]) for s in SEASONS)
    assert not np.array_equal(a["summer"], c["summer"])


def _whiteness(img):
    f = img.astype(float) / 255
    return (f.min(-1) > 0.8) & (f.max(-1) - f.min(-1) < 0.12)


def test_seasons_change_things_locally_not_by_a_global_colour_map():
    for scene_id in range(5):
        imgs = render_all(scene_id, 64)
        summer, winter = imgs["summer"].astype(float), imgs["winter"].astype(float)
        # winter adds snow: many more white pixels, especially on the ground (lower third)
        assert _whiteness(imgs["winter"])[43:].mean() > 0.5 > _whiteness(imgs["summer"])[43:].mean()
        # no single affine colour map explains summer -> winter: the fit leaves large residuals
        X = np.concatenate([summer.reshape(-1, 3), np.ones((64 * 64, 1))], 1)
        coef, *_ = np.linalg.lstsq(X, winter.reshape(-1, 3), rcond=None)
        residual = np.abs(X @ coef - winter.reshape(-1, 3)).mean()
        assert residual > 8.0, residual
    spring = render(make_scene(0, 64), "spring").astype(int)
    autumn = render(make_scene(0, 64), "autumn").astype(int)
    assert np.abs(spring - autumn).mean() > 10


def test_synthesize_writes_every_file(tmp_path):
    summary = synthesize(tmp_path, size=64, train=5, test=2, workers=1)
    assert summary["images"] == 4 * 5 + 4 * 2
    first_train_id = 2 + 3 * 5  # test ids first, then each season's own train range
    assert Image.open(tmp_path / "train" / "winter" / f"{first_train_id:06d}.png").size == (64, 64)
