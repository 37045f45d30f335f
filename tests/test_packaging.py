"""A wheel built from the project holds the package, every config and the paper's numbers, and building it prints
no warning.

The configs live in conf/ at the top of the repository and ship as the package iwae_cli.conf. What must be in
the wheel is read from the disk (every module and CSV under iwae_cli/, every YAML file under conf/), so a new
module, config or config group that the packaging settings in pyproject.toml would leave out fails here.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
# What the build reads. The wheel is built from a copy of them, never from ROOT: a stale build/ folder left
# there by an earlier build would otherwise lend the wheel files that the packaging settings no longer ship.
BUILD_INPUTS = ("pyproject.toml", "README.md", "iwae_cli", "conf")


def shipped_path(path: Path) -> str:
    """Where a file of the source tree lies in the wheel (conf/... is the package iwae_cli.conf)."""
    if path.is_relative_to(CONF):
        return "iwae_cli/conf/" + path.relative_to(CONF).as_posix()
    return path.relative_to(ROOT).as_posix()


def source_files() -> set[str]:
    """The files the wheel must hold, as found on disk: modules and CSVs of iwae_cli/, YAMLs and modules of conf/."""
    wanted = [p for p in (ROOT / "iwae_cli").rglob("*") if p.suffix in (".py", ".csv")]
    wanted += [p for p in CONF.rglob("*") if p.suffix in (".py", ".yaml")]
    return {shipped_path(p) for p in wanted if p.is_file() and "__pycache__" not in p.parts}


def test_the_wheel_ships_every_config_and_module(tmp_path: Path) -> None:
    project = tmp_path / "project"
    for name in BUILD_INPUTS:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, project / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            project.mkdir(exist_ok=True)
            shutil.copy2(source, project / name)
    # -v shows the build backend's own output, where setuptools prints its warnings (layout, namespace
    # packages, package data); byte-compiling is left on so that setuptools does not warn that it is off
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"),
         str(project)],
        capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path,
    )
    output = built.stdout + built.stderr
    assert built.returncode == 0, output[-3000:]
    warnings = [line for line in output.splitlines() if re.search(r"warning", line, flags=re.I)]
    assert not warnings, "\n".join(warnings)
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())

    wanted = source_files()
    groups = {p.name for p in CONF.iterdir() if p.is_dir() and any(p.rglob("*.yaml"))}
    assert len(groups) >= 7 and {"model", "dataset", "schedule"} <= groups  # the discovery sees the groups
    assert "iwae_cli/reports/tables/paper_results.csv" in wanted and "iwae_cli/conf/train.yaml" in wanted
    missing = sorted(wanted - names)
    assert not missing, f"not in the wheel (see [tool.setuptools] in pyproject.toml): {missing}"
    # nothing else at the top of the wheel: no conf/ or tests/ package beside iwae_cli
    top = {n.split("/")[0] for n in names}
    assert {t for t in top if not t.endswith(".dist-info")} == {"iwae_cli"}, sorted(top)


def test_the_installed_package_finds_every_group() -> None:
    from importlib.resources import files

    conf = files("iwae_cli.conf")
    groups = [p for p in CONF.iterdir() if p.is_dir() and p.name != "__pycache__"]
    assert len(groups) >= 7
    for group in groups:
        assert any(p.name.endswith(".yaml") for p in conf.joinpath(group.name).iterdir()), group.name
