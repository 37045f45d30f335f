"""Missing public data is fetched by default (download=auto), and a fresh machine gets MNIST where the CLI
looks for it; all downloads come from the local mirror (conftest.py), never the network."""

from __future__ import annotations

from pathlib import Path

import pytest

from iwae_cli.data.loading import load_dataset
from iwae_cli.data.registry import get_dataset
from iwae_cli.errors import DataError
from tests.helpers.mnist_cache import ensure_mnist, mnist_data_dir

MNIST_NAMES = [f.name for f in get_dataset("mnist").files]


@pytest.fixture
def fresh_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A user with an empty home and cache and no IWAE_DATA_DIR: the cache folder the CLI would use."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "home" / ".cache"))
    monkeypatch.delenv("IWAE_DATA_DIR", raising=False)
    return tmp_path / "home" / ".cache" / "iwae" / "data"


def fetched(mirror, mode: str = "good") -> list[str]:
    """The MNIST file names requested from the mirror in ``mode``."""
    return sorted(path.rsplit("/", 1)[1] for path in mirror.requests if path.startswith(f"/{mode}/"))


# ----------------------------------------------------------------------------------------------------------
# the fresh-machine path of the test fixtures


def test_a_fresh_machine_fetches_mnist_once_into_the_user_cache(
    fresh_home: Path, mnist_mirror, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IWAE_DATA_MIRROR", mnist_mirror.base("good"))
    mnist_mirror.requests.clear()
    root = mnist_data_dir()
    assert root == fresh_home and not root.exists()
    assert ensure_mnist(root) == root
    assert fetched(mnist_mirror) == sorted(MNIST_NAMES)
    splits = load_dataset("mnist", None, download="never")  # from the fetched files, where the CLI looks
    assert (len(splits.train), len(splits.valid), len(splits.test)) == (59_600, 400, 10_000)
    ensure_mnist(root)  # verified now: nothing is fetched again
    assert fetched(mnist_mirror) == sorted(MNIST_NAMES)


def test_a_corrupt_cached_file_is_fetched_again(fresh_home: Path, mnist_mirror, monkeypatch) -> None:
    monkeypatch.setenv("IWAE_DATA_MIRROR", mnist_mirror.base("good"))
    ensure_mnist(fresh_home)
    broken = fresh_home / "mnist" / MNIST_NAMES[0]
    broken.write_bytes(broken.read_bytes()[:1000])
    mnist_mirror.requests.clear()
    ensure_mnist(fresh_home)
    assert fetched(mnist_mirror) == [MNIST_NAMES[0]]
    assert broken.read_bytes() == mnist_mirror.files[MNIST_NAMES[0]]


def test_a_failed_fetch_is_one_line(fresh_home: Path, mnist_mirror, monkeypatch) -> None:
    monkeypatch.setenv("IWAE_DATA_MIRROR", mnist_mirror.base("e500"))
    with pytest.raises(DataError) as e:
        ensure_mnist(fresh_home)
    assert "HTTP 500" in str(e.value) and "\n" not in str(e.value)


# ----------------------------------------------------------------------------------------------------------
# download=auto, the default


def test_auto_is_the_default_and_says_what_and_where_in_one_line(
    tmp_path: Path, mnist_mirror, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("IWAE_DATA_MIRROR", mnist_mirror.base("good"))
    splits = load_dataset("mnist", tmp_path)
    assert splits.test.shape == (10_000, 784)
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [f"downloading MNIST (4 files, 11.6 MB) into {tmp_path / 'mnist'}"]
    load_dataset("mnist", tmp_path)  # present now: silent, nothing fetched
    assert capsys.readouterr() == ("", "")


@pytest.mark.parametrize("mode", ["auto", "always"])
def test_a_failed_auto_download_is_one_line_and_leaves_no_folder(
    tmp_path: Path, mnist_mirror, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    # the mirror has no chardata.mat (404), as an unreachable host would fail
    monkeypatch.setenv("IWAE_DATA_MIRROR", mnist_mirror.base("good"))
    root = tmp_path / "data"
    with pytest.raises(DataError) as e:
        load_dataset("omniglot", root, download=mode)
    message = str(e.value)
    assert message.startswith(f"OMNIGLOT not found in {root / 'omniglot'}")
    assert "downloading it failed" in message and "HTTP 404" in message and "\n" not in message
    assert not root.exists()


def test_never_does_not_download(tmp_path: Path, mnist_mirror, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IWAE_DATA_MIRROR", mnist_mirror.base("good"))
    mnist_mirror.requests.clear()
    with pytest.raises(DataError, match="download=auto"):
        load_dataset("mnist", tmp_path, download="never")
    assert mnist_mirror.requests == [] and not (tmp_path / "mnist").exists()


def test_files_without_a_public_url_are_never_fetched(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import dataclasses

    from iwae_cli.data import download
    from iwae_cli.data import registry as data_registry

    spec = get_dataset("omniglot")
    private = tuple(download.RemoteFile(f.name, f.md5, f.sha256, ()) for f in spec.files)
    monkeypatch.setitem(data_registry.DATASETS, "omniglot", dataclasses.replace(spec, files=private))
    monkeypatch.setattr(download, "download_dataset", lambda *a, **k: pytest.fail("downloaded"))
    with pytest.raises(DataError, match="OMNIGLOT not found"):
        load_dataset("omniglot", tmp_path, download="auto")
