"""What keeps a long run safe: one run per folder, and stopping cleanly on a signal."""

from __future__ import annotations

import fcntl
import os
import signal
import socket
from pathlib import Path

from ganzoo.errors import UserError

LOCK_NAME = "run.lock"


class RunLock:
    """An exclusive lock on `out_dir/run.lock`, holding "host pid". The kernel drops the lock
    when its process dies, even by kill -9, so a stale file is simply taken over."""

    def __init__(self, out_dir: Path):
        self.path = out_dir / LOCK_NAME
        self._fd: int | None = None

    def __enter__(self) -> "RunLock":
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.read(fd, 200).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise UserError(f"'{self.path.parent}' is in use by another ganzoo run ({holder}); "
                            "wait for it to finish or set run.out_dir to another folder") from None
        os.ftruncate(fd, 0)
        os.write(fd, f"host {socket.gethostname()} pid {os.getpid()}\n".encode())
        self._fd = fd
        return self

    def __exit__(self, *exc) -> bool:
        if self._fd is not None:
            os.close(self._fd)  # releases the lock; the file stays, harmlessly
            self._fd = None
        return False


class Preemption:
    """SIGTERM (SLURM, Kubernetes) and SIGINT (Ctrl-C) ask the run to stop after the current
    iteration, with a snapshot; a second SIGINT aborts at once."""

    EXIT_CODES = {signal.SIGINT: 130, signal.SIGTERM: 143}

    def __init__(self):
        self.signal: int | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> "Preemption":
        for sig in self.EXIT_CODES:
            try:
                self._previous[sig] = signal.signal(sig, self._handle)
            except ValueError:  # not the main thread (e.g. a test runner's worker): no handler
                pass
        return self

    def _handle(self, sig, frame) -> None:
        if self.signal == signal.SIGINT and sig == signal.SIGINT:
            raise KeyboardInterrupt  # the second Ctrl-C: abort now
        self.signal = sig

    def __exit__(self, *exc) -> bool:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        return False

    @property
    def exit_code(self) -> int:
        return self.EXIT_CODES.get(self.signal, 130)

    @property
    def name(self) -> str:
        return signal.Signals(self.signal).name if self.signal else ""
