"""binarized_mnist: Larochelle's fixed binarisation, read from the real files (gzipped here, or plain), never
binarised again: not by the training step, validation, evaluation or a real `iwae train` run."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

from iwae_cli.core.estimators import estimate_nll, log_likelihood_estimates
from iwae_cli.core.model import Architecture, IWAEModel, initialise
from iwae_cli.core.noise import FixedBinary, binarize
from iwae_cli.data.download import download_dataset, verify_dataset
from iwae_cli.data.loading import Splits, load_dataset, missing_files
from iwae_cli.errors import DataError
from iwae_cli.runs.checkpoint import CHECKPOINT_NAME
from iwae_cli.training import step

FILES = [f"binarized_mnist_{s}.amat" for s in ("train", "valid", "test")]


def amat_rows(root: Path, split: str, n: int) -> np.ndarray:
    """The first ``n`` images of a split, parsed independently of the project (np.loadtxt on its lines)."""
    folder = root / "binarized_mnist"
    plain = folder / f"binarized_mnist_{split}.amat"
    opened = open(plain) if plain.is_file() else gzip.open(f"{plain}.gz", "rt")
    with opened as f:
        lines = [next(f) for _ in range(n)]
    return np.loadtxt(lines, dtype=np.float32, ndmin=2)


@pytest.fixture(scope="module")
def held_and_whole(binarized_mnist_data_dir: Path) -> tuple[Splits, Splits]:
    root = binarized_mnist_data_dir
    return (load_dataset("binarized_mnist", root, download="never"),
            load_dataset("binarized_mnist", root, download="never", holdout=False))


def test_splits_are_the_files_own(held_and_whole, binarized_mnist_data_dir: Path) -> None:
    held, whole = held_and_whole
    assert (held.train.shape, held.valid.shape, held.test.shape) == ((50_000, 784), (10_000, 784), (10_000, 784))
    assert (len(whole.train), len(whole.valid), len(whole.test)) == (60_000, 0, 10_000)
    assert whole.valid.shape == (0, 784)
    # holdout=False: the validation file's images train too, after the training file's
    assert torch.equal(whole.train, torch.cat([held.train, held.valid]))
    root = binarized_mnist_data_dir
    for split, tensor in (("train", held.train), ("valid", held.valid), ("test", held.test)):
        assert np.array_equal(tensor[:3].numpy(), amat_rows(root, split, 3))


def test_images_are_fixed_zeros_and_ones(held_and_whole) -> None:
    held, _ = held_and_whole
    for tensor in (held.train, held.valid, held.test):
        assert isinstance(tensor, FixedBinary) and tensor.dtype == torch.float32
        assert torch.equal(tensor.unique(), torch.tensor([0.0, 1.0]))
    # the fraction of ones of Larochelle's training file (0.1306)
    assert abs(held.train.mean().item() - 0.1306) < 1e-3


def test_binarize_passes_fixed_images_through_without_drawing(held_and_whole) -> None:
    held, _ = held_and_whole
    generator = torch.Generator().manual_seed(0)
    before = generator.get_state()
    batch = held.train[:20].to("cpu")  # slicing and moving keep the mark
    x = binarize(batch, generator)
    assert type(x) is torch.Tensor and torch.equal(x, batch)
    assert torch.equal(generator.get_state(), before)


def test_the_training_step_draws_only_the_noise(held_and_whole) -> None:
    held, _ = held_and_whole
    model = IWAEModel(Architecture((3,), ((8,),), ((8,),)))
    batch, k = held.train[:5], 2
    x, noise = step.draw_minibatch(model, batch, k, torch.Generator().manual_seed(4))
    fresh = torch.Generator().manual_seed(4)
    assert torch.equal(x, batch)
    for eps, shape in zip(noise, model.noise_shapes(k, len(batch)), strict=True):
        assert torch.equal(eps, torch.randn(shape, generator=fresh))


def test_evaluation_uses_the_fixed_images(held_and_whole) -> None:
    held, _ = held_and_whole
    model = IWAEModel(Architecture((3,), ((8,),), ((8,),)))
    initialise(model, torch.full((784,), 0.13), seed=0)
    x = held.test[:6]
    estimate, per_example = estimate_nll(model, x, k=4, seed=7, batch_size=3, chunk=2, progress=False)
    plain = x.as_subclass(torch.Tensor)
    expected = log_likelihood_estimates(model, plain, 4, torch.Generator().manual_seed(7), 3, 2, progress=False)
    assert torch.equal(per_example, expected) and estimate.n == 6


def test_the_gzipped_form_verifies_and_is_never_downloaded_again(binarized_mnist_data_dir: Path) -> None:
    folder = binarized_mnist_data_dir / "binarized_mnist"
    statuses = dict(verify_dataset("binarized_mnist", binarized_mnist_data_dir))
    assert set(statuses.values()) == {"ok"} and len(statuses) == 3
    assert missing_files("binarized_mnist", binarized_mnist_data_dir) == []
    # present and verified: kept, whatever the (unreachable) mirror would give
    paths = download_dataset("binarized_mnist", binarized_mnist_data_dir, mirrors=["http://127.0.0.1:9"], progress=False)
    assert [p.parent for p in paths] == [folder] * 3 and all(p.is_file() for p in paths)


def write_amat(folder: Path, name: str, images: np.ndarray) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    lines = "".join(" ".join(str(int(v)) for v in row) + "\n" for row in images)
    (folder / name).write_text(lines)


def test_the_plain_text_form_loads(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    parts = {split: (rng.random((n, 784)) < 0.2).astype(np.float32) for split, n in (("train", 6), ("valid", 2), ("test", 3))}
    for split, images in parts.items():
        write_amat(tmp_path / "binarized_mnist", f"binarized_mnist_{split}.amat", images)
    splits = load_dataset("binarized_mnist", tmp_path, download="never")
    for split, images in parts.items():
        assert np.array_equal(getattr(splits, split).numpy(), images)


def test_a_malformed_amat_file_is_one_line(tmp_path: Path) -> None:
    folder = tmp_path / "binarized_mnist"
    for split in ("valid", "test"):
        write_amat(folder, f"binarized_mnist_{split}.amat", np.zeros((2, 784)))
    (folder / "binarized_mnist_train.amat").write_text("0.0 1.0\n")
    with pytest.raises(DataError) as e:
        load_dataset("binarized_mnist", tmp_path, download="never")
    message = str(e.value)
    assert str(folder / "binarized_mnist_train.amat") in message and "\n" not in message
    assert "not a binarized MNIST .amat file" in message and "iwae data download binarized_mnist" in message


def test_missing_files_name_the_plain_form(tmp_path: Path) -> None:
    assert missing_files("binarized_mnist", tmp_path) == FILES
    with pytest.raises(DataError, match="binarized MNIST not found in .*iwae data download binarized_mnist"):
        load_dataset("binarized_mnist", tmp_path, download="never")


def test_iwae_train_on_binarized_mnist_sees_the_files_rows(
    iwae_cli, binarized_mnist_data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = []
    original = step.draw_minibatch

    def recording(model, intensities, k, generator):
        state = generator.get_state()
        x, noise = original(model, intensities, k, generator)
        seen.append((x.clone(), state, [eps.clone() for eps in noise], model.noise_shapes(k, len(x))))
        return x, noise

    monkeypatch.setattr(step, "draw_minibatch", recording)
    iwae_cli("train", "dataset=binarized_mnist", "schedule=smoke", "progress=false", "compile=false")
    run = iwae_cli.run_dir("binarized_mnist/L1-iwae-k5/smoke-text-paper-sum-seed0")
    assert (run / CHECKPOINT_NAME).is_file()
    # smoke: 400 training images in minibatches of 20, two passes
    assert len(seen) == 2 * 400 // 20
    x, state, noise, shapes = seen[0]
    assert np.array_equal(x.numpy(), amat_rows(binarized_mnist_data_dir, "train", 20))
    # the step drew its noise straight from the run's generator: no binarisation draw came first
    fresh = torch.Generator().set_state(state)
    assert all(torch.equal(eps, torch.randn(s, generator=fresh)) for eps, s in zip(noise, shapes, strict=True))
