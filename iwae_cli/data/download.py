"""Verified downloads of the data files.

Each file is streamed into a hidden temp file beside its final name while its MD5 (and SHA-256, where known)
are computed; it is renamed onto the final name only if the checksums match (iwae_cli.core.atomic, the product's
one way of writing a file, which also gives it the usual permissions). So the final name only ever holds
a verified file, whatever happens (a dropped connection, a wrong file on a mirror, Ctrl-C). The files, their
checksums and URLs come from the dataset declarations (registry.py).
"""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.request
from pathlib import Path

from tqdm import tqdm

from iwae_cli.core.atomic import atomic_write
from iwae_cli.data.registry import get_dataset
from iwae_cli.data.spec import RemoteFile
from iwae_cli.errors import DataError

TIMEOUT_S = 30.0
DATA_FOLDER = "data directory (--data-dir or IWAE_DATA_DIR)"
_CHUNK = 1 << 20


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
    spec = get_dataset(name)
    folder = Path(data_dir) / spec.name
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise DataError(
            f"cannot create {folder}: {e.strerror or e}; "
            "choose a writable folder with --data-dir or IWAE_DATA_DIR"
        ) from None
    bases = mirrors if mirrors is not None else _env_mirrors()
    paths = []
    for remote in spec.files:
        present, status = _checked(remote, folder)
        if status == "ok":  # kept as it is, in whichever accepted form (e.g. gzipped)
            paths.append(folder / present.name)
            continue
        target = folder / remote.name
        urls = [b.rstrip("/") + "/" + remote.name for b in bases] if bases else list(remote.urls)
        _fetch(remote, urls, target, progress, timeout)
        paths.append(target)
    return paths


def verify_dataset(name: str, data_dir: Path) -> list[tuple[str, str]]:
    """Check the files of ``name`` in ``data_dir/name``.

    Returns ``(file name, status)`` per file (the form of it present, e.g. ``.amat.gz``), status being "ok",
    "missing", "checksum mismatch (...)" or "unreadable (...)".
    """
    spec = get_dataset(name)
    folder = Path(data_dir) / spec.name
    return [(form.name, status) for form, status in (_checked(remote, folder) for remote in spec.files)]


def is_public(name: str) -> bool:
    """Whether every file of ``name`` has a public URL, so that it may be fetched without asking."""
    return all(remote.urls for remote in get_dataset(name).files)


def describe_download(name: str, data_dir: Path) -> str:
    """What :func:`download_dataset` would fetch, e.g. "MNIST (4 files, 11.6 MB) into /data/mnist"."""
    spec = get_dataset(name)
    folder = Path(data_dir) / spec.name
    todo = [remote for remote in spec.files if _checked(remote, folder)[1] != "ok"]
    count = f"{len(todo)} file{'' if len(todo) == 1 else 's'}"
    sizes = [remote.size for remote in todo if remote.size is not None]
    size = f", {sum(sizes) / 1e6:.1f} MB" if todo and len(sizes) == len(todo) else ""
    return f"{spec.title} ({count}{size}) into {folder}"


def _env_mirrors() -> list[str]:
    return [b.strip() for b in os.environ.get("IWAE_DATA_MIRROR", "").split(",") if b.strip()]


def _checked(remote: RemoteFile, folder: Path) -> tuple[RemoteFile, str]:
    """The form of ``remote`` present in ``folder`` (else the canonical one) and its `_status`."""
    form = remote.locate(folder)
    return form, _status(form, folder / form.name)


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
    """Stream ``url`` into ``target`` atomically (core.atomic: a temp file beside it, removed on any failure,
    Ctrl-C included), which takes the final name only if the checksums match."""

    def verified(out) -> None:
        verdict = _compare(remote, *_stream(url, out, target.parent, remote.name, progress, timeout))
        if verdict != "ok":
            raise _Rejected(verdict)

    atomic_write(target, verified, folder=DATA_FOLDER, error=DataError)


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
