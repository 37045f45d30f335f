"""Mistakes Click catches before any command runs (an unknown command or option) are one `error:` line with
where to read the usage, exit code 2, as every other mistake is (cli/main.py main)."""

from __future__ import annotations

import subprocess
import sys

import pytest


@pytest.mark.parametrize(("argv", "message"), [
    (["runs", "--bogus"], "error: No such option: --bogus (see `iwae runs --help`)"),
    (["bogus"], "error: No such command 'bogus'. (see `iwae --help`)"),
    (["data", "bogus"], "error: No such command 'bogus'. (see `iwae data --help`)"),
    (["data", "verify", "mnist", "--bogus"], "error: No such option: --bogus (see `iwae data verify --help`)"),
])
def test_a_usage_mistake_is_one_line(argv: list[str], message: str) -> None:
    result = subprocess.run([sys.executable, "-m", "iwae_cli", *argv], capture_output=True, text=True, timeout=60)
    assert (result.returncode, result.stdout, result.stderr.strip()) == (2, "", message)


def test_the_version_and_a_listing_still_exit_zero(tmp_path) -> None:
    for argv in (["--version"], ["runs", f"output_root={tmp_path}"]):
        result = subprocess.run([sys.executable, "-m", "iwae_cli", *argv], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0 and result.stdout.strip() and not result.stderr, result
