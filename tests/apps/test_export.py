"""`combogan export`: onnxruntime (CPU) computes what PyTorch computes, for every domain's encoder
and decoder, at several sizes and batch sizes; the standalone example deploys without torch."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import torch
from PIL import Image

from combogan.apps.translator import Translator
from combogan.cli import main

SIZES = [(1, 32, 32), (3, 36, 52), (2, 8, 8), (2, 44, 28)]  # batch, height, width (multiples of 4)
TOOL = Path(__file__).parents[2] / "tools" / "onnx_translate.py"


def _cli(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def exported(trained_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx")
    assert main(["export", "--run", str(trained_run), "--out", str(out), "-q"]) == 0
    return out


def _session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_every_encoder_and_decoder_matches_pytorch(exported, trained_run):
    info = json.loads((exported / "model.json").read_text())
    model = Translator(trained_run, device="cpu").model
    k = model.arch.n_downsampling
    assert info["domains"] == model.names and info["size_rule"] == {**info["size_rule"], "multiple_of": 2**k, "min_side": 8}
    assert info["latent"] == {"channels": 8 * 2**k, "scale": 2.0**-k}
    assert info["architecture"]["ngf"] == 8 and info["source"]["step"] == Translator(trained_run).step
    g = torch.Generator().manual_seed(0)
    for name in model.names:
        enc, dec = _session(exported / f"{name}.encoder.onnx"), _session(exported / f"{name}.decoder.onnx")
        for b, h, w in SIZES:
            x = torch.rand(b, 3, h, w, generator=g) * 2 - 1
            with torch.no_grad():
                z, y = model.encode(x, name), model.decode(model.encode(x, name), name)
            np.testing.assert_allclose(enc.run(None, {"image": x.numpy()})[0], z.numpy(), rtol=0, atol=1e-4)
            np.testing.assert_allclose(dec.run(None, {"latent": z.numpy()})[0], y.numpy(), rtol=0, atol=1e-4)


def test_encode_once_decode_to_every_domain(exported, trained_run):
    model = Translator(trained_run, device="cpu").model
    x = torch.rand(2, 3, 28, 40) * 2 - 1
    latent = _session(exported / "summer.encoder.onnx").run(None, {"image": x.numpy()})[0]
    want = model.translate(x, "summer", [n for n in model.names if n != "summer"])
    for target, y in want.items():
        got = _session(exported / f"{target}.decoder.onnx").run(None, {"latent": latent})[0]
        np.testing.assert_allclose(got, y.numpy(), rtol=0, atol=1e-4)


def test_torchscript_and_fp16(trained_run, tmp_path, capsys):
    code, _, err = _cli(capsys, "export", "--run", trained_run, "--out", tmp_path / "ts", "--format", "torchscript", "--names", "summer,winter", "-q")
    assert code == 0, err
    assert sorted(p.name for p in (tmp_path / "ts").iterdir()) == ["model.json", "summer.decoder.pt", "summer.encoder.pt", "winter.decoder.pt",
                                                                  "winter.encoder.pt"]
    model = Translator(trained_run, device="cpu").model
    x = torch.rand(2, 3, 20, 32) * 2 - 1
    with torch.no_grad():
        got = torch.jit.load(str(tmp_path / "ts" / "winter.decoder.pt"))(torch.jit.load(str(tmp_path / "ts" / "summer.encoder.pt"))(x))
    torch.testing.assert_close(got, model.translate(x, "summer", "winter"), rtol=0, atol=1e-5)
    code, _, err = _cli(capsys, "export", "--run", trained_run, "--out", tmp_path / "half", "--fp16", "--names", "summer", "-q")
    assert code == 0, err
    assert json.loads((tmp_path / "half" / "model.json").read_text())["dtype"] == "float16"
    z = _session(tmp_path / "half" / "summer.encoder.onnx").run(None, {"image": x.numpy().astype(np.float16)})[0]
    assert z.dtype == np.float16
    np.testing.assert_allclose(z.astype(np.float32), model.encode(x, "summer").detach().numpy(), rtol=0, atol=5e-2)


def test_an_imported_official_model_exports_and_keeps_its_outputs(tmp_path, capsys):
    """The official ComboGAN networks, imported then exported: onnxruntime gives the official outputs."""
    combo = Path(__file__).parents[1] / "fixtures" / "official_combogan"
    assert _cli(capsys, "import", "combogan", combo, "--epoch", "1", "--names", "spring,summer,autumn", "--run", tmp_path / "run")[0] == 0
    assert _cli(capsys, "export", "--run", tmp_path / "run", "--out", tmp_path / "onnx", "-q")[0] == 0
    e = np.load(combo / "expected.npz")
    latent = _session(tmp_path / "onnx" / "spring.encoder.onnx").run(None, {"image": e["x"]})[0]
    for j, name in enumerate(["spring", "summer", "autumn"]):
        got = _session(tmp_path / "onnx" / f"{name}.decoder.onnx").run(None, {"latent": latent})[0]
        np.testing.assert_allclose(got, e[f"out_0_{j}"], rtol=0, atol=1e-4)


def test_the_standalone_example_translates_like_combogan(exported, trained_run, tmp_path, capsys):
    # Textured: on a flat image InstanceNorm divides by a ~0 deviation, which turns any two
    # runtimes' last-bit differences into visible ones.
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (23, 37, 3), dtype=np.uint8)).save(tmp_path / "in.png")
    res = subprocess.run([sys.executable, str(TOOL), str(tmp_path / "in.png"), "--model", str(exported), "--from", "summer", "--to", "winter",
                          "--out", str(tmp_path / "onnx.png")], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "torch" not in subprocess.run([sys.executable, "-c", f"import runpy,sys; sys.argv=['x','--help']; runpy.run_path('{TOOL}', run_name='x'); "
                                          "print(' '.join(m for m in sys.modules if m.split('.')[0] == 'torch'))"],
                                         capture_output=True, text=True, timeout=120).stdout
    assert _cli(capsys, "translate", "--run", trained_run, "--from", "summer", "--to", "winter", tmp_path / "in.png", "--out", tmp_path / "t",
                "--device", "cpu", "-q")[0] == 0
    a = np.asarray(Image.open(tmp_path / "onnx.png"), dtype=int)
    b = np.asarray(Image.open(tmp_path / "t" / "in.png"), dtype=int)
    assert a.shape == b.shape == (23, 37, 3) and np.abs(a - b).max() <= 1  # both at the training scale (36 px here)
    res = subprocess.run([sys.executable, str(TOOL), str(tmp_path / "in.png"), "--model", str(exported), "--from", "summer", "--to", "winter",
                          "--out", str(tmp_path / "native.png"), "--native-size"], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert _cli(capsys, "translate", "--run", trained_run, "--from", "summer", "--to", "winter", tmp_path / "in.png", "--out", tmp_path / "n",
                "--device", "cpu", "-q", "--native-size")[0] == 0
    a = np.asarray(Image.open(tmp_path / "native.png"), dtype=int)
    assert np.abs(a - np.asarray(Image.open(tmp_path / "n" / "in.png"), dtype=int)).max() <= 1 and np.abs(a - b).max() > 1


def test_export_errors_are_one_line(trained_run, tmp_path, capsys, monkeypatch):
    def one_error(args, match):
        code, _, err = _cli(capsys, *args)
        lines = err.strip().splitlines()
        assert code == 1 and len(lines) == 1 and lines[0].startswith("error: ") and match in lines[0], err

    one_error(["export", "--run", trained_run, "--out", tmp_path / "o", "--names", "mars", "-q"], "unknown domain 'mars'")
    code, _, err = _cli(capsys, "export", "--run", trained_run, "--out", tmp_path / "o", "--domains", "summer")  # train's word, not export's
    assert code == 2 and len(err.strip().splitlines()) == 1 and "export takes --names A,B" in err and not (tmp_path / "o").exists()
    (tmp_path / "file").write_text("x")
    one_error(["export", "--run", trained_run, "--out", tmp_path / "file" / "sub", "-q"], "cannot write to")
    monkeypatch.setitem(sys.modules, "onnx", None)  # as if the export extra were not installed
    one_error(["export", "--run", trained_run, "--out", tmp_path / "o2", "-q"], "pip install 'combogan[export]'")
    assert not (tmp_path / "o2").exists()
    shutil.rmtree(tmp_path / "o", ignore_errors=True)


def test_recolour_decoders_export_with_their_source_input(seasons, tmp_path, capsys):
    """model.output 'recolour_mask': each decoder graph reads (latent, source); ONNX, TorchScript
    and the standalone example translate as combogan does."""
    from conftest import tiny_config

    from combogan.apps.train import train

    output = "recolour_mask"
    run = tmp_path / "run"
    train(seasons, tiny_config(f"model.output={output}"), run=run, device="cpu", max_iters=4, quiet=True)
    model = Translator(run, device="cpu").model
    assert _cli(capsys, "export", "--run", run, "--out", tmp_path / "onnx", "--names", "summer,winter", "-q")[0] == 0
    assert _cli(capsys, "export", "--run", run, "--out", tmp_path / "ts", "--format", "torchscript", "--names", "summer,winter", "-q")[0] == 0
    info = json.loads((tmp_path / "onnx" / "model.json").read_text())
    assert info["architecture"]["output"] == output and "decoder(latent, source)" in info["usage"]
    x = torch.rand(2, 3, 28, 40, generator=torch.Generator().manual_seed(0)) * 2 - 1
    want = model.translate(x, "summer", "winter")
    latent = _session(tmp_path / "onnx" / "summer.encoder.onnx").run(None, {"image": x.numpy()})[0]
    got = _session(tmp_path / "onnx" / "winter.decoder.onnx").run(None, {"latent": latent, "source": x.numpy()})[0]
    np.testing.assert_allclose(got, want.numpy(), rtol=0, atol=1e-4)
    with torch.no_grad():
        ts = torch.jit.load(str(tmp_path / "ts" / "winter.decoder.pt"))(torch.jit.load(str(tmp_path / "ts" / "summer.encoder.pt"))(x), x)
    torch.testing.assert_close(ts, want, rtol=0, atol=1e-5)
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (23, 37, 3), dtype=np.uint8)).save(tmp_path / "in.png")
    res = subprocess.run([sys.executable, str(TOOL), str(tmp_path / "in.png"), "--model", str(tmp_path / "onnx"), "--from", "summer", "--to", "winter",
                          "--out", str(tmp_path / "onnx.png")], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert _cli(capsys, "translate", "--run", run, "--from", "summer", "--to", "winter", tmp_path / "in.png", "--out", tmp_path / "t", "-q")[0] == 0
    a, b = (np.asarray(Image.open(p), dtype=int) for p in (tmp_path / "onnx.png", tmp_path / "t" / "in.png"))
    assert a.shape == b.shape == (23, 37, 3) and np.abs(a - b).max() <= 1
