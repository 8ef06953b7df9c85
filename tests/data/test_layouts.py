"""Every dataset layout users bring, built in temporary folders."""

import pytest
from PIL import Image

from combogan.data.layouts import discover
from combogan.errors import UserError


def img(path, size=(40, 30), mode="RGB"):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new(mode, size).save(path)


def test_flat(tmp_path):
    img(tmp_path / "summer" / "a.jpg"), img(tmp_path / "winter" / "b.PNG"), img(tmp_path / "winter" / "deep" / "c.png")
    (tmp_path / "winter" / "notes.txt").write_text("x")
    img(tmp_path / "winter" / ".hidden.png")
    layout = discover(tmp_path)
    assert layout.kind.startswith("flat")
    assert layout.counts() == {"summer": {"train": 1}, "winter": {"train": 2}}  # nested yes, hidden/non-image no


def test_split_first_with_val(tmp_path):
    for split in ("train", "test", "val"):
        for d in ("day", "night"):
            img(tmp_path / split / d / "x.png")
    layout = discover(tmp_path)
    assert layout.kind.startswith("split/domain")
    assert layout.counts()["night"] == {"train": 1, "test": 1, "val": 1}


def test_domain_first(tmp_path):
    for d in ("day", "night"):
        img(tmp_path / d / "train" / "x.png"), img(tmp_path / d / "test" / "y.png")
    layout = discover(tmp_path)
    assert layout.kind.startswith("domain/split") and layout.counts()["day"] == {"train": 1, "test": 1}


def test_combogan_numeric_order_and_names(tmp_path):
    for i in range(12):
        img(tmp_path / f"train{i}" / f"{i}.png")
    img(tmp_path / "test10" / "t.png")
    layout = discover(tmp_path)
    assert layout.names == [f"domain{i}" for i in range(12)]  # train10 after train9
    assert layout.domains["domain10"].folder == "train10" and layout.counts()["domain10"] == {"train": 1, "test": 1}
    (tmp_path / "domains.txt").write_text("\n".join(f"painter{i}" for i in range(12)))
    assert discover(tmp_path).names[10] == "painter10"


def test_combogan_known_recipe_names(tmp_path):
    root = tmp_path / "alps_seasons"
    for i in range(4):
        img(root / f"train{i}" / "a.png")
    assert discover(root).names == ["spring", "summer", "autumn", "winter"]


def test_cyclegan_and_mapping_file(tmp_path):
    for d in ("trainA", "trainB", "testA", "testB"):
        img(tmp_path / d / "x.jpg")
    layout = discover(tmp_path)
    assert layout.kind.startswith("cyclegan") and layout.names == ["A", "B"]
    (tmp_path / "domains.yaml").write_text("names: {trainA: horse, B: zebra}\n")
    assert discover(tmp_path).names == ["horse", "zebra"]


def test_mapping_excludes_and_rejects_collisions(tmp_path):
    for d in ("a", "b", "c"):
        img(tmp_path / d / "x.png")
    (tmp_path / "domains.yaml").write_text("exclude: [c]\n")
    assert discover(tmp_path).names == ["a", "b"]
    (tmp_path / "domains.yaml").write_text("names: {a: same, b: same}\n")
    with pytest.raises(UserError, match="two folders map"):
        discover(tmp_path)


def test_missing_and_file_roots(tmp_path):
    with pytest.raises(UserError, match="not found"):
        discover(tmp_path / "nope")
    (tmp_path / "f").write_text("x")
    with pytest.raises(UserError, match="expects a folder"):
        discover(tmp_path / "f")
