"""Real MNIST where the CLI looks for it, fetched there once (tests/conftest.py, tests/e2e/test_auto_download.py)."""

from __future__ import annotations

from pathlib import Path

from iwae_cli.data.download import download_dataset, verify_dataset
from iwae_cli.data.loading import resolve_data_dir


def mnist_data_dir() -> Path:
    """The data directory the CLI uses when given none: $IWAE_DATA_DIR, else the user cache."""
    return resolve_data_dir(None)


def ensure_mnist(root: Path) -> Path:
    """Make ``root/mnist`` hold the four verified MNIST files and return ``root``.

    Files that are missing or fail their MD5/SHA-256 are downloaded (from $IWAE_DATA_MIRROR when set) with the
    project's own downloader; verified files are left alone, so the network is used at most once per folder.
    Raises :class:`iwae_cli.errors.DataError` (one line) when the download fails.
    """
    if any(status != "ok" for _, status in verify_dataset("mnist", root)):
        download_dataset("mnist", root, progress=False)
    return root
