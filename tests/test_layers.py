"""The package's one direction of dependency (.importlinter): kept by the code, and broken by an upward import."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    """lint-imports on the package under `root`, with the repository's contracts."""
    return subprocess.run(
        [str(LINT_IMPORTS), "--config", str(ROOT / ".importlinter"), "--no-cache"],
        cwd=root, env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin"}, capture_output=True, text=True,
        timeout=300,
    )


def test_the_package_keeps_its_layers() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "0 broken" in result.stdout


def test_an_upward_import_or_a_cycle_breaks_a_contract(tmp_path: Path) -> None:
    def broken_by(module: str, line: str) -> str:
        copy = tmp_path / module.replace("/", "_")
        shutil.copytree(ROOT / "iwae_cli", copy / "iwae_cli", ignore=shutil.ignore_patterns("__pycache__"))
        with (copy / "iwae_cli" / module).open("a") as f:
            f.write(f"\n{line}  # noqa\n")
        result = lint_imports(copy)
        assert result.returncode != 0, result.stdout[-2000:]
        return result.stdout

    assert "iwae_cli.core.model -> iwae_cli.training" in broken_by("core/model.py", "import iwae_cli.training.step")
    assert "omegaconf" in broken_by("training/trainer.py", "import omegaconf")
    cycle = broken_by("data/download.py", "from iwae_cli.data import loading")
    assert "no import cycle" in cycle and "BROKEN" in cycle
