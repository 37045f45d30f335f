"""Verified downloads of the data files.

Each file is streamed into a hidden temp file beside its final name while its MD5 (and SHA-256, where known)
are computed; it is renamed onto the final name only if the checksums match. So the final name only ever holds
a verified file, whatever happens (a dropped connection, a wrong file on a mirror, Ctrl-C).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from .errors import DataError

TIMEOUT_S = 30.0
_CHUNK = 1 << 20


@dataclass(frozen=True)
class RemoteFile:
    """A data file: its name in the dataset folder, its checksums and the URLs to fetch it from, in order."""

    name: str
    md5: str
    sha256: str | None
    urls: tuple[str, ...]


_MNIST_BASES = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
    "http://yann.lecun.com/exdb/mnist/",
)
# (name, md5, sha256): the canonical files, as recorded in shared/data/README.md
_MNIST_FILES = (
    (
        "train-images-idx3-ubyte.gz",
        "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
    ),
    (
        "train-labels-idx1-ubyte.gz",
        "d53e105ee54ea40749a09fcbcd1e9432",
        "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
    ),
    (
        "t10k-images-idx3-ubyte.gz",
        "9fb629c4189551a2d022fa330f9573f3",
        "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
    ),
    (
        "t10k-labels-idx1-ubyte.gz",
        "ec29112dd5afa0611ce80d1b7f02629c",
        "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
    ),
)

REMOTE_FILES: dict[str, tuple[RemoteFile, ...]] = {
    "mnist": tuple(
        RemoteFile(name, md5, sha256, tuple(base + name for base in _MNIST_BASES))
        for name, md5, sha256 in _MNIST_FILES
    ),
    "omniglot": (
        RemoteFile(
            "chardata.mat",
            "21ecaf34373511aa7691cf2e0802aa3d",
            None,  # no trusted SHA-256 is published; the MD5 is the one the authors' file has
            ("https://raw.githubusercontent.com/yburda/iwae/master/datasets/OMNIGLOT/chardata.mat",),
        ),
    ),
}


class _Rejected(Exception):
    """One URL did not give the right file; the message says why, briefly."""


def download_dataset(
    name: str,
    data_dir: Path,
    mirrors: list[str] | None = None,
    progress: bool = True,
    *,
    timeout: float = TIMEOUT_S,
) -> list[Path]:
    """Download the files of ``name`` into ``data_dir/name`` and return their paths.

    Files already present with the right checksums are kept. ``mirrors`` (or, when None, the comma-separated
    base URLs in ``$IWAE_DATA_MIRROR``) replace the default URLs: a file is fetched from ``base/<file name>``.
    Each URL is tried in turn; :class:`DataError` says what went wrong at each if none gives the right file.
    """
    files = _remote_files(name)
    folder = Path(data_dir) / name.lower()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(
            f"cannot create {folder}: {e.strerror or e}; "
            "choose a writable folder with --data-dir or IWAE_DATA_DIR"
        ) from None
    bases = mirrors if mirrors is not None else _env_mirrors()
    paths = []
    for remote in files:
        target = folder / remote.name
        if not (target.is_file() and _status(remote, target) == "ok"):
            urls = [b.rstrip("/") + "/" + remote.name for b in bases] if bases else list(remote.urls)
            _fetch(remote, urls, target, progress, timeout)
        paths.append(target)
    return paths


def verify_dataset(name: str, data_dir: Path) -> list[tuple[str, str]]:
    """Check the files of ``name`` in ``data_dir/name``.

    Returns ``(file name, status)`` per file, status being "ok", "missing", "checksum mismatch (...)" or
    "unreadable (...)".
    """
    folder = Path(data_dir) / name.lower()
    return [(remote.name, _status(remote, folder / remote.name)) for remote in _remote_files(name)]


def _remote_files(name: str) -> tuple[RemoteFile, ...]:
    try:
        return REMOTE_FILES[str(name).lower()]
    except KeyError:
        known = ", ".join(REMOTE_FILES)
        raise DataError(f"unknown dataset {name!r}: the known datasets are {known}") from None


def _env_mirrors() -> list[str]:
    return [b.strip() for b in os.environ.get("IWAE_DATA_MIRROR", "").split(",") if b.strip()]


def _status(remote: RemoteFile, path: Path) -> str:
    """ "ok", "missing", "unreadable (...)" or "checksum mismatch (...)" for the file at ``path``."""
    if not path.is_file():
        return "missing"
    md5, sha256 = hashlib.md5(), hashlib.sha256()
    try:
        with open(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                md5.update(chunk)
                sha256.update(chunk)
    except OSError as e:
        return f"unreadable ({e.strerror or e})"
    return _compare(remote, md5.hexdigest(), sha256.hexdigest())


def _compare(remote: RemoteFile, md5: str, sha256: str) -> str:
    if md5 != remote.md5:
        return f"checksum mismatch (got md5 {md5}, expected {remote.md5})"
    if remote.sha256 is not None and sha256 != remote.sha256:
        return f"checksum mismatch (got sha256 {sha256}, expected {remote.sha256})"
    return "ok"


def _fetch(remote: RemoteFile, urls: list[str], target: Path, progress: bool, timeout: float) -> None:
    """Try each URL until one gives the right file at ``target``; else raise DataError listing failures."""
    failures = []
    for url in urls:
        try:
            _fetch_one(remote, url, target, progress, timeout)
            return
        except _Rejected as e:
            failures.append(f"{url}: {e}")
    raise DataError(
        f"could not download {remote.name}: {'; '.join(failures) or 'no URL to try'}. Check your connection "
        f"or place the file at {target} by hand (md5 {remote.md5}); see `iwae data verify`"
    )


def _fetch_one(remote: RemoteFile, url: str, target: Path, progress: bool, timeout: float) -> None:
    """Stream ``url`` into a temp file beside ``target``; rename it onto ``target`` if the checksums match."""
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{remote.name}.", suffix=".part", dir=target.parent)
    except OSError as e:
        raise DataError(
            f"cannot write to {target.parent}: {e.strerror or e}; choose a writable --data-dir"
        ) from None
    try:
        with os.fdopen(fd, "wb") as out:
            md5, sha256 = _stream(url, out, target.parent, remote.name, progress, timeout)
            out.flush()
            os.fsync(out.fileno())
        verdict = _compare(remote, md5, sha256)
        if verdict != "ok":
            raise _Rejected(verdict)
        os.replace(tmp, target)
    except BaseException:
        # any failure, Ctrl-C included: no partial file may stay behind
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def _stream(url: str, out, folder: Path, label: str, progress: bool, timeout: float) -> tuple[str, str]:
    """Copy ``url`` into ``out``; return the (md5, sha256) of the bytes. _Rejected on network problems."""
    md5, sha256 = hashlib.md5(), hashlib.sha256()
    received = 0
    try:
        request = urllib.request.Request(url, headers={"User-Agent": "iwae-cli"})
        with urllib.request.urlopen(request, timeout=timeout) as response:
            length = response.headers.get("Content-Length")
            total = int(length) if length and length.isdigit() else None
            bar = tqdm(total=total, unit="B", unit_scale=True, desc=label, disable=not progress, leave=False)
            with bar:
                while chunk := response.read(_CHUNK):
                    _write(out, chunk, folder)
                    md5.update(chunk)
                    sha256.update(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
    except urllib.error.HTTPError as e:
        raise _Rejected(f"HTTP {e.code}") from None
    except urllib.error.URLError as e:
        raise _Rejected(f"network error ({_reason(e.reason)})") from None
    except http.client.IncompleteRead as e:
        raise _Rejected(f"truncated: {received + len(e.partial)} bytes, then the connection closed") from None
    except (http.client.HTTPException, OSError) as e:  # timeouts, resets, malformed responses
        raise _Rejected(f"network error ({_reason(e)})") from None
    except ValueError as e:  # urllib's answer to a malformed URL or an unknown scheme
        raise _Rejected(f"invalid URL ({_reason(e)})") from None
    # http.client returns a short body without complaint when the server closes early: compare ourselves
    if total is not None and received < total:
        raise _Rejected(f"truncated: {received} of {total} bytes")
    return md5.hexdigest(), sha256.hexdigest()


def _write(out, chunk: bytes, folder: Path) -> None:
    # a full disk is not a network problem: stop at once (DataError escapes _stream), don't try the next URL
    try:
        out.write(chunk)
    except OSError as e:
        raise DataError(
            f"cannot write in {folder}: {e.strerror or e}; free some disk space or choose another --data-dir"
        ) from None


def _reason(e: object) -> str:
    if isinstance(e, OSError) and e.strerror:
        return e.strerror
    text = str(e).splitlines()[0] if str(e) else ""
    return text or type(e).__name__
