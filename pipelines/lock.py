"""One run at a time per pipeline: an exclusive ``flock`` on ``WORK/run.lock``.

The kernel releases a ``flock`` when its holder dies, however it dies (``kill -9``, a
lost node's reboot), so a crashed run can never leave the pipeline locked: the file's
contents (pid, host, start time) then describe a holder that is gone, and the next run
takes the lock over and says so. The contents are only ever read to name the holder in
a message. ``flock`` is per host: a work directory shared over NFS between hosts needs
the scheduler to keep runs apart (``concurrencyPolicy: Forbid`` in
``infra/schedule/cronjob.yaml``).
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from pathlib import Path

LOCK_FILE = "run.lock"


class LockHeld(RuntimeError):
    """Another run of the same pipeline holds the lock."""


class PipelineLock:
    def __init__(self, work: Path, pipeline: str, wait: bool = False, poll_seconds: float = 2.0):
        self.path = work / LOCK_FILE
        self.pipeline = pipeline
        self.wait = wait
        self.poll_seconds = poll_seconds
        self._fd: int | None = None
        self.took_over: dict | None = None

    def holder(self) -> dict:
        try:
            return json.loads(self.path.read_text(encoding="utf-8") or "{}")
        except (OSError, ValueError):
            return {}

    def acquire(self) -> PipelineLock:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        announced = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not self.wait:
                    os.close(fd)
                    raise LockHeld(self._held_message()) from None
                if not announced:
                    print(f"dapt run: waiting for {self._held_message()}", file=sys.stderr, flush=True)
                    announced = True
                time.sleep(self.poll_seconds)
        previous = self.holder()
        if previous.get("pid"):
            # We hold the flock, so whoever wrote this is gone without releasing it.
            self.took_over = previous
            print(
                f"dapt run: taking over the stale lock of a crashed run (pid {previous['pid']} on "
                f"{previous.get('host', '?')}, started {previous.get('started', '?')})",
                file=sys.stderr, flush=True,
            )
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps({
            "pid": os.getpid(), "host": socket.gethostname(), "pipeline": self.pipeline,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "argv": sys.argv,
        }).encode(), 0)
        os.fsync(fd)
        self._fd = fd
        return self

    def _held_message(self) -> str:
        h = self.holder()
        who = f"pid {h.get('pid', '?')} on {h.get('host', '?')}, started {h.get('started', '?')}"
        return f"pipeline {self.pipeline!r} is being run by {who} (lock {self.path})"

    def release(self) -> None:
        if self._fd is None:
            return
        # Emptied first: a file that still names a holder after release means a crash.
        os.ftruncate(self._fd, 0)
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
        self._fd = None

    def __enter__(self) -> PipelineLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()
