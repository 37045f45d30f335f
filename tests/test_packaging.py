"""A wheel built from the project holds the package, every config and the paper's numbers; installing it
editable prints no warning about the layout."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_wheel_ships_every_config_and_module(tmp_path: Path) -> None:
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path), str(ROOT)],
        capture_output=True, text=True, timeout=300,
    )
    assert built.returncode == 0, built.stderr[-2000:]
    assert "Warning" not in built.stderr and "warning:" not in built.stderr.lower(), built.stderr[-2000:]
    (wheel,) = tmp_path.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    sources = {p.relative_to(ROOT).as_posix() for p in (ROOT / "iwae_cli").rglob("*") if p.suffix in (".py", ".yaml", ".csv")}
    assert sources <= names, sorted(sources - names)


def test_the_installed_package_finds_every_group() -> None:
    from importlib.resources import files

    conf = files("iwae_cli.conf")
    groups = [p for p in (ROOT / "iwae_cli" / "conf").iterdir() if p.is_dir() and p.name != "__pycache__"]
    assert len(groups) >= 7
    for group in groups:
        assert any(p.name.endswith(".yaml") for p in conf.joinpath(group.name).iterdir()), group.name
