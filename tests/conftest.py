"""Shared pytest fixtures."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

MNIST_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)


@pytest.fixture(scope="session")
def shared_data_dir() -> Path:
    """The folder holding the real data (mnist/...): $IWAE_DATA_DIR, else shared/data beside the repository.

    CI always has it, so a missing folder fails the tests instead of skipping them.
    """
    configured = os.environ.get("IWAE_DATA_DIR")
    root = Path(configured) if configured else Path(__file__).resolve().parents[2] / "shared" / "data"
    missing = [name for name in MNIST_FILES if not (root / "mnist" / name).is_file()]
    if missing:
        pytest.fail(
            f"real MNIST not found in {root / 'mnist'} (missing {', '.join(missing)}): set IWAE_DATA_DIR to "
            "a folder holding mnist/*.gz, or put the repository beside shared/ (shared/data/mnist)",
            pytrace=False,
        )
    return root


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
def mnist_mirror(shared_data_dir: Path):
    """A running :class:`MnistMirror` on 127.0.0.1 (random port), shut down at the end of the session."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    files = {name: (shared_data_dir / "mnist" / name).read_bytes() for name in MNIST_FILES}

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

    class QuietServer(ThreadingHTTPServer):
        def handle_error(self, request, client_address) -> None:
            pass  # a client that hangs up early (a test that interrupts a download) is expected

    server = QuietServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    mirror = MnistMirror(f"http://127.0.0.1:{server.server_address[1]}", files)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield mirror
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
