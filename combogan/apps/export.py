"""`combogan export`: each domain's encoder and decoder as its own graph (ONNX or TorchScript).

N domains ship as 2N small graphs; an input is encoded once by its domain's encoder and decoded
by any target's decoder. Graphs take any batch, height and width that are multiples of 4 (and
at least 8); model.json says how to pad other sizes, so a runtime without torch (onnxruntime,
numpy, pillow: tools/onnx_translate.py) translates exactly as `combogan translate` does.
"""

from __future__ import annotations

import dataclasses
import time
import warnings
from pathlib import Path

import torch
from torch import nn

from .. import atomic
from ..errors import UserError
from ..model.combogan import MIN_SIDE
from .translator import Translator

FORMATS = {"onnx": "onnx", "torchscript": "pt"}
OPSET = 17


def _require_onnx() -> None:
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError:
        raise UserError("ONNX export needs the export extra: pip install 'combogan[export]' (onnx, onnxscript, onnxruntime)") from None


def _export_onnx(net: nn.Module, examples: dict[str, torch.Tensor], path: Path, output_name: str) -> None:
    """examples: the graph's inputs by name, in the order net.forward takes them."""
    dims = {0: "batch", 2: "height", 3: "width"}
    tmp = path.with_name(f".{path.name}.tmp")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the exporter's deprecation chatter is not the user's business
        torch.onnx.export(net, tuple(examples.values()), str(tmp), opset_version=OPSET, input_names=list(examples), output_names=[output_name],
                          dynamic_axes={**{name: dims for name in examples}, output_name: dims}, dynamo=False)
    tmp.replace(path)


def _export_torchscript(net: nn.Module, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # TorchScript is deprecated but still what most runtimes load
        torch.jit.script(net).save(str(tmp))
    tmp.replace(path)


def export(run: str | Path | None, out: str | Path, fmt: str = "onnx", names: list[str] | None = None, fp16: bool = False,
           announce: bool = True, weights: str = "auto") -> Path:
    """Write out/<domain>.encoder.<ext>, out/<domain>.decoder.<ext> and out/model.json."""
    if fmt not in FORMATS:
        raise UserError(f"unknown format '{fmt}' (use onnx or torchscript)")
    if fmt == "onnx":
        _require_onnx()
    tr = Translator(run, device="cpu", announce=announce, weights=weights)
    names = [tr.model.require(d) for d in names] if names else tr.domains
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".combogan-write-test"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise UserError(f"cannot write to {out}: {exc.strerror or exc}") from None
    dtype = torch.float16 if fp16 else torch.float32
    model = tr.model.to(dtype).eval()
    arch = model.arch
    image = torch.zeros(1, 3, 64, 64, dtype=dtype)
    latent = model.encoders[names[0]](image)
    # Outputs that recolour their source (model.output 'recolour_mask') also read the padded image the latent came from.
    decoder_inputs = {"latent": latent, "source": image} if model.decoders[names[0]].output.reads_source else {"latent": latent}
    files = {}
    ext = FORMATS[fmt]
    with torch.no_grad():
        for name in names:
            enc, dec = out / f"{name}.encoder.{ext}", out / f"{name}.decoder.{ext}"
            if fmt == "onnx":
                _export_onnx(model.encoders[name], {"image": image}, enc, "latent")
                _export_onnx(model.decoders[name], decoder_inputs, dec, "image")
            else:
                _export_torchscript(model.encoders[name], enc)
                _export_torchscript(model.decoders[name], dec)
            files[name] = {"encoder": enc.name, "decoder": dec.name}
    manifest = tr.manifest
    info = {
        "format": fmt, "opset": OPSET if fmt == "onnx" else None, "dtype": "float16" if fp16 else "float32",
        "domains": names, "files": files,
        "input": {"layout": "NCHW, RGB", "range": [-1.0, 1.0], "normalisation": "x = pixel / 127.5 - 1 (uint8 pixels)",
                  "output": "tanh range [-1, 1]; pixel = round((y + 1) * 127.5), clipped to 0..255"},
        "size_rule": {"multiple_of": arch.size_multiple, "min_side": MIN_SIDE,
                      "padding": f"pad bottom and right to a multiple of {arch.size_multiple} and at least {MIN_SIDE} with reflection (edge replication "
                                 "where the image is not larger than the padding), run, then crop the output back"},
        "latent": {"channels": arch.size_multiple * arch.ngf, "scale": 1 / arch.size_multiple},
        "training_scale": {"shorter_side": tr.config.data.load_size,
                           "note": "translate with the shorter side resized to this (the scale the networks learned), then resize back"},
        "usage": f"latent = <source>.encoder(image); translated = <target>.decoder({', '.join(decoder_inputs)}): encode once, decode to every target",
        "architecture": dataclasses.asdict(arch),
        "source": {"run": str(tr.run.resolve()), "step": tr.step, "weights": tr.weights, "imported": manifest.get("imported"),
                   "exported": time.strftime("%Y-%m-%dT%H:%M:%S%z")},
    }
    atomic.write_json(out / "model.json", info)
    if announce:
        tr.note_weights()
    return out
