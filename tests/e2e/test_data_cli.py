"""`iwae data download|verify` through Typer's test runner, against the local mirror (conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from iwae_cli.cli.data import data_app
from iwae_cli.data.registry import DATASET_NAMES, get_dataset

runner = CliRunner()
MNIST_NAMES = [f.name for f in get_dataset("mnist").files]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("IWAE_DATA_MIRROR", raising=False)
    # never the user's cache, whatever a test forgets to pass
    monkeypatch.setenv("IWAE_DATA_DIR", str(tmp_path / "default"))


def invoke(*args: str):
    result = runner.invoke(data_app, list(args))
    assert "Traceback" not in result.output
    return result


def error_lines(result) -> list[str]:
    return [line for line in result.output.splitlines() if line.startswith("error:")]


@pytest.fixture
def downloaded(tmp_path: Path, mnist_mirror) -> Path:
    """A data folder with MNIST fetched through the CLI from the local mirror."""
    root = tmp_path / "data"
    result = invoke("download", "mnist", "--data-dir", str(root), "--mirror", mnist_mirror.base("good"))
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [f"ok {root / 'mnist' / name}" for name in MNIST_NAMES]
    return root


def test_help_lists_the_commands() -> None:
    result = invoke("--help")
    assert result.exit_code == 0
    assert "download" in result.output and "verify" in result.output


def test_download_then_verify(downloaded: Path) -> None:
    result = invoke("verify", "mnist", "--data-dir", str(downloaded))
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [f"ok {downloaded / 'mnist' / name}" for name in MNIST_NAMES]


def test_download_uses_the_default_data_dir(tmp_path: Path, mnist_mirror) -> None:
    result = invoke("download", "--mirror", mnist_mirror.base("e500"), "--mirror", mnist_mirror.base("good"))
    assert result.exit_code == 0, result.output
    assert (tmp_path / "default" / "mnist" / MNIST_NAMES[0]).is_file()


def test_verify_all_reports_a_missing_omniglot_without_failing(downloaded: Path) -> None:
    result = invoke("verify", "--data-dir", str(downloaded))
    assert result.exit_code == 0, result.output
    assert f"missing {downloaded / 'omniglot' / 'chardata.mat'}" in result.stdout
    result = invoke("verify", "omniglot", "--data-dir", str(downloaded))
    assert result.exit_code == 1
    assert len(error_lines(result)) == 1 and "iwae data download omniglot" in result.stderr


def test_verify_a_corrupt_file(downloaded: Path) -> None:
    path = downloaded / "mnist" / "t10k-labels-idx1-ubyte.gz"
    path.write_bytes(path.read_bytes() + b"x")
    for args in (["verify", "mnist"], ["verify"]):
        result = invoke(*args, "--data-dir", str(downloaded))
        assert result.exit_code == 1
        assert f"bad {path}: checksum mismatch (got md5 " in result.stdout
        (error,) = error_lines(result)
        assert "mnist/t10k-labels-idx1-ubyte.gz" in error and "iwae data download" in error


def test_verify_an_empty_folder(tmp_path: Path) -> None:
    result = invoke("verify", "--data-dir", str(tmp_path / "empty"))
    assert result.exit_code == 1
    (error,) = error_lines(result)
    assert "no dataset found" in error


def test_download_failure_is_one_line(tmp_path: Path, mnist_mirror) -> None:
    root = tmp_path / "data"
    result = invoke("download", "--data-dir", str(root), "--mirror", mnist_mirror.base("corrupt"))
    assert result.exit_code == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("error: could not download ")
    assert "checksum mismatch" in result.stderr


def test_unknown_dataset(tmp_path: Path) -> None:
    for command in ("download", "verify"):
        result = invoke(command, "cifar", "--data-dir", str(tmp_path))
        assert result.exit_code == 2
        assert result.stderr == f"error: unknown dataset 'cifar': use one of {', '.join(DATASET_NAMES)} or all\n"
        assert "mnist, omniglot, binarized_mnist, fashion_mnist" in result.stderr
