"""An exclusive lock on a run folder for the life of a training process.

``RunLock(run_dir).acquire()`` takes an OS-level lock (``fcntl.flock``) on
``run_dir/.lock``: the kernel drops it when the process ends, however it ends, so a crash
never leaves a stale lock. The file holds the holder's pid and command line, which the
second process names in its error. Readers (``lebm sample``, ``lebm eval``, ``lebm.load``)
never lock: they read complete checkpoints only.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from lebm.errors import LebmError

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no locking
    fcntl = None  # type: ignore[assignment]

LOCK_FILE = ".lock"


class RunLockedError(LebmError):
    """Another process trains in this run folder."""


class RunLock:
    """Exclusive, non-blocking, released by ``release`` or by the process ending."""

    def __init__(self, run_dir: str | os.PathLike) -> None:
        self.path = Path(run_dir) / LOCK_FILE
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> None:
        """Take the lock or raise ``RunLockedError`` naming the holder at once."""
        if self._fd is not None or fcntl is None:
            return
        folder = self.path.parent
        if folder.exists() and not folder.is_dir():
            raise LebmError(f"{folder} is a file, not a folder: choose another --run-dir")
        try:
            folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:  # a file in the way, no permission, a read-only disk
            raise LebmError(f"cannot use {self.path.parent} as a run folder: "
                            f"{exc.strerror or exc}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            holder = self.path.read_text(errors="replace").strip() or "unknown"
            raise RunLockedError(f"{self.path.parent} is in use by another lebm process "
                                 f"({holder}); wait for it to finish or stop it") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"pid {os.getpid()}: {' '.join(sys.argv)}".encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor drops the flock
            self._fd = None

    def __del__(self) -> None:
        self.release()
