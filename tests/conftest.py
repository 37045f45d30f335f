"""Pytest fixtures used by several test files."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from tests.helpers.mnist_cache import ensure_mnist
from tests.helpers.mnist_cache import mnist_data_dir as default_data_dir

MNIST_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


@pytest.fixture(scope="session")
def mnist_data_dir() -> Path:
    """The folder holding the real data (mnist/...), where the CLI looks: $IWAE_DATA_DIR, else the user cache.

    MNIST is downloaded there once if it is missing or corrupt (CI points IWAE_DATA_DIR at a folder that has
    it, so CI never downloads); a failed download fails the tests instead of skipping them.
    """
    from iwae_cli.errors import DataError

    root = default_data_dir()
    try:
        return ensure_mnist(root)
    except DataError as e:
        pytest.fail(
            f"real MNIST is not in {root / 'mnist'} and could not be downloaded ({e}); set IWAE_DATA_DIR to a "
            "folder holding mnist/*.gz",
            pytrace=False,
        )



@contextmanager
def local_server(handler: type) -> Iterator[str]:
    """An HTTP server on 127.0.0.1 (a random port) answering with `handler`, in a thread; yields its base URL."""
    import threading
    from http.server import ThreadingHTTPServer

    class QuietServer(ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request, client_address) -> None:
            pass  # a client that hangs up early (a test that interrupts a download) is expected

    server = QuietServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

class MnistMirror:
    """A local HTTP server that serves the real MNIST files under several behaviours.

    ``base(mode)`` is a mirror base URL; a GET of ``<base>/<file name>`` then:
    good: sends the file; e500: answers 500; corrupt: sends the file with its first byte flipped;
    trunc: announces the full Content-Length, sends half the body and closes the connection.
    Every requested path is recorded in ``requests``.
    """

    def __init__(self, url: str, files: dict[str, bytes]):
        self.url = url
        self.files = files
        self.requests: list[str] = []

    def base(self, mode: str) -> str:
        return f"{self.url}/{mode}"


@pytest.fixture(scope="session")
def mnist_mirror(mnist_data_dir: Path):
    """A running :class:`MnistMirror` on 127.0.0.1 (random port), shut down at the end of the session."""
    from http.server import BaseHTTPRequestHandler

    files = {name: (mnist_data_dir / "mnist" / name).read_bytes() for name in MNIST_FILES}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the http.server API)
            mirror.requests.append(self.path)
            mode, _, name = self.path.strip("/").partition("/")
            body = files.get(name)
            if body is None or mode not in ("good", "e500", "corrupt", "trunc"):
                self.send_error(404)
            elif mode == "e500":
                self.send_error(500)
            else:
                if mode == "corrupt":
                    body = bytes([body[0] ^ 0xFF]) + body[1:]
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                # HTTP/1.0: the connection closes after the response, so "trunc" ends early
                self.wfile.write(body[: len(body) // 2] if mode == "trunc" else body)

        def log_message(self, format: str, *args) -> None:  # keep the test output quiet
            pass

    with local_server(Handler) as url:
        mirror = MnistMirror(url, files)
        yield mirror


# ---------------------------------------------------------------------------------------------------------
# The `iwae` command line, in-process and as a subprocess (test_train, test_cli, test_resume, test_errors)

SMOKE_RUN = "mnist/L1-iwae-k5/smoke-text-paper-sum-seed0"  # the run directory `iwae train schedule=smoke` names


class IwaeCli:
    """Runs `iwae <args>` in this process with Typer's CliRunner (cli.run_hydra sets sys.argv for Hydra).

    The fixture sets IWAE_DATA_DIR (the real data) and IWAE_OUTPUT_ROOT (``root``). Asserts that no traceback
    is printed and, with ``ok=True``, that the command succeeds.
    """

    def __init__(self, root: Path):
        self.root = root

    def __call__(self, *args: str, ok: bool = True):
        import torch
        from hydra.core.hydra_config import HydraConfig
        from typer.testing import CliRunner

        from iwae_cli.cli.main import app

        HydraConfig.instance().cfg = None  # as in a fresh process: no HydraConfig from an earlier command
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # tiny models: as fast as two, and far faster on a busy machine
        try:
            result = CliRunner().invoke(app, [str(a) for a in args])
        finally:
            torch.set_num_threads(threads)
        output = result.stdout + result.stderr
        assert "Traceback" not in output, output
        if ok:
            assert result.exit_code == 0, f"exit {result.exit_code}\n{output}\n{result.exception!r}"
        return result

    def run_dir(self, name: str = SMOKE_RUN) -> Path:
        return self.root / "runs" / name


@pytest.fixture
def output_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mnist_data_dir: Path) -> Path:
    """IWAE_DATA_DIR = the real data, IWAE_OUTPUT_ROOT = <tmp>/out (not created), cwd = <tmp>."""
    root = tmp_path / "out"
    monkeypatch.setenv("IWAE_DATA_DIR", str(mnist_data_dir))
    monkeypatch.setenv("IWAE_OUTPUT_ROOT", str(root))
    monkeypatch.chdir(tmp_path)
    return root


@contextmanager
def hydra_log_files_dropped() -> Iterator[None]:
    """On exit, remove the log files Hydra's in-process commands attached to the root logger (a run's train.log):
    a later test's log records must not go there, nor fail to, where a refused config removed the directory."""
    root = logging.getLogger()
    before = set(root.handlers)
    try:
        yield
    finally:
        for handler in [h for h in root.handlers if isinstance(h, logging.FileHandler) and h not in before]:
            root.removeHandler(handler)
            handler.close()


