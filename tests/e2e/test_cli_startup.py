"""`iwae --help` and `iwae <command> --help` answer at once and read whole at 80 columns.

Startup speed is guarded through the import graph, not a clock: help must not load torch and the other heavy
libraries (seconds on a small machine), so each check runs in a fresh interpreter and lists what it loaded.
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

HEAVY = ("torch", "matplotlib", "mlflow", "pandas", "scipy", "tensorboard")
# Typer's own help pages
TYPER_HELP = (["--help"], ["runs", "--help"], ["data", "--help"], ["data", "download", "--help"],
              ["data", "verify", "--help"])
# The experiment commands' pages, read from their config files (cli/help.py): no Hydra, no task module
EXPERIMENTS = ("train", "eval-nll", "active-units", "switch-objective", "table1", "table2", "table-extra",
               "frontier", "grad-snr", "bench")
COMMAND_HELP = tuple([command, "--help"] for command in EXPERIMENTS)


def modules_loaded(code: str) -> set[str]:
    """The top-level modules (and iwae_cli's task modules) loaded by ``code`` in a fresh interpreter."""
    script = f"{code}\nimport sys\nprint(' '.join(sys.modules))"
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    loaded = set(result.stdout.splitlines()[-1].split())
    return {name.split(".")[0] for name in loaded} | {n for n in loaded if n.startswith("iwae_cli.tasks.")}


def invoking(*args_lists: list[str]) -> str:
    """Code that runs the Typer app in-process on each argument list and checks it succeeds."""
    return (
        "from typer.testing import CliRunner\nfrom iwae_cli.cli.main import app\n"
        + "".join(
            f"result = CliRunner().invoke(app, {args!r})\nassert result.exit_code == 0, result.output\n"
            for args in args_lists
        )
    )


def test_importing_the_cli_loads_no_heavy_library() -> None:
    loaded = modules_loaded("import iwae_cli.cli.main")
    assert not loaded & {*HEAVY, "hydra", "omegaconf"}, sorted(loaded & {*HEAVY, "hydra", "omegaconf"})


def test_typer_help_pages_load_no_heavy_library() -> None:
    loaded = modules_loaded(invoking(*TYPER_HELP))
    assert not loaded & {*HEAVY, "hydra"}, sorted(loaded & {*HEAVY, "hydra"})


def test_command_help_pages_load_neither_hydra_nor_a_task() -> None:
    # each answered from its YAML files: Hydra, omegaconf, torch and the tasks load only when a command runs
    loaded = modules_loaded(invoking(*COMMAND_HELP, [EXPERIMENTS[0], "-h"]))
    heavy = {*HEAVY, "hydra", "omegaconf"}
    assert not loaded & heavy and not any(n.startswith("iwae_cli.tasks.") for n in loaded), sorted(loaded)


def test_load_run_is_still_importable_from_the_package() -> None:
    import iwae_cli
    from iwae_cli.specs import saved_run

    assert iwae_cli.load_run is saved_run.load_run and iwae_cli.Run is saved_run.Run
    with pytest.raises(AttributeError):
        iwae_cli.no_such_name  # noqa: B018


@pytest.mark.parametrize("args", TYPER_HELP + COMMAND_HELP, ids=" ".join)
def test_help_is_whole_at_80_columns(args: list[str]) -> None:
    # a real process: Typer's CliRunner forces its own width, under which a summary too long for a terminal fits
    env = {**os.environ, "COLUMNS": "80"}
    result = subprocess.run([sys.executable, "-m", "iwae_cli", *args], env=env, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    for line in result.stdout.splitlines():
        assert len(line) <= 80, f"over 80 columns: {line!r}\n{result.stdout}"
        # Click cuts a command's summary that does not fit with "..." (a usage line ends with "[ARGS]...")
        assert line.startswith("Usage:") or not line.endswith("..."), f"cut short: {line!r}\n{result.stdout}"
