"""One live process per run directory: an flock on `<run_dir>/.lock`, and an owner record naming it.

The kernel drops an flock when its process dies (SIGKILL included), so the lock of a killed run is taken over by
the next `iwae train` without help. The owner record `<run_dir>/.owner.json` (pid, host, since) is written once
the lock is held and removed before it is released; a killed process leaves it behind, so it is only believed
while the lock is actually held.
"""

from __future__ import annotations

import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from iwae_cli.core.atomic import atomic_write_json
from iwae_cli.errors import RunError
from iwae_cli.runs.processes import pid_alive

LOCK_NAME = ".lock"
OWNER_NAME = ".owner.json"
# A holder writes its record a few milliseconds after taking the lock, and a lock_owner() probe holds the lock
# for as long; within this grace a busy lock with no live record is retried rather than reported.
GRACE_SECONDS = 2.0
POLL_SECONDS = 0.02

_held: set[Path] = set()  # the run directories this process holds (lock_owner answers for them unprobed)

def _lock(run_dir: Path) -> FileLock:
    # No soft fallback: a soft lock outlives a SIGKILLed owner, which is what this lock must not do.
    return FileLock(str(run_dir / LOCK_NAME), timeout=0, fallback_to_soft=False)


def _live_record(run_dir: Path) -> dict[str, Any] | None:
    """The owner record, unless it is missing or names a dead process on this host (a killed owner's)."""
    try:
        record = json.loads((run_dir / OWNER_NAME).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(record, dict):
        return None
    if record.get("host") == socket.gethostname() and not pid_alive(record.get("pid")):
        return None
    return record


def _take_or_name_holder(lock: FileLock, run_dir: Path) -> dict[str, Any] | None:
    """Take the lock without waiting (None), or return the holder's record; a busy lock without a live record
    (a holder that has not written it yet, or another's brief probe) is retried for GRACE_SECONDS, then
    reported with pid/host/since None."""
    deadline = time.monotonic() + GRACE_SECONDS
    while True:
        try:
            lock.acquire()
            return None
        except Timeout:
            record = _live_record(run_dir)
            if record is not None:
                return record
            if time.monotonic() >= deadline:
                return {"pid": None, "host": None, "since": None}
        time.sleep(POLL_SECONDS)


def busy_message(run_dir: Path, owner: dict[str, Any]) -> str:
    """One line naming the process that owns run_dir, and how to get past it."""
    pid, host = owner.get("pid"), owner.get("host")
    if pid is None:
        return (
            f"{run_dir} is locked by another process that has not named itself in {OWNER_NAME} yet; "
            "wait for it to finish or stop it, then run the command again"
        )
    since = str(owner.get("since") or "?").replace("T", " ")[:19]
    where = "" if host == socket.gethostname() else f" on host {host}"
    return (
        f"{run_dir} is being trained by pid {pid} on host {host} since {since}; "
        f"wait for it to finish or stop it (kill {pid}{where})"
    )


def _owner_record() -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "since": datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": " ".join(sys.argv),
    }


@contextmanager
def hold_run_dir(run_dir: Path) -> Iterator[None]:
    """Own run_dir (which must exist) for the duration of the block, or raise RunError at once naming its
    live owner. Taken once per run by the run lifecycle (iwae_cli.pipeline.lifecycle): a second hold, from
    this process too, is refused like any other."""
    key = Path(run_dir).resolve()
    lock = _lock(key)
    try:
        owner = _take_or_name_holder(lock, key)
    except OSError as e:  # e.g. a read-only directory, or a filesystem without flock
        raise RunError(
            f"cannot lock {key / LOCK_NAME} ({e.strerror or e}); put output_root on a writable local "
            "filesystem that supports flock"
        ) from None
    if owner is not None:
        raise RunError(busy_message(key, owner))
    _held.add(key)
    try:
        atomic_write_json(key / OWNER_NAME, _owner_record())
        yield
    finally:
        _held.discard(key)
        # (a record left by a SIGKILL is harmless: its pid is dead and the lock is free)
        (key / OWNER_NAME).unlink(missing_ok=True)
        lock.release()


def lock_owner(run_dir: str | os.PathLike) -> dict[str, Any] | None:
    """Who is working in run_dir right now: the owner record of the live process holding its lock, else None.

    Contract:
    - None when nobody holds the lock: the directory (or its .lock) does not exist, the last owner finished,
      or it died (even SIGKILLed; its stale .owner.json does not count). None also when the lock cannot be
      probed at all (e.g. a read-only directory), where no `iwae train` could run either.
    - Otherwise a dict with "pid" (int), "host" (str), "since" (ISO 8601 local time with offset) and usually
      "command"; pid/host/since are None if the holder has not written its record within GRACE_SECONDS.
    - A run directory this process holds (hold_run_dir) returns this process's record, without probing.
    - The probe takes the lock for an instant when it is free, and may wait up to GRACE_SECONDS when it is
      busy but unnamed; a holder starting meanwhile retries within that grace, so probing never refuses it.
    """
    path = Path(run_dir).resolve()
    if path in _held:
        return _live_record(path) or _owner_record()
    if not (path / LOCK_NAME).is_file():
        return None
    lock = _lock(path)
    try:
        owner = _take_or_name_holder(lock, path)
    except OSError:
        return None
    if owner is None:
        lock.release()
    return owner
