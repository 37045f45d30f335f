"""Atomic file writes, for every file the product writes (run files, tables, figures, downloaded data): a temp
file in the same directory, fsync, then rename.

A reader (or a killed process) therefore only ever sees the old file or the new one, never half of one; and the
file gets the permissions open() would give it, not the private ones of the temp file. It lives in core, the
lowest layer, so that data/ (downloads) and runs/ share this one implementation.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from iwae_cli.errors import IwaeError

# how the user chooses another folder, named in the errors: the output root unless the caller says otherwise
OUTPUT_FOLDER = "output directory (e.g. output_root=/some/writable/dir)"


def atomic_write(
    path: str | os.PathLike,
    write: Callable[[Any], None],
    mode: str = "wb",
    *,
    folder: str = OUTPUT_FOLDER,
    error: type[IwaeError] = IwaeError,
) -> Path:
    """Call ``write(fileobj)`` on a temp file beside ``path`` and rename it over ``path``.

    On any failure (a full disk, a permission error, an exception in ``write``) the temp file is removed
    and ``path`` is left exactly as it was; an OSError becomes one ``error`` line naming the file and how to
    choose another ``folder``, and any other exception (a rejected download, Ctrl-C) passes through.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as e:
        raise error(f"cannot write to {path.parent}: {e.strerror or e}; choose a writable {folder}") from None
    try:
        with os.fdopen(fd, mode) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, _permissions(path))  # mkstemp makes files private (0600); keep the usual permissions
        os.replace(tmp, path)
    except BaseException as e:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        if isinstance(e, OSError):
            raise error(
                f"could not write {path}: {e.strerror or e}; the previous file (if any) is intact. "
                f"Free some disk space or choose another {folder}, then run the command again."
            ) from None
        raise
    return path


def _permissions(path: Path) -> int:
    """The replaced file's permission bits, or for a new file what open() would give under the umask."""
    try:
        return path.stat().st_mode & 0o777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically."""
    return atomic_write(path, lambda f: f.write(text), mode="w")


def atomic_write_json(path: str | os.PathLike, data: Any) -> Path:
    """Write ``data`` as indented JSON to ``path`` atomically."""
    return atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")


def update_json(path: str | os.PathLike, updates: dict) -> dict:
    """Merge ``updates`` into the JSON object at ``path`` (created if missing), atomically.

    Fields not named in ``updates`` are preserved.
    """
    path = Path(path)
    data = json.loads(path.read_text()) if path.exists() else {}
    data.update(updates)
    atomic_write_json(path, data)
    return data


@contextmanager
def replaced_together(
    target: str | os.PathLike, names: Sequence[str], *, folder: str = OUTPUT_FOLDER
) -> Iterator[Path]:
    """A staging folder inside ``target`` for a set of files that belong together (a table and its figures),
    each of ``names`` a path relative to ``target``.

    When the block ends without an error, each file written into the staging folder replaces its namesake in
    ``target`` (os.replace, in the order of ``names``) and each of ``names`` left unwritten is removed there,
    so the set is never a mix of two runs' files; on any error (a failed figure, Ctrl-C) ``target`` keeps
    its files as they were. The staging folder is removed in both cases.
    """
    target = Path(target)
    try:
        target.mkdir(parents=True, exist_ok=True)
        stage = Path(tempfile.mkdtemp(prefix=".staging-", dir=target))
    except OSError as e:
        raise IwaeError(f"cannot write to {target}: {e.strerror or e}; choose a writable {folder}") from None
    try:
        yield stage
        for name in names:
            new, old = stage / name, target / name
            if new.is_file():
                old.parent.mkdir(parents=True, exist_ok=True)
                os.replace(new, old)
            elif old.is_file():
                old.unlink()
    except OSError as e:
        raise IwaeError(f"could not write {target}: {e.strerror or e}; choose another {folder}") from None
    finally:
        shutil.rmtree(stage, ignore_errors=True)
