"""fashion_mnist: IDX files like MNIST's, dynamically binarised, MNIST's 400-image holdout. There is no network
here, so files of its layout are generated, loaded, and downloaded from a local server (``file_server``) under
the declaration's own file names, with the declaration's checksums replaced by the generated files' MD5s."""

from __future__ import annotations

import dataclasses
import gzip
import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch

from iwae_cli.data import registry as data_registry
from iwae_cli.data.download import download_dataset, verify_dataset
from iwae_cli.data.loading import FixedBinary, load_dataset, missing_files
from iwae_cli.data.registry import get_dataset
from iwae_cli.errors import DataError

FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz",
         "t10k-labels-idx1-ubyte.gz")


def idx_gz(array: np.ndarray, magic: int) -> bytes:
    header = b"".join(v.to_bytes(4, "big") for v in (magic, *array.shape))
    return gzip.compress(header + array.astype(np.uint8).tobytes())


def generated(n_train: int = 450, n_test: int = 5) -> tuple[dict[str, bytes], np.ndarray, np.ndarray]:
    """The four files (name -> gz bytes) of a small Fashion-MNIST, and its uint8 train and test images."""
    rng = np.random.default_rng(1)
    train = rng.integers(0, 256, size=(n_train, 28, 28), dtype=np.uint8)
    test = rng.integers(0, 256, size=(n_test, 28, 28), dtype=np.uint8)
    labels = [rng.integers(0, 10, size=n, dtype=np.uint8) for n in (n_train, n_test)]
    blobs = (idx_gz(train, 0x803), idx_gz(labels[0], 0x801), idx_gz(test, 0x803), idx_gz(labels[1], 0x801))
    return dict(zip(FILES, blobs, strict=True)), train, test


def as_intensities(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images.reshape(len(images), 784) / np.float32(255))


def test_generated_files_load_with_mnists_holdout(tmp_path: Path) -> None:
    files, train, test = generated()
    folder = tmp_path / "fashion_mnist"
    folder.mkdir()
    for name, blob in files.items():
        (folder / name).write_bytes(blob)
    held = load_dataset("fashion_mnist", tmp_path, download="never")
    whole = load_dataset("fashion_mnist", tmp_path, download="never", holdout=False)
    assert (held.train.shape, held.valid.shape, held.test.shape) == ((50, 784), (400, 784), (5, 784))
    assert torch.equal(torch.cat([held.train, held.valid]), as_intensities(train))  # the last 400 validate
    assert torch.equal(held.test, as_intensities(test))
    assert (len(whole.train), whole.valid.shape) == (450, (0, 784))
    assert torch.equal(whole.train, as_intensities(train))
    assert not isinstance(held.train, FixedBinary)  # dynamic binarisation, as MNIST


def test_missing_files_are_fashion_mnists_own(tmp_path: Path) -> None:
    # an unknown dataset used to fall into OMNIGLOT's branch and ask for chardata.mat
    assert missing_files("fashion_mnist", tmp_path) == ["train-images-idx3-ubyte.gz", "t10k-images-idx3-ubyte.gz"]
    with pytest.raises(DataError, match="Fashion-MNIST not found in .*iwae data download fashion_mnist"):
        load_dataset("fashion_mnist", tmp_path, download="never")


def test_declaration_has_the_published_md5s_and_source() -> None:
    spec = get_dataset("fashion_mnist")
    assert [(f.name, f.md5, f.sha256) for f in spec.files] == [
        ("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d", None),
        ("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe", None),
        ("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79", None),
        ("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310", None),
    ]
    base = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
    assert all(f.urls == (base + f.name,) for f in spec.files)
    assert (spec.binarization, spec.n_valid, spec.train_examples(), spec.train_examples(False)) == (
        "dynamic", 400, 59_600, 60_000)


@pytest.fixture
def served_fashion(file_server, monkeypatch: pytest.MonkeyPatch):
    """Generated files on the local server, and the declaration pointing at them with their MD5s."""
    files, train, test = generated()
    file_server.files.update({f"fashion/{name}": blob for name, blob in files.items()})
    spec = get_dataset("fashion_mnist")
    local = tuple(
        dataclasses.replace(f, md5=hashlib.md5(files[f.name]).hexdigest(), urls=(f"{file_server.url}/fashion/{f.name}",))
        for f in spec.files
    )
    monkeypatch.setitem(data_registry.DATASETS, "fashion_mnist", dataclasses.replace(spec, files=local))
    return file_server, train, test


def test_download_verifies_and_loads(tmp_path: Path, served_fashion) -> None:
    server, train, _ = served_fashion
    paths = download_dataset("fashion_mnist", tmp_path, progress=False, timeout=5.0)
    assert paths == [tmp_path / "fashion_mnist" / name for name in FILES]
    assert verify_dataset("fashion_mnist", tmp_path) == [(name, "ok") for name in FILES]
    assert server.requests == [f"/fashion/{name}" for name in FILES]
    splits = load_dataset("fashion_mnist", tmp_path, download="never")
    assert torch.equal(splits.train, as_intensities(train)[:-400])


def test_auto_download_when_loading(tmp_path: Path, served_fashion, capsys: pytest.CaptureFixture) -> None:
    _, _, test = served_fashion
    splits = load_dataset("fashion_mnist", tmp_path, download="auto")
    assert torch.equal(splits.test, as_intensities(test))
    assert capsys.readouterr().err.startswith(f"downloading Fashion-MNIST (4 files) into {tmp_path / 'fashion_mnist'}")


def test_a_wrong_file_on_the_server_is_refused(tmp_path: Path, served_fashion) -> None:
    server, _, _ = served_fashion
    server.files["fashion/t10k-images-idx3-ubyte.gz"] = b"not the file"
    with pytest.raises(DataError, match="could not download t10k-images-idx3-ubyte.gz: .*checksum mismatch"):
        download_dataset("fashion_mnist", tmp_path, progress=False, timeout=5.0)
    folder = tmp_path / "fashion_mnist"
    assert not (folder / "t10k-images-idx3-ubyte.gz").exists()
    assert not [p for p in folder.iterdir() if p.name.endswith(".part")]
