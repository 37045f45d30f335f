"""Loading MNIST and OMNIGLOT: splits, values, orientation, and one-line errors for bad files."""

from __future__ import annotations

import gzip
import io
import sys
from pathlib import Path

import numpy as np
import pytest
import scipy.io
import torch

from iwae_cli.core.noise import binarize
from iwae_cli.data import formats as data_formats
from iwae_cli.data import loading as datasets
from iwae_cli.data.loading import Splits, load_dataset, resolve_data_dir, training_pixel_means
from iwae_cli.errors import ConfigError, DataError

TRAIN_IMAGES = "train-images-idx3-ubyte.gz"
TEST_IMAGES = "t10k-images-idx3-ubyte.gz"


# ----------------------------------------------------------------------------------------------------------
# helpers


def idx_bytes(images: np.ndarray, magic: int = 0x803) -> bytes:
    """An IDX file (uncompressed) holding uint8 images [N, rows, cols]."""
    n, rows, cols = images.shape
    header = b"".join(v.to_bytes(4, "big") for v in (magic, n, rows, cols))
    return header + images.astype(np.uint8).tobytes()


def write_gz(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data))
    return path


def small_mnist(root: Path, n_train: int = 450, n_test: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """Write small valid MNIST-like image files under root/mnist; return the uint8 images."""
    rng = np.random.default_rng(0)
    train = rng.integers(0, 256, size=(n_train, 28, 28), dtype=np.uint8)
    test = rng.integers(0, 256, size=(n_test, 28, 28), dtype=np.uint8)
    write_gz(root / "mnist" / TRAIN_IMAGES, idx_bytes(train))
    write_gz(root / "mnist" / TEST_IMAGES, idx_bytes(test))
    return train, test


def first_image(path: Path, index: int) -> np.ndarray:
    """Image ``index`` of a gzipped IDX file, read independently of the loader, as the authors scale it."""
    with gzip.open(path, "rb") as f:
        f.seek(16 + index * 784)
        raw = np.frombuffer(f.read(784), dtype=np.uint8)
    return (raw / 255.0).astype("float32")


# ----------------------------------------------------------------------------------------------------------
# real MNIST


@pytest.fixture(scope="module")
def mnist(mnist_data_dir: Path) -> Splits:
    return load_dataset("mnist", mnist_data_dir, download="never")


def test_mnist_shapes_and_range(mnist: Splits) -> None:
    assert mnist.train.shape == (59_600, 784)
    assert mnist.valid.shape == (400, 784)
    assert mnist.test.shape == (10_000, 784)
    for t in (mnist.train, mnist.valid, mnist.test):
        assert t.dtype == torch.float32
        assert float(t.min()) == 0.0 and float(t.max()) == 1.0


def test_mnist_split_is_unshuffled(mnist: Splits, mnist_data_dir: Path) -> None:
    train_file = mnist_data_dir / "mnist" / TRAIN_IMAGES
    # values equal the authors' (bytes / 255.0).astype(float32), bit for bit
    assert np.array_equal(mnist.train[0].numpy(), first_image(train_file, 0))
    assert np.array_equal(mnist.train[-1].numpy(), first_image(train_file, 59_599))
    assert np.array_equal(mnist.valid[0].numpy(), first_image(train_file, 59_600))
    assert np.array_equal(mnist.valid[-1].numpy(), first_image(train_file, 59_999))
    assert np.array_equal(mnist.test[0].numpy(), first_image(mnist_data_dir / "mnist" / TEST_IMAGES, 0))


def test_mnist_row_major_image_is_upright(mnist: Splits) -> None:
    # a digit's ink is in the middle rows; an IDX image is stored row by row, so row 0 is the blank top
    image = mnist.train[0].view(28, 28)
    assert float(image[0].sum()) == 0.0 and float(image[14].sum()) > 0.0


def test_dataset_name_is_case_insensitive(mnist_data_dir: Path) -> None:
    splits = load_dataset("MNIST", mnist_data_dir, download="never")
    assert splits.valid.shape == (400, 784)


# ----------------------------------------------------------------------------------------------------------
# binarisation and pixel means


def test_binarize_is_bernoulli_of_the_intensity() -> None:
    x = torch.tensor([0.0, 0.1, 0.5, 0.9, 1.0]).repeat(20_000, 1)
    b = binarize(x, torch.Generator().manual_seed(1))
    assert b.dtype == torch.float32 and b.shape == x.shape
    assert set(b.unique().tolist()) <= {0.0, 1.0}
    means = b.mean(dim=0)
    # 20,000 draws: standard error at most 0.0036
    assert torch.allclose(means, torch.tensor([0.0, 0.1, 0.5, 0.9, 1.0]), atol=0.015)
    assert means[0] == 0.0 and means[-1] == 1.0  # uniform <= 0 almost never; uniform <= 1 always


def test_binarize_is_reproducible_with_the_same_seed() -> None:
    x = torch.rand(50, 784, generator=torch.Generator().manual_seed(0))
    a = binarize(x, torch.Generator().manual_seed(123))
    b = binarize(x, torch.Generator().manual_seed(123))
    c = binarize(x, torch.Generator().manual_seed(124))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_binarize_matches_uniform_le_intensity() -> None:
    x = torch.rand(10, 784, generator=torch.Generator().manual_seed(5))
    uniform = torch.rand(x.shape, generator=torch.Generator().manual_seed(7))
    assert torch.equal(binarize(x, torch.Generator().manual_seed(7)), (uniform <= x).float())


def test_training_pixel_means_are_clipped() -> None:
    train = torch.zeros(4, 784)
    train[:, 1] = 1.0
    train[:2, 2] = 1.0
    means = training_pixel_means(train)
    assert means.shape == (784,)
    assert means[0].item() == pytest.approx(0.001)
    assert means[1].item() == pytest.approx(0.999)
    assert means[2].item() == pytest.approx(0.5)


# ----------------------------------------------------------------------------------------------------------
# data directory and missing files


def test_resolve_data_dir_precedence(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IWAE_DATA_DIR", str(tmp_path / "env"))
    assert resolve_data_dir(tmp_path / "given") == tmp_path / "given"
    assert resolve_data_dir(None) == tmp_path / "env"
    assert resolve_data_dir("") == tmp_path / "env"
    monkeypatch.delenv("IWAE_DATA_DIR")
    monkeypatch.setattr(datasets.platformdirs, "user_cache_dir", lambda app: str(tmp_path / "cache" / app))
    assert resolve_data_dir(None) == tmp_path / "cache" / "iwae" / "data"


def test_resolve_data_dir_is_absolute_and_expanded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert resolve_data_dir("~/data") == tmp_path / "data"
    monkeypatch.chdir(tmp_path)
    assert resolve_data_dir("rel/../data") == tmp_path / "data"


def test_missing_data_with_never_names_the_fix(tmp_path: Path) -> None:
    with pytest.raises(DataError) as e:
        load_dataset("mnist", tmp_path / "nothing", download="never")
    message = str(e.value)
    assert str(tmp_path / "nothing" / "mnist") in message
    assert "iwae data download mnist" in message and "IWAE_DATA_DIR" in message
    assert "\n" not in message


def test_ask_without_a_terminal_behaves_like_never(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    called = []
    monkeypatch.setattr("iwae_cli.data.download.download_dataset", lambda *a, **k: called.append(a))
    with pytest.raises(DataError, match="iwae data download omniglot"):
        load_dataset("omniglot", tmp_path, download="ask")
    assert called == []


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def fake_download(calls: list):
    """A stand-in for download_dataset that writes a small valid MNIST."""

    def download(name: str, root: Path, *args, **kwargs) -> list[Path]:
        calls.append((name, root))
        small_mnist(root)
        return []

    return download


@pytest.mark.parametrize("answer", [True, False])
def test_ask_on_a_terminal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, answer: bool) -> None:
    calls: list = []
    monkeypatch.setattr(sys, "stdin", _Tty())
    monkeypatch.setattr(datasets, "confirm", lambda *a, **k: answer)
    monkeypatch.setattr("iwae_cli.data.download.download_dataset", fake_download(calls))
    if answer:
        splits = load_dataset("mnist", tmp_path, download="ask")
        assert splits.train.shape == (50, 784) and splits.valid.shape == (400, 784)
        assert calls == [("mnist", tmp_path)]
    else:
        with pytest.raises(DataError, match="not found"):
            load_dataset("mnist", tmp_path, download="ask")
        assert calls == []


def test_always_downloads_missing_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list = []
    monkeypatch.setattr("iwae_cli.data.download.download_dataset", fake_download(calls))
    splits = load_dataset("mnist", tmp_path, download="always")
    assert calls == [("mnist", tmp_path)] and splits.test.shape == (7, 784)
    load_dataset("mnist", tmp_path, download="always")  # present now: no second download
    assert len(calls) == 1


def test_unknown_dataset_lists_the_known_ones(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="mnist, omniglot"):
        load_dataset("cifar", tmp_path, download="never")


def test_unknown_download_mode(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="auto, ask, always, never"):
        load_dataset("mnist", tmp_path, download="sometimes")


# ----------------------------------------------------------------------------------------------------------
# broken MNIST files


def test_small_valid_mnist_splits(tmp_path: Path) -> None:
    train, test = small_mnist(tmp_path)
    splits = load_dataset("mnist", tmp_path, download="never")
    assert splits.train.shape == (50, 784) and splits.valid.shape == (400, 784)
    assert torch.equal(splits.valid[-1], torch.from_numpy(train[-1].reshape(784) / np.float32(255)))
    assert torch.equal(splits.test, torch.from_numpy(test.reshape(7, 784) / np.float32(255)))


def expect_mnist_error(root: Path, broken: str, *fragments: str) -> None:
    with pytest.raises(DataError) as e:
        load_dataset("mnist", root, download="never")
    message = str(e.value)
    assert str(root / "mnist" / broken) in message
    assert "re-download with `iwae data download mnist`" in message
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message


def test_truncated_gzip(tmp_path: Path, mnist_data_dir: Path) -> None:
    small_mnist(tmp_path)
    real = (mnist_data_dir / "mnist" / TEST_IMAGES).read_bytes()
    (tmp_path / "mnist" / TEST_IMAGES).write_bytes(real[:100_000])
    expect_mnist_error(tmp_path, TEST_IMAGES, "not a complete gzip file")


def test_gzip_with_a_corrupt_body(tmp_path: Path) -> None:
    small_mnist(tmp_path)
    path = tmp_path / "mnist" / TRAIN_IMAGES
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    expect_mnist_error(tmp_path, TRAIN_IMAGES)


def test_not_gzip_at_all(tmp_path: Path) -> None:
    small_mnist(tmp_path)
    (tmp_path / "mnist" / TRAIN_IMAGES).write_text("<html>Not found</html>")
    expect_mnist_error(tmp_path, TRAIN_IMAGES, "not a complete gzip file")


def test_gzip_of_something_else(tmp_path: Path) -> None:
    small_mnist(tmp_path)
    write_gz(tmp_path / "mnist" / TRAIN_IMAGES, b"hello")
    expect_mnist_error(tmp_path, TRAIN_IMAGES, "not an IDX image file")


def test_wrong_magic_number(tmp_path: Path, mnist_data_dir: Path) -> None:
    small_mnist(tmp_path)
    # a label file (magic 0x801) where the images belong
    real_labels = (mnist_data_dir / "mnist" / "t10k-labels-idx1-ubyte.gz").read_bytes()
    (tmp_path / "mnist" / TEST_IMAGES).write_bytes(real_labels)
    expect_mnist_error(tmp_path, TEST_IMAGES, "magic number 0x00000801")


def test_wrong_image_size(tmp_path: Path) -> None:
    small_mnist(tmp_path)
    write_gz(tmp_path / "mnist" / TEST_IMAGES, idx_bytes(np.zeros((3, 27, 27))))
    expect_mnist_error(tmp_path, TEST_IMAGES, "27x27")


def test_byte_count_disagrees_with_header(tmp_path: Path) -> None:
    small_mnist(tmp_path)
    write_gz(tmp_path / "mnist" / TEST_IMAGES, idx_bytes(np.zeros((3, 28, 28)))[:-10])
    expect_mnist_error(tmp_path, TEST_IMAGES, "header says")


def test_too_few_training_images(tmp_path: Path) -> None:
    small_mnist(tmp_path, n_train=400)
    expect_mnist_error(tmp_path, TRAIN_IMAGES, "only 400 images")


def test_unreadable_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    small_mnist(tmp_path)

    def denied(path, mode="rb"):
        raise PermissionError(13, "Permission denied", str(path))

    # chmod cannot stop root (CI may run as root), so deny the read where it happens
    monkeypatch.setattr(data_formats.gzip, "open", denied)
    with pytest.raises(DataError, match="cannot read .*Permission denied"):
        load_dataset("mnist", tmp_path, download="never")


# ----------------------------------------------------------------------------------------------------------
# OMNIGLOT

N_TRAIN, N_TEST = 1500, 30


def upright_image(index: int, n: int) -> np.ndarray:
    """An asymmetric 28x28 image (a full top row, a half left column) tagged with ``index`` in a corner."""
    image = np.zeros((28, 28))
    image[0, :] = 1.0
    image[:14, 0] = 1.0
    image[27, 27] = index / (n - 1)
    return image


def omniglot_columns(n: int) -> np.ndarray:
    """784 x n, each column an upright image stored column-major, as MATLAB (and chardata.mat) store them."""
    return np.stack([upright_image(i, n).flatten(order="F") for i in range(n)], axis=1)


def write_mat(root: Path, **arrays) -> Path:
    path = root / "omniglot" / "chardata.mat"
    path.parent.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(path, arrays)
    return path


@pytest.fixture(scope="module")
def omniglot_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("omni")
    write_mat(root, data=omniglot_columns(N_TRAIN), testdata=omniglot_columns(N_TEST))
    return root


def tags(images: torch.Tensor, n: int) -> np.ndarray:
    return np.rint(images.view(-1, 28, 28)[:, 27, 27].double().numpy() * (n - 1)).astype(int)


def test_omniglot_split_sizes(omniglot_root: Path) -> None:
    splits = load_dataset("omniglot", omniglot_root, download="never")
    assert splits.train.shape == (N_TRAIN - 1345, 784)
    assert splits.valid.shape == (1345, 784)
    assert splits.test.shape == (N_TEST, 784)
    assert all(t.dtype == torch.float32 for t in (splits.train, splits.valid, splits.test))


def test_omniglot_images_are_upright(omniglot_root: Path) -> None:
    splits = load_dataset("omniglot", omniglot_root, download="never")
    image = splits.test[3].view(28, 28)
    assert image[0].sum().item() == 28.0  # the full row is on top ...
    assert image[:, 0].sum().item() == 14.0  # ... the half column on the left: not transposed
    expected = torch.from_numpy(upright_image(3, N_TEST)).float()
    assert torch.equal(image, expected)


def test_omniglot_matches_the_authors_reshape(omniglot_root: Path) -> None:
    # yburda/iwae datasets.py: data.T.reshape((-1, 28, 28)).reshape((-1, 28*28), order='fortran')
    raw = scipy.io.loadmat(omniglot_root / "omniglot" / "chardata.mat")["testdata"].T.astype("float32")
    authors = raw.reshape((-1, 28, 28)).reshape((-1, 28 * 28), order="F")
    splits = load_dataset("omniglot", omniglot_root, download="never")
    assert np.array_equal(splits.test.numpy(), authors)


def test_omniglot_shuffle_uses_seed_123(omniglot_root: Path) -> None:
    first = load_dataset("omniglot", omniglot_root, download="never")
    second = load_dataset("omniglot", omniglot_root, download="never")
    assert torch.equal(first.train, second.train) and torch.equal(first.valid, second.valid)
    order = np.concatenate([tags(first.train, N_TRAIN), tags(first.valid, N_TRAIN)])
    assert np.array_equal(order, np.random.RandomState(123).permutation(N_TRAIN))
    assert np.array_equal(tags(first.test, N_TEST), np.arange(N_TEST))  # the test set is not shuffled


def expect_omniglot_error(root: Path, *fragments: str) -> None:
    with pytest.raises(DataError) as e:
        load_dataset("omniglot", root, download="never")
    message = str(e.value)
    assert str(root / "omniglot" / "chardata.mat") in message and "\n" not in message
    for fragment in fragments:
        assert fragment in message


def test_omniglot_missing_key(tmp_path: Path) -> None:
    write_mat(tmp_path, data=omniglot_columns(N_TRAIN))
    expect_omniglot_error(tmp_path, "no variable 'testdata'", "found: data")


def test_omniglot_wrong_shape(tmp_path: Path) -> None:
    write_mat(tmp_path, data=np.zeros((783, N_TRAIN)), testdata=omniglot_columns(N_TEST))
    expect_omniglot_error(tmp_path, "'data' has shape (783, 1500)")


def test_omniglot_values_out_of_range(tmp_path: Path) -> None:
    test = omniglot_columns(N_TEST)
    test[5, 2] = 1.5
    write_mat(tmp_path, data=omniglot_columns(N_TRAIN), testdata=test)
    expect_omniglot_error(tmp_path, "'testdata' has values outside [0, 1]")


def test_omniglot_too_few_training_images(tmp_path: Path) -> None:
    write_mat(tmp_path, data=omniglot_columns(1345), testdata=omniglot_columns(N_TEST))
    expect_omniglot_error(tmp_path, "only 1345 images")


def test_omniglot_not_a_mat_file(tmp_path: Path) -> None:
    path = tmp_path / "omniglot" / "chardata.mat"
    path.parent.mkdir()
    path.write_text("404: Not Found")
    expect_omniglot_error(tmp_path, "not a readable MATLAB file")


def test_omniglot_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="iwae data download omniglot"):
        load_dataset("omniglot", tmp_path, download="never")
