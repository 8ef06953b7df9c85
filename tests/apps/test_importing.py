"""`combogan import`: checkpoints written by the official CycleGAN and ComboGAN code (copies in
tests/fixtures/, with the outputs the official networks gave) become ordinary runs that
reproduce those outputs, continue training and grow."""

import itertools
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from reference_combogan import official_two_view_reference
from reference_cyclegan import RefPool, ref_generator, ref_patchgan, reference_cyclegan_step

from combogan.apps.translator import Translator
from combogan.cli import main
from combogan.config import ModelConfig, load
from combogan.runs import checkpoint
from combogan.training.state import TrainState
from combogan.training.step import Step

FIX = Path(__file__).parents[1] / "fixtures"
CYCLE, COMBO = FIX / "official_cyclegan", FIX / "official_combogan"


def _cli(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def _one_error(capsys, args, match):
    code, _, err = _cli(capsys, *args)
    lines = err.strip().splitlines()
    assert code == 1 and len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    assert match in lines[0], lines[0]


@pytest.fixture
def horse_zebra(tmp_path, capsys):
    run = tmp_path / "hz"
    code, out, err = _cli(capsys, "import", "cyclegan", CYCLE, "--names", "horse,zebra", "--run", run)
    assert code == 0, err
    return run


def test_cyclegan_import_reproduces_the_official_outputs(horse_zebra, capsys):
    e = np.load(CYCLE / "expected.npz")
    tr = Translator(horse_zebra, device="cpu")
    assert tr.domains == ["horse", "zebra"] and tr.step == 0
    x_a, x_b = torch.from_numpy(e["x_a"]), torch.from_numpy(e["x_b"])
    torch.testing.assert_close(tr.translate(x_a, "horse", "zebra"), torch.from_numpy(e["G_A_x_a"]), rtol=0, atol=1e-5)
    torch.testing.assert_close(tr.translate(x_b, "zebra", "horse"), torch.from_numpy(e["G_B_x_b"]), rtol=0, atol=1e-5)
    with torch.no_grad():  # D_A judges zebras (domain B), D_B horses
        [(_, d_a)], [(_, d_b)] = tr.model.discriminators["zebra"](x_b), tr.model.discriminators["horse"](x_a)  # single PatchGANs
        torch.testing.assert_close(d_a, torch.from_numpy(e["D_A_x_b"]), rtol=0, atol=1e-5)
        torch.testing.assert_close(d_b, torch.from_numpy(e["D_B_x_a"]), rtol=0, atol=1e-5)
    assert tr.model.arch.ngf == 8 and tr.model.arch.n_blocks == 6 and tr.model.arch.ndf == 8
    assert tr.model.arch.n_layers_d_local == 0  # the official critic alone, whatever combogan's default
    code, out, _ = _cli(capsys, "info", horse_zebra)
    assert code == 0 and "imported from: official CycleGAN, epoch latest" in out and "latest_net_G_A.pth" in out
    assert "fresh Adam states" in out


def test_zoo_style_single_direction_files_and_the_legacy_file(tmp_path, capsys):
    """horse2zebra.pth + zebra2horse.pth (no critics); a PyTorch < 0.4 file with InstanceNorm
    running statistics imports to the same outputs."""
    e = np.load(CYCLE / "expected.npz")
    code, _, err = _cli(capsys, "import", "cyclegan", "--g-ab", CYCLE / "legacy_net_G_A.pth", "--g-ba", CYCLE / "latest_net_G_B.pth",
                        "--names", "horse,zebra", "--run", tmp_path / "zoo")
    assert code == 0, err
    tr = Translator(tmp_path / "zoo", device="cpu")
    torch.testing.assert_close(tr.translate(torch.from_numpy(e["x_a"]), "horse", "zebra"), torch.from_numpy(e["G_A_x_a"]), rtol=0, atol=1e-5)
    assert json.loads((tmp_path / "zoo" / "manifest.json").read_text())["imported"]["fresh_critics"] == ["horse", "zebra"]
    assert tr.model.arch.n_layers_d_local == ModelConfig().n_layers_d_local  # fresh critics are the default's


def test_combogan_import_reproduces_every_encoder_decoder_pair(tmp_path, capsys):
    names = ["spring", "summer", "autumn"]
    code, out, err = _cli(capsys, "import", "combogan", COMBO, "--epoch", "1", "--names", ",".join(names), "--run", tmp_path / "c")
    assert code == 0, err
    e = np.load(COMBO / "expected.npz")
    tr = Translator(tmp_path / "c", device="cpu")
    assert (tr.model.arch.activation, tr.model.arch.upsample, tr.model.arch.n_blocks) == ("prelu", "transpose4", 9)
    x = torch.from_numpy(e["x"])
    for (i, a), (j, b) in itertools.product(enumerate(names), repeat=2):
        with torch.no_grad():
            got = tr.model.decode(tr.model.encode(x, a), b)
        torch.testing.assert_close(got, torch.from_numpy(e[f"out_{i}_{j}"]), rtol=0, atol=1e-5, msg=lambda m, i=i, j=j: f"{i}->{j}: {m}")
    # The official critics come along, as two-view critics computing the official function.
    assert (tr.model.arch.discriminator, tr.model.arch.ndf, tr.model.arch.n_layers_d, tr.model.arch.n_layers_d_local) == ("two_view", 8, 4, 0)
    assert "critics: the official two-view critics" in out
    for i, name in enumerate(names):
        official = checkpoint.safe_load(COMBO / f"1_net_D{i}.pth")
        with torch.no_grad():
            got = tr.model.discriminators[name](x)
        for (_, g), w in zip(got, official_two_view_reference(official, x, 4), strict=True):
            torch.testing.assert_close(g[:, 0], w, rtol=0, atol=1e-5)
    # Without the D files: fresh critics, combogan's 70x70 PatchGAN (measured better).
    gens = tmp_path / "generators_only"
    gens.mkdir()
    for f in COMBO.glob("1_net_G*.pth"):
        shutil.copy(f, gens)
    code, out, err = _cli(capsys, "import", "combogan", gens, "--epoch", "1", "--names", ",".join(names), "--run", tmp_path / "g")
    assert code == 0 and "fresh PatchGAN critics" in out, err
    arch = Translator(tmp_path / "g", device="cpu").model.arch
    assert (arch.discriminator, arch.ndf, arch.n_layers_d, arch.n_layers_d_local) == ("patchgan", 64, 3, ModelConfig().n_layers_d_local)


def test_continued_training_of_an_imported_pair_is_the_official_step(horse_zebra):
    """One step from the imported state, identity on, pools on, float64: the same losses and the
    same networks afterwards as the independent CycleGAN reference (tests/training/test_step.py),
    whose networks load the official files directly."""
    class Official(torch.nn.Module):  # the official classes keep their layers in `.model`
        def __init__(self, net):
            super().__init__()
            self.model = net

        def forward(self, x):
            return self.model(x)

    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        model, _ = checkpoint.load_model(horse_zebra)
        model = model.double().train()
        # The official training step: CycleGAN's settings (configs/cyclegan.yaml), which the
        # imported run's own config (combogan's defaults) need not be.
        official = load(Path(__file__).parents[2] / "configs" / "cyclegan.yaml")
        state = TrainState(model, official.train)
        for n in model.names:
            state.add(n)
        refs = {}
        for key, net in (("G_A", ref_generator(8, 6)), ("G_B", ref_generator(8, 6)), ("D_A", ref_patchgan(8)), ("D_B", ref_patchgan(8))):
            refs[key] = Official(net)
            refs[key].load_state_dict(checkpoint.safe_load(CYCLE / f"latest_net_{key}.pth"))
        opt_G = torch.optim.Adam(itertools.chain(refs["G_A"].parameters(), refs["G_B"].parameters()), lr=2e-4, betas=(0.5, 0.999))
        opt_D = torch.optim.Adam(itertools.chain(refs["D_A"].parameters(), refs["D_B"].parameters()), lr=2e-4, betas=(0.5, 0.999))
        pools = [RefPool(50, state.pools[n].generator.get_state()) for n in ("horse", "zebra")]
        g = torch.Generator().manual_seed(3)
        real_a, real_b = (torch.rand(2, 3, 32, 32, generator=g, dtype=torch.float64) * 2 - 1 for _ in range(2))
        ref = reference_cyclegan_step(refs["G_A"], refs["G_B"], refs["D_A"], refs["D_B"], opt_G, opt_D, *pools, real_a, real_b, 10.0, 0.5)
        assert official.loss.lambda_identity == 0.5
        got = Step(model, state, official.loss)(("horse", "zebra"), real_a, real_b)
        names = {"G_gan/zebra": "G_A", "G_gan/horse": "G_B", "cycle/horse": "cycle_A", "cycle/zebra": "cycle_B",
                 "idt/zebra": "idt_A", "idt/horse": "idt_B", "D/zebra": "D_A", "D/horse": "D_B"}
        for mine, theirs in names.items():
            assert got[mine].item() == pytest.approx(ref[theirs].item(), rel=1e-9), mine
        x = torch.rand(1, 3, 24, 24, generator=g, dtype=torch.float64) * 2 - 1
        with torch.no_grad():
            torch.testing.assert_close(model.translate(x, "horse", "zebra"), refs["G_A"](x), rtol=1e-9, atol=1e-12)
            torch.testing.assert_close(model.discriminators["horse"](x)[0][1], refs["D_B"](x), rtol=1e-9, atol=1e-12)
    finally:
        torch.set_default_dtype(old)


def test_imported_runs_resume_and_grow(horse_zebra, seasons, tmp_path, capsys):
    data = tmp_path / "hz_data"
    for split, letter in itertools.product(("train", "test"), "AB"):
        shutil.copytree(seasons / split / {"A": "summer", "B": "winter"}[letter], data / f"{split}{letter}")
    (data / "domains.yaml").write_text("names: {trainA: horse, trainB: zebra}\n")
    tiny = ["--set", "data.load_size=36", "--set", "data.crop_size=32", "--set", "data.num_workers=0"]
    code, out, err = _cli(capsys, "train", "--domains", data, "--run", horse_zebra, "--resume", "--max-iters", "2", "--device", "cpu", "-q", *tiny)
    assert code == 0 and "step 2" in out, err
    assert checkpoint.latest(horse_zebra).step == 2
    # The official ComboGAN run grows by a fourth season (its old critics are never trained).
    code, _, err = _cli(capsys, "import", "combogan", COMBO, "--epoch", "1", "--names", "spring,summer,autumn", "--run", tmp_path / "c")
    assert code == 0, err
    _one_error(capsys, ["add-domain", "--run", tmp_path / "c", "--domain", f"winter={seasons / 'train' / 'winter'}", "--device", "cpu"],
               "was imported and names no dataset; pass --data DIR")
    code, out, err = _cli(capsys, "add-domain", "--run", tmp_path / "c", "--domain", f"winter={seasons / 'train' / 'winter'}",
                          "--data", seasons, "--max-iters", "2", "--device", "cpu", "-q", *tiny)
    assert code == 0, err
    assert Translator(tmp_path / "c", device="cpu").domains == ["spring", "summer", "autumn", "winter"]


def test_bad_imports_are_one_line_and_write_nothing(tmp_path, capsys):
    out = tmp_path / "out"
    cases = [
        (["import", "cyclegan", tmp_path / "nowhere", "--names", "a,b"], "folder not found"),
        (["import", "cyclegan", tmp_path, "--names", "a,b"], "latest_net_G_A.pth not found"),
        (["import", "cyclegan", CYCLE, "--names", "a,b,c"], "a CycleGAN model has 2 domains, got 3"),
        (["import", "cyclegan", CYCLE, "--names", "a,b", "--epoch", "7"], "this folder has latest_net_G_A.pth, legacy_net_G_A.pth; pass --epoch"),
        (["import", "combogan", COMBO, "--epoch", "1", "--names", "a,b"], "holds 6 generator files for epoch 1 (3 domains) but --names gives 2"),
        (["import", "combogan", COMBO, "--epoch", "9", "--names", "a,b,c"], "epochs here: 1; pass --epoch"),
    ]
    partial = tmp_path / "partial"
    partial.mkdir()
    for f in [*COMBO.glob("1_net_G*.pth"), COMBO / "1_net_D0.pth", COMBO / "1_net_D1.pth"]:
        shutil.copy(f, partial)
    cases.append((["import", "combogan", partial, "--epoch", "1", "--names", "a,b,c"], "holds 2 of the 3 critic files 1_net_D<i>.pth"))
    for args, match in cases:
        _one_error(capsys, args + ["--run", out], match)
    # a generator file whose tensors fit no supported architecture: the key and shape are named
    state = checkpoint.safe_load(CYCLE / "latest_net_G_B.pth")
    state["model.4.weight"] = torch.zeros(16, 8, 5, 5)
    bad = tmp_path / "bad"
    bad.mkdir()
    torch.save(state, bad / "latest_net_G_A.pth")
    shutil.copy(CYCLE / "latest_net_G_B.pth", bad)
    _one_error(capsys, ["import", "cyclegan", bad, "--names", "a,b", "--run", out], "key 'model.4.weight' has shape (16, 8, 5, 5)")
    torch.save({**checkpoint.safe_load(CYCLE / "latest_net_G_B.pth"), "model.99.weight": torch.zeros(3)}, bad / "latest_net_G_A.pth")
    _one_error(capsys, ["import", "cyclegan", bad, "--names", "a,b", "--run", out], "key 'model.99.weight' (3) fits no supported")

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"model.1.weight": Evil()}, bad / "latest_net_G_A.pth")
    _one_error(capsys, ["import", "cyclegan", bad, "--names", "a,b", "--run", out], "refusing to load")
    assert not out.exists() and not any(p.name.startswith(".out") for p in tmp_path.iterdir())
    out.mkdir()
    _one_error(capsys, ["import", "cyclegan", CYCLE, "--names", "a,b", "--run", out], "already exists")
    assert list(out.iterdir()) == []