@pytest.fixture
def iwae_cli(output_root: Path) -> Iterator[IwaeCli]:
    """`iwae_cli("train", "schedule=smoke")` runs the CLI in-process; see :class:`IwaeCli`."""
    with hydra_log_files_dropped():
        yield IwaeCli(output_root)


@pytest.fixture(scope="session")
def smoke_run_template(tmp_path_factory: pytest.TempPathFactory, mnist_data_dir: Path) -> Path:
    """A finished `iwae train schedule=smoke k=5` run (trained once per session); copy it, never modify it."""
    root = tmp_path_factory.mktemp("smoke-template")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("IWAE_DATA_DIR", str(mnist_data_dir))
        mp.setenv("IWAE_OUTPUT_ROOT", str(root / "out"))
        mp.chdir(root)
        with hydra_log_files_dropped():
            IwaeCli(root / "out")("train", "schedule=smoke", "k=5", "progress=false")
    return root / "out" / "runs" / SMOKE_RUN


@pytest.fixture
def smoke_run(smoke_run_template: Path, output_root: Path) -> Path:
    """A private copy of the finished smoke run, at <IWAE_OUTPUT_ROOT>/runs/<SMOKE_RUN>."""
    import shutil

    target = output_root / "runs" / SMOKE_RUN
    shutil.copytree(smoke_run_template, target)
    return target


@pytest.fixture(scope="session")
def iwae_script() -> Path:
    """The `iwae` console script of the environment running the tests."""
    import shutil
    import sys

    beside = Path(sys.executable).parent / "iwae"
    found = beside if beside.exists() else shutil.which("iwae")
    assert found, "the iwae console script is not installed (pip install -e .)"
    return Path(found)


@pytest.fixture
def cli_env(output_root: Path, mnist_data_dir: Path) -> dict[str, str]:
    """The environment for an `iwae` subprocess: the real data, output into <tmp>/out, short Hydra errors."""
    env = {k: v for k, v in os.environ.items() if k not in ("HYDRA_FULL_ERROR", "OC_CAUSE")}
    env.update(IWAE_DATA_DIR=str(mnist_data_dir), IWAE_OUTPUT_ROOT=str(output_root), PYTHONUNBUFFERED="1")
    return env


# ---------------------------------------------------------------------------------------------------------
# More datasets: real binarized MNIST beside MNIST, and a local server for generated files


@pytest.fixture(scope="session")
def binarized_mnist_data_dir(mnist_data_dir: Path) -> Path:
    """The data folder (as ``mnist_data_dir``) once it holds verified binarized_mnist/ files, plain or gzipped.

    As for MNIST, missing or corrupt files are downloaded there (from $IWAE_DATA_MIRROR when set). A failed
    download fails the tests in CI (which has the files), and elsewhere skips them with the reason: the 110 MB
    Larochelle files are not what a newcomer's `make test` should depend on, MNIST is.
    """
    from iwae_cli.data.download import download_dataset, verify_dataset
    from iwae_cli.errors import DataError

    if all(status == "ok" for _, status in verify_dataset("binarized_mnist", mnist_data_dir)):
        return mnist_data_dir
    try:
        download_dataset("binarized_mnist", mnist_data_dir, progress=False)
    except DataError as e:
        reason = f"binarized MNIST is not in {mnist_data_dir / 'binarized_mnist'} ({e})"
        if os.environ.get("CI"):
            pytest.fail(reason, pytrace=False)
        pytest.skip(f"{reason}; CI runs these tests")
    return mnist_data_dir


@pytest.fixture
def file_server():
    """A local HTTP server on 127.0.0.1 serving ``server.files`` (name -> bytes, filled by the test) at
    ``server.url + "/" + name``; other paths answer 404. Requested paths are recorded in ``server.requests``."""
    from http.server import BaseHTTPRequestHandler
    from types import SimpleNamespace

    served = SimpleNamespace(files={}, requests=[], url="")

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (the http.server API)
            served.requests.append(self.path)
            body = served.files.get(self.path.lstrip("/"))
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args) -> None:  # keep the test output quiet
            pass

    with local_server(Handler) as served.url:
        yield served
