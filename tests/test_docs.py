"""What ships speaks to users: no development history in the docs, configs, code or tools; a
README that stays a user's guide; every setting documented; links that resolve."""

import re
from pathlib import Path

import pytest

from combogan.config import Config, all_keys

ROOT = Path(__file__).parents[1]
SHIPPED = ["README.md", "docs", "configs", "combogan", "tools"]
HISTORY = re.compile(r"\b20\d\d-[01]\d-[0-3]\d\b"  # dates
                     r"|\b(first|second|third|fourth|fifth|sixth|seventh|eighth|ninth|tenth|\d+(st|nd|rd|th)) session"
                     r"|\bsession \d|\bissues? #?\d+|\(#\d+\)", re.IGNORECASE)


def _shipped_text_files() -> list[Path]:
    files = []
    for entry in SHIPPED:
        path = ROOT / entry
        candidates = [path] if path.is_file() else sorted(path.rglob("*"))
        files += [f for f in candidates if f.is_file() and f.suffix in (".md", ".py", ".yaml", ".html", ".txt") and "__pycache__" not in f.parts]
    return files


def history_in(text: str) -> list[str]:
    return [m.group(0) for m in HISTORY.finditer(text)]


def test_the_check_finds_history():
    assert history_in("measured on 2026-12-02 (the eighth session), see issue 17 and issue #5 (#12)") == [
        "2026-12-02", "eighth session", "issue 17", "issue #5", "(#12)"]
    assert not history_in("a 2,000-iteration run at 72 px; colour #a0b0c0; 1st place")


def test_no_development_history_in_shipped_files():
    found = {str(f.relative_to(ROOT)): history_in(f.read_text(errors="replace")) for f in _shipped_text_files()}
    assert len(found) > 50  # the walk saw the tree
    assert not {f: h for f, h in found.items() if h}


def test_the_readme_is_a_users_guide():
    readme = (ROOT / "README.md").read_text()
    assert len(readme.splitlines()) <= 300
    assert "make demo" in readme and "make test" in readme
    for section in ("## Install", "## Quick start", "## Train on your own photos", "## Translate", "## Add a domain", "## Evaluate",
                    "## Import", "## Export", "## Serve", "torchrun"):
        assert section in readme, section
    assert "⟨" not in readme  # no placeholder left for a number


@pytest.mark.parametrize("config", sorted((ROOT / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_config_files_open_with_at_most_three_comment_lines(config):
    lines = config.read_text().splitlines()
    opening = next(i for i, line in enumerate(lines) if not line.startswith("#"))
    assert 1 <= opening <= 3


def test_every_key_documented():
    reference = (ROOT / "docs" / "configuration.md").read_text()
    missing = [k for k in all_keys(Config()) if f"| `{k}` |" not in reference]
    assert not missing, f"docs/configuration.md lacks config keys: {missing}"


def test_relative_links_resolve():
    for doc in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", doc.read_text()):
            if not target.startswith(("http:", "https:")):
                assert (doc.parent / target).exists(), f"{doc.name} links to {target}, which does not exist"


def test_the_readme_model_example_runs():
    """The README's lower-level example, run as written on tiny tensors."""
    import torch

    blocks = re.findall(r"```python\n(.*?)```", (ROOT / "README.md").read_text(), re.DOTALL)
    example = next(b for b in blocks if "ComboGAN(" in b)
    images = {name: torch.rand(1, 3, 32, 32) * 2 - 1 for name in ("real_a", "real_b", "x")}
    scope = dict(images)
    exec(compile(example, "README.md", "exec"), scope)
    assert set(scope["losses"]) and scope["outs"]["zebra"].shape == (1, 3, 32, 32)
