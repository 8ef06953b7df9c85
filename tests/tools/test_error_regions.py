"""tools/error_regions.py: the parts of a synthetic scene, and the error split over them."""

import dataclasses
import importlib.util
from pathlib import Path

import numpy as np
import torch
from combogan.domains.alps_seasons.synth import SEASONS, make_scene, render

from combogan.apps.metrics import paired_scores

ROOT = Path(__file__).resolve().parents[2]
_spec = importlib.util.spec_from_file_location("error_regions", ROOT / "tools" / "error_regions.py")
error_regions = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(error_regions)

BARE = ("sky (bare)", "far ridge (bare)", "near ridge (bare)", "meadow (bare)")
OBJECTS = ("trees", "lake", "flowers", "clouds")


def test_bare_parts_and_objects_cover_each_pixel_once():
    for scene_id in range(4):
        scene = make_scene(scene_id, 40, 0)
        masks = error_regions.regions(scene, {s: render(scene, s) for s in SEASONS})
        assert np.array_equal(np.sum([masks[k] for k in BARE + OBJECTS], 0), np.ones((40, 40)))
        assert masks["trees"].any() and masks["sky (bare)"].any()
        assert masks["lake"].any() == (scene.lake is not None)


def test_trees_are_where_they_change_the_render():
    scene = make_scene(1, 40, 0)
    trees = error_regions.regions(scene, {s: render(scene, s) for s in SEASONS})["trees"]
    without = {s: render(dataclasses.replace(scene, trees=[]), s) for s in SEASONS}
    changed = np.any([np.any(render(scene, s) != without[s], -1) for s in SEASONS], 0)
    assert np.array_equal(trees, changed)


def test_the_split_adds_up_to_the_paired_l1():
    def darken(x: torch.Tensor, a: str, b: str) -> torch.Tensor:  # a fixed, pair-dependent translator
        return x * (0.5 + 0.1 * SEASONS.index(b)) - 0.1

    out = error_regions.breakdown(darken, size=24, test=2, seed=0)
    expected = []
    for i in range(2):
        truth = {s: torch.from_numpy(render(make_scene(i, 24, 0), s).copy()).permute(2, 0, 1)[None].float() / 255 for s in SEASONS}
        for a in SEASONS:
            for b in (s for s in SEASONS if s != a):
                expected.append(paired_scores((darken(truth[a] * 2 - 1, a, b).clamp(-1, 1) + 1) / 2, truth[b])["l1"])
    assert abs(out["l1"] - np.mean(expected)) < 1e-4
    parts = out["parts"]
    assert abs(sum(p["of_total"] for p in parts.values()) - 1) < 0.01  # the parts partition the pixels
    assert abs(sum(p["share"] * p["l1"] for p in parts.values()) - out["l1"]) < 1e-3
    for p in parts.values():  # every target has each part's pixels 3 times (one per source): the part's mean is theirs
        assert abs(np.mean(list(p["by_target"].values())) - p["l1"]) < 1e-3
