"""Verified downloads from a local HTTP server (see the ``mnist_mirror`` fixture in conftest.py)."""

from __future__ import annotations

import hashlib
import os
import socket
from pathlib import Path

import pytest

from iwae_cli.data import download
from iwae_cli.data.download import download_dataset, verify_dataset
from iwae_cli.data.registry import get_dataset
from iwae_cli.errors import DataError

TIMEOUT = 5.0
TRAIN_IMAGES = "train-images-idx3-ubyte.gz"


@pytest.fixture(autouse=True)
def _no_env_mirror(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("IWAE_DATA_MIRROR", raising=False)


def fetch(root: Path, *bases: str, name: str = "mnist") -> list[Path]:
    return download_dataset(name, root, mirrors=list(bases), progress=False, timeout=TIMEOUT)


def leftovers(folder: Path) -> list[str]:
    """Hidden (temp) files left in ``folder``."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".")) if folder.exists() else []


def closed_port_url() -> str:
    """A URL on 127.0.0.1 where nothing listens: connections are refused at once."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# ----------------------------------------------------------------------------------------------------------
# the table of files


def test_remote_files_match_the_local_copies(mnist_data_dir: Path) -> None:
    assert verify_dataset("mnist", mnist_data_dir) == [(f.name, "ok") for f in get_dataset("mnist").files]
    for f in get_dataset("mnist").files:
        assert f.size == (mnist_data_dir / "mnist" / f.name).stat().st_size, f.name


def test_describe_download_counts_only_what_is_missing(tmp_path: Path, mnist_mirror) -> None:
    folder = tmp_path / "mnist"
    assert download.describe_download("mnist", tmp_path) == f"MNIST (4 files, 11.6 MB) into {folder}"
    fetch(tmp_path, mnist_mirror.base("good"))
    (folder / TRAIN_IMAGES).unlink()
    assert download.describe_download("mnist", tmp_path) == f"MNIST (1 file, 9.9 MB) into {folder}"
    # no published size for chardata.mat: the count alone
    assert download.describe_download("omniglot", tmp_path) == f"OMNIGLOT (1 file) into {tmp_path / 'omniglot'}"


def test_remote_file_urls() -> None:
    names = [f.name for f in get_dataset("mnist").files]
    assert sorted(names) == sorted(
        ["train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
         "t10k-labels-idx1-ubyte.gz"]
    )
    for f in get_dataset("mnist").files:
        assert f.sha256 is not None and len(f.urls) == 3
        assert f.urls[0] == f"https://ossci-datasets.s3.amazonaws.com/mnist/{f.name}"
        assert f.urls[-1] == f"http://yann.lecun.com/exdb/mnist/{f.name}"
    (omniglot,) = get_dataset("omniglot").files
    assert omniglot.name == "chardata.mat" and omniglot.md5 == "21ecaf34373511aa7691cf2e0802aa3d"
    assert omniglot.urls == ("https://raw.githubusercontent.com/yburda/iwae/master/datasets/OMNIGLOT/chardata.mat",)


# ----------------------------------------------------------------------------------------------------------
# success, skipping, fallback


def test_download_success(tmp_path: Path, mnist_mirror) -> None:
    paths = fetch(tmp_path, mnist_mirror.base("good"))
    folder = tmp_path / "mnist"
    assert paths == [folder / f.name for f in get_dataset("mnist").files]
    for path in paths:
        assert path.read_bytes() == mnist_mirror.files[path.name]
    assert all(status == "ok" for _, status in verify_dataset("mnist", tmp_path))
    assert leftovers(folder) == []


def test_downloaded_files_get_the_usual_permissions(tmp_path: Path, mnist_mirror) -> None:
    # written through core.atomic like every other file: what open() gives under the umask, not mkstemp's 0600
    umask = os.umask(0o022)
    try:
        paths = fetch(tmp_path, mnist_mirror.base("good"))
    finally:
        os.umask(umask)
    assert {path.name: path.stat().st_mode & 0o777 for path in paths} == {path.name: 0o644 for path in paths}


def test_verified_files_are_not_downloaded_again(tmp_path: Path, mnist_mirror) -> None:
    fetch(tmp_path, mnist_mirror.base("good"))
    # a corrupt copy of one file: only that one is fetched again
    (tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz").write_bytes(b"junk")
    mnist_mirror.requests.clear()
    fetch(tmp_path, mnist_mirror.base("good"))
    assert mnist_mirror.requests == ["/good/t10k-labels-idx1-ubyte.gz"]
    mnist_mirror.requests.clear()
    fetch(tmp_path, mnist_mirror.base("e500"))  # nothing to fetch, so a broken mirror does not matter
    assert mnist_mirror.requests == []


def test_falls_back_to_the_next_mirror(tmp_path: Path, mnist_mirror) -> None:
    mnist_mirror.requests.clear()
    fetch(tmp_path, mnist_mirror.base("e500"), mnist_mirror.base("good") + "/")
    assert f"/e500/{TRAIN_IMAGES}" in mnist_mirror.requests
    assert f"/good/{TRAIN_IMAGES}" in mnist_mirror.requests
    assert all(status == "ok" for _, status in verify_dataset("mnist", tmp_path))


def test_env_mirror(tmp_path: Path, mnist_mirror, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IWAE_DATA_MIRROR", f"{closed_port_url()}, {mnist_mirror.base('good')}")
    download_dataset("mnist", tmp_path, progress=False, timeout=TIMEOUT)
    assert all(status == "ok" for _, status in verify_dataset("mnist", tmp_path))


# ----------------------------------------------------------------------------------------------------------
# failures: one-line DataError, no final file, no temp file


def expect_failure(root: Path, *bases: str) -> str:
    with pytest.raises(DataError) as e:
        fetch(root, *bases)
    message = str(e.value)
    assert "\n" not in message
    assert message.startswith(f"could not download {TRAIN_IMAGES}")
    assert str(root / "mnist" / TRAIN_IMAGES) in message and "iwae data verify" in message
    assert not (root / "mnist" / TRAIN_IMAGES).exists()
    assert leftovers(root / "mnist") == []
    return message


def test_checksum_mismatch(tmp_path: Path, mnist_mirror) -> None:
    message = expect_failure(tmp_path, mnist_mirror.base("corrupt"))
    assert f"{mnist_mirror.base('corrupt')}/{TRAIN_IMAGES}: checksum mismatch (got md5 " in message


def test_truncated_download(tmp_path: Path, mnist_mirror) -> None:
    size = len(mnist_mirror.files[TRAIN_IMAGES])
    message = expect_failure(tmp_path, mnist_mirror.base("trunc"))
    assert f"truncated: {size // 2} of {size} bytes" in message


def test_server_error(tmp_path: Path, mnist_mirror) -> None:
    message = expect_failure(tmp_path, mnist_mirror.base("e500"))
    assert "HTTP 500" in message


def test_every_mirror_fails(tmp_path: Path, mnist_mirror) -> None:
    refused = closed_port_url()
    message = expect_failure(tmp_path, mnist_mirror.base("e500"), refused, mnist_mirror.base("trunc"), "nope://x")
    assert "HTTP 500" in message and "truncated" in message
    assert f"{refused}/{TRAIN_IMAGES}: network error" in message
    assert "nope://x/train-images-idx3-ubyte.gz: network error (unknown url type: nope)" in message


def test_interrupt_removes_the_temp_file(
    tmp_path: Path, mnist_mirror, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(out, chunk, folder):
        raise KeyboardInterrupt

    monkeypatch.setattr(download, "_write", interrupted)
    with pytest.raises(KeyboardInterrupt):
        fetch(tmp_path, mnist_mirror.base("good"))
    assert list((tmp_path / "mnist").iterdir()) == []


def test_a_full_disk_stops_at_once(tmp_path: Path, mnist_mirror, monkeypatch: pytest.MonkeyPatch) -> None:
    real_write = download._write

    def full(out, chunk, folder):
        out.write = lambda data: (_ for _ in ()).throw(OSError(28, "No space left on device"))
        real_write(out, chunk, folder)

    monkeypatch.setattr(download, "_write", full)
    mnist_mirror.requests.clear()
    with pytest.raises(DataError, match="No space left on device; free some disk space"):
        fetch(tmp_path, mnist_mirror.base("good"), mnist_mirror.base("good"))
    assert len(mnist_mirror.requests) == 1  # the second mirror is not tried
    assert list((tmp_path / "mnist").iterdir()) == []


def test_unknown_dataset(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="mnist, omniglot"):
        fetch(tmp_path, "http://127.0.0.1:9", name="cifar")


# ----------------------------------------------------------------------------------------------------------
# verify


def test_verify_reports_missing_and_mismatched(tmp_path: Path, mnist_mirror) -> None:
    folder = tmp_path / "mnist"
    folder.mkdir()
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(mnist_mirror.files["train-labels-idx1-ubyte.gz"])
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(b"not the labels")
    status = dict(verify_dataset("mnist", tmp_path))
    assert status[TRAIN_IMAGES] == "missing"
    assert status["train-labels-idx1-ubyte.gz"] == "ok"
    bad_md5 = hashlib.md5(b"not the labels").hexdigest()
    assert status["t10k-labels-idx1-ubyte.gz"] == (
        f"checksum mismatch (got md5 {bad_md5}, expected ec29112dd5afa0611ce80d1b7f02629c)"
    )
    assert verify_dataset("omniglot", tmp_path) == [("chardata.mat", "missing")]


def test_progress_bar(tmp_path: Path, mnist_mirror, capsys: pytest.CaptureFixture) -> None:
    download_dataset("mnist", tmp_path, mirrors=[mnist_mirror.base("good")], progress=True, timeout=TIMEOUT)
    assert TRAIN_IMAGES in capsys.readouterr().err  # tqdm labels the bar with the file name
