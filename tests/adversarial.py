"""A folder of the inputs that break image tools: every command that reads images must take it
(translate what can be translated, skip the rest with one warning each, and go on)."""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def bomb_header_png(width: int = 100_000, height: int = 100_000) -> bytes:
    """A valid PNG header that claims a gigantic image (10 gigapixels), with almost no data."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", ihdr) + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + _png_chunk(b"IEND", b"")


def make_adversarial(folder: Path) -> dict[str, list[str]]:
    """Write the set into `folder`; returns {'good': names that must translate (at their own
    size), 'bad': names that must be skipped with a warning, 'either': readable only to some
    users (a mode-000 file, which root can read), 'ignored': names a folder walk never lists}."""
    folder.mkdir(parents=True, exist_ok=True)
    good, bad = [], []
    for s in range(1, 8):
        Image.new("RGB", (s, s), (30 * s, 120, 60)).save(folder / f"tiny{s}x{s}.png")
        good.append(f"tiny{s}x{s}.png")
    Image.new("RGB", (200, 3), (200, 40, 40)).save(folder / "strip_3x200.png")
    Image.new("RGB", (3, 200), (40, 200, 40)).save(folder / "strip_200x3.png")
    frames = [Image.new("P", (20, 16), i * 40) for i in range(3)]
    frames[0].save(folder / "animated.gif", save_all=True, append_images=frames[1:], duration=50, loop=0)
    Image.new("CMYK", (24, 20), (0, 60, 120, 10)).save(folder / "cmyk.jpg")
    Image.fromarray(np.full((18, 22), 40000, np.uint16)).save(folder / "sixteen_bit.png")
    good += ["strip_3x200.png", "strip_200x3.png", "animated.gif", "cmyk.jpg", "sixteen_bit.png"]
    (folder / "bomb.png").write_bytes(bomb_header_png())
    (folder / "text.png").write_text("this is not an image\n")
    (folder / "empty.png").write_bytes(b"")
    bad += ["bomb.png", "text.png", "empty.png"]
    Image.new("RGB", (16, 12), (1, 2, 3)).save(folder / "no_permission.png")
    os.chmod(folder / "no_permission.png", 0)
    (folder / "loop_a.png").symlink_to(folder / "loop_b.png")
    (folder / "loop_b.png").symlink_to(folder / "loop_a.png")
    return {"good": good, "bad": bad, "either": ["no_permission.png"], "ignored": ["loop_a.png", "loop_b.png"]}


def size_of(path: Path) -> tuple[int, int]:
    with Image.open(path) as img:
        return img.size
