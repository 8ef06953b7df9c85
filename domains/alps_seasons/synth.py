"""Procedural alpine landscapes rendered in four seasons, with ground truth.

A scene (seeded by its id) fixes the geometry: two mountain ridges, a meadow, maybe a lake,
conifers and deciduous trees, flower spots, and a shading texture. A season then decides how
each part looks, locally: snow on the ground, on the peaks down to a season-dependent snow
line and on conifer tops in winter; bare deciduous trees in winter, orange/red crowns in
autumn, blossoms and meadow flowers in spring; a different sky. Rendering the same scene in
two seasons gives a ground-truth translation pair.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw

SEASONS = ("spring", "summer", "autumn", "winter")


@dataclass(frozen=True)
class Look:
    sky_top: tuple[int, int, int]
    sky_bottom: tuple[int, int, int]
    far_snow: float  # fraction of the far ridge's height (from the top) under snow
    near_snow: float
    near_color: tuple[int, int, int]  # forested slopes of the near ridge
    ground: tuple[int, int, int]
    water: tuple[int, int, int]
    crowns: tuple[tuple[int, int, int], ...] | None  # deciduous crown colours; None = bare
    flowers: float  # fraction of the scene's flower spots in bloom
    clouds: float


LOOKS = {
    "spring": Look((105, 165, 230), (200, 225, 245), 0.50, 0.12, (95, 145, 70), (125, 190, 85), (60, 110, 170), ((150, 205, 100), (165, 215, 110)), 1.0, 0.3),
    "summer": Look((35, 105, 215), (150, 200, 250), 0.14, 0.0, (45, 105, 45), (75, 150, 55), (40, 95, 165), ((50, 130, 45), (60, 140, 50)), 0.3, 0.1),
    "autumn": Look((120, 140, 170), (215, 200, 170), 0.06, 0.0, (120, 95, 45), (175, 150, 75), (70, 90, 110), ((215, 95, 30), (230, 170, 40), (180, 50, 30)), 0.0, 0.5),
    "winter": Look((150, 160, 178), (226, 229, 236), 1.00, 1.0, (232, 236, 244), (241, 243, 249), (200, 220, 235), None, 0.0, 0.7),
}
ROCK = np.array([112, 116, 132], np.float32)
SNOW = np.array([245, 247, 252], np.float32)
CONIFER = (28, 72, 38)
TRUNK = (92, 62, 38)
FLOWER_COLORS = ((240, 120, 170), (250, 220, 60), (250, 250, 250), (170, 110, 220))


@dataclass(frozen=True)
class Scene:
    far: np.ndarray  # y of the far ridge per column
    near: np.ndarray
    horizon: np.ndarray  # y where the meadow starts, per column
    texture: np.ndarray  # (H, W) in [-1, 1], low frequency
    snow_jitter: np.ndarray  # (W,) wobble of the snow line
    lake: tuple[float, float, float, float] | None  # cx, cy, rx, ry
    trees: list[tuple[float, float, float, bool, int]]  # x, y(base), height, conifer?, colour pick
    flowers: np.ndarray  # (K, 4): x, y, colour index, bloom rank in [0, 1)
    clouds: list[tuple[float, float, float]]


def _ridge(rng: np.random.Generator, w: int, base: float, amp: float) -> np.ndarray:
    x = np.linspace(0, 1, w, dtype=np.float32)
    y = np.full(w, base, np.float32)
    for octave in range(5):
        freq = (1.5 + rng.random()) * 2**octave
        y += amp / 1.8**octave * np.sin(2 * np.pi * (freq * x + rng.random())).astype(np.float32)
    return y


def _noise(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    small = Image.fromarray(rng.random((cells, cells), dtype=np.float32) * 255).convert("L")
    return np.asarray(small.resize((w, h), Image.BICUBIC), np.float32) / 127.5 - 1.0


def make_scene(scene_id: int, size: int, seed: int = 0) -> Scene:
    rng = np.random.default_rng([seed, scene_id, 31337])
    h = w = size
    horizon = _ridge(rng, w, h * rng.uniform(0.58, 0.68), h * 0.012)
    far = np.minimum(_ridge(rng, w, h * rng.uniform(0.22, 0.32), h * 0.09), horizon - 2)
    near = np.minimum(np.maximum(_ridge(rng, w, h * rng.uniform(0.40, 0.48), h * 0.06), far + 3), horizon - 1)
    lake = None
    if rng.random() < 0.5:
        lake = (w * rng.uniform(0.25, 0.75), h * rng.uniform(0.75, 0.85), w * rng.uniform(0.12, 0.25), h * rng.uniform(0.04, 0.07))
    trees = []
    for _ in range(rng.integers(6, 16)):
        x, y = rng.uniform(0, w), rng.uniform(horizon.mean() + 2, h * 1.02)
        if lake and ((x - lake[0]) / lake[2]) ** 2 + ((y - lake[1]) / lake[3]) ** 2 < 1.4:
            continue
        height = h * (0.07 + 0.22 * (y - horizon.mean()) / (h - horizon.mean() + 1e-6)) * rng.uniform(0.8, 1.2)
        trees.append((x, y, height, bool(rng.random() < 0.55), int(rng.integers(0, 3))))
    trees.sort(key=lambda t: t[1])  # far (higher on screen) first, so nearer trees overlap them
    n_flowers = int(size * size / 90)
    flowers = np.stack([rng.uniform(0, w, n_flowers), rng.uniform(horizon.mean() + 1, h, n_flowers), rng.integers(0, 4, n_flowers), rng.random(n_flowers)], 1)
    clouds = [(rng.uniform(0, w), rng.uniform(0.04, 0.2) * h, rng.uniform(0.08, 0.18) * w) for _ in range(rng.integers(1, 4))]
    return Scene(far, near, horizon, _noise(rng, h, w, 6), rng.uniform(-0.06, 0.06, 1) + 0.04 * _noise(rng, 1, w, 8)[0], lake, trees, flowers, clouds)


def render(scene: Scene, season: str) -> np.ndarray:
    """The scene in `season` as an (H, W, 3) uint8 array."""
    look = LOOKS[season]
    h, w = scene.texture.shape
    ys = np.arange(h, dtype=np.float32)[:, None]
    t = (ys / h).repeat(w, 1)
    img = (np.array(look.sky_top, np.float32) * (1 - t[..., None]) + np.array(look.sky_bottom, np.float32) * t[..., None])
    shade = 1.0 + 0.10 * scene.texture[..., None]

    far_mask = ys >= scene.far[None]
    depth = (ys - scene.far[None]) / np.maximum(scene.horizon - scene.far, 1)[None]  # 0 at peak, 1 at base
    snowy = depth < look.far_snow + scene.snow_jitter[None]
    far_col = np.where(snowy[..., None], SNOW, ROCK * (0.85 + 0.3 * depth[..., None]))
    img = np.where(far_mask[..., None], far_col * shade, img)

    near_mask = ys >= scene.near[None]
    depth = (ys - scene.near[None]) / np.maximum(scene.horizon - scene.near, 1)[None]
    snowy = depth < look.near_snow + scene.snow_jitter[None]
    near_col = np.where(snowy[..., None], SNOW, np.array(look.near_color, np.float32))
    img = np.where(near_mask[..., None], near_col * (0.9 + 0.15 * scene.texture[..., None]), img)

    ground_mask = ys >= scene.horizon[None]
    img = np.where(ground_mask[..., None], np.array(look.ground, np.float32) * (1.0 + 0.12 * scene.texture[..., None]), img)

    canvas = Image.fromarray(img.clip(0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(canvas)
    for cx, cy, r in scene.clouds:
        if look.clouds > 0:
            grey = int(235 - 40 * look.clouds)
            draw.ellipse([cx - r, cy - r * 0.35, cx + r, cy + r * 0.35], fill=(grey, grey, grey + 5))
    if scene.lake:
        cx, cy, rx, ry = scene.lake
        draw.ellipse([cx - rx, cy - ry, cx + rx, cy + ry], fill=look.water)
    bloom = scene.flowers[scene.flowers[:, 3] < look.flowers]
    r = max(0.6, h / 128)
    for x, y, c, _ in bloom:
        draw.ellipse([x - r, y - r, x + r, y + r], fill=FLOWER_COLORS[int(c)])
    for x, y, th, conifer, pick in scene.trees:
        _tree(draw, x, y, th, conifer, pick, look, season)
    return np.asarray(canvas)


def _tree(draw: ImageDraw.ImageDraw, x: float, y: float, th: float, conifer: bool, pick: int, look: Look, season: str) -> None:
    tw = max(1.0, th * 0.08)
    draw.rectangle([x - tw, y - th * 0.25, x + tw, y], fill=TRUNK)
    if conifer:
        for k in range(3):  # three stacked tiers
            top = y - th * (1.0 - 0.22 * k)
            base = y - th * (0.2 + 0.05 * (2 - k))
            half = th * (0.18 + 0.07 * k)
            draw.polygon([(x, top), (x - half, base), (x + half, base)], fill=CONIFER)
            if season == "winter":  # snow caps the upper part of each tier
                cap = top + (base - top) * 0.55
                draw.polygon([(x, top), (x - half * 0.55, cap), (x + half * 0.55, cap)], fill=(240, 244, 250))
        return
    cy, rr = y - th * 0.62, th * 0.32
    if look.crowns is None:  # winter: bare branches
        for dx in (-0.7, 0.0, 0.7):
            draw.line([(x, y - th * 0.25), (x + dx * rr, cy - rr * 0.6)], fill=TRUNK, width=max(1, int(tw)))
        return
    draw.ellipse([x - rr, cy - rr, x + rr, cy + rr], fill=look.crowns[pick % len(look.crowns)])
    if season == "spring":  # blossoms
        for k in range(5):
            a = 2 * np.pi * (k / 5 + pick / 7)
            bx, by, br = x + 0.55 * rr * np.cos(a), cy + 0.55 * rr * np.sin(a), max(0.8, rr * 0.16)
            draw.ellipse([bx - br, by - br, bx + br, by + br], fill=(245, 170, 200))


def render_all(scene_id: int, size: int, seasons: tuple[str, ...] = SEASONS, seed: int = 0) -> dict[str, np.ndarray]:
    scene = make_scene(scene_id, size, seed)
    return {s: render(scene, s) for s in seasons}
