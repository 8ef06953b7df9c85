"""Translate an image with exported ONNX graphs, without torch: onnxruntime, numpy and pillow.

    combogan export --run runs/alps --out exported/
    python tools/onnx_translate.py photo.jpg --model exported/ --from summer --to winter --out winter.png

The proof that an export deploys: model.json says how inputs are scaled and padded, the source
domain's encoder runs once and the target's decoder reads its latent. As `combogan translate`,
it works at the training scale (the shorter side at model.json's training_scale) and saves the
output at the input's size; --native-size works at the input's own size.
"""

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
from PIL import Image, ImageOps


def pad(x: np.ndarray, multiple: int, min_side: int) -> np.ndarray:
    """Pad (N, C, H, W) bottom/right to a multiple and at least min_side, as model.json says."""
    h, w = x.shape[-2:]
    ph, pw = max(min_side, h + (-h) % multiple) - h, max(min_side, w + (-w) % multiple) - w
    mode = "reflect" if h > ph and w > pw else "edge"
    return np.pad(x, ((0, 0), (0, 0), (0, ph), (0, pw)), mode=mode)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("image")
    p.add_argument("--model", required=True, help="folder written by `combogan export` (ONNX)")
    p.add_argument("--from", dest="source", required=True)
    p.add_argument("--to", dest="target", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--native-size", action="store_true", help="translate at the image's own size, not the training scale")
    args = p.parse_args()
    folder = Path(args.model)
    info = json.loads((folder / "model.json").read_text())
    for name in (args.source, args.target):
        if name not in info["files"]:
            sys.exit(f"error: unknown domain '{name}'; this export has: {', '.join(info['files'])}")
    dtype = np.float16 if info["dtype"] == "float16" else np.float32
    img = ImageOps.exif_transpose(Image.open(args.image)).convert("RGB")
    size = img.size
    shorter = info.get("training_scale", {}).get("shorter_side")
    if shorter and not args.native_size:
        scale = shorter / min(size)
        img = img.resize((max(1, round(size[0] * scale)), max(1, round(size[1] * scale))), Image.BILINEAR)
    x = (np.asarray(img, dtype=np.float32) / 127.5 - 1.0).transpose(2, 0, 1)[None]
    h, w = x.shape[-2:]
    x = pad(x, info["size_rule"]["multiple_of"], info["size_rule"]["min_side"]).astype(dtype)
    encoder = ort.InferenceSession(str(folder / info["files"][args.source]["encoder"]), providers=["CPUExecutionProvider"])
    decoder = ort.InferenceSession(str(folder / info["files"][args.target]["decoder"]), providers=["CPUExecutionProvider"])
    latent = encoder.run(None, {"image": x})[0]
    # a decoder that recolours its source (model.output 'recolour_mask') also reads the padded image
    feeds = {"latent": latent, "source": x} if len(decoder.get_inputs()) == 2 else {"latent": latent}
    y = decoder.run(None, feeds)[0][0, :, :h, :w].astype(np.float32)
    pixels = np.round((np.clip(y, -1, 1) + 1) * 127.5).astype(np.uint8).transpose(1, 2, 0)
    out = Image.fromarray(pixels)
    out = out if out.size == size else out.resize(size, Image.BILINEAR)  # back to the input's size
    out.save(args.out)
    print(f"{args.image} ({args.source}) -> {args.out} ({args.target})")


if __name__ == "__main__":
    main()
