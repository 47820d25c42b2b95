"""Long streamed responses (the CSV exports) each hold a gunicorn worker for as long as they run,
minutes at ten million rows. At most all but one of an instance's workers stream at once, so a
webhook or /healthz always finds a worker free; an export beyond that is refused up front.

gunicorn.conf.py sets the slots when an instance starts (`configure()`, in the master, so every
worker shares them): one lock file per slot in a directory of the instance's own. A stream holds
one slot's lock until it ends; a worker that dies lets go of it with its file descriptors.
Outside gunicorn (manage.py, the tests' own client) nothing is limited.
"""

import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Generic, TypeVar

from filelock import FileLock, Timeout

T = TypeVar("T")

_slots: list[Path] = []
# A stream lets go of its slot a moment after its last bytes leave, so the same person's next
# export can arrive first: that moment is waited out before an export is refused.
SETTLE_SECONDS = 2.0


class AllSlotsBusy(Exception):
    def __init__(self, slots: int) -> None:
        super().__init__(f"{slots} export{'s' if slots != 1 else ''} already running here")
        self.slots = slots


def configure(directory: Path, slots: int) -> None:
    _slots[:] = [directory / f"stream-{n}.lock" for n in range(max(1, slots))]


def take_slot() -> FileLock | None:
    """A free slot, held (None when nothing is limited). Raises AllSlotsBusy."""
    if not _slots:
        return None
    deadline = time.monotonic() + SETTLE_SECONDS
    while True:
        for path in _slots:
            # Not thread-local: the response is streamed, and its slot let go, by the worker.
            lock = FileLock(path, timeout=0, thread_local=False)
            try:
                lock.acquire()
            except Timeout:
                continue
            return lock
        if time.monotonic() >= deadline:
            raise AllSlotsBusy(len(_slots))
        time.sleep(0.05)


class Holding(Generic[T]):
    """The chunks of a response that holds a slot; the slot is let go when the response is
    closed (the WSGI server closes it at the end, read in full or not, even if never read)."""

    def __init__(self, slot: FileLock | None, chunks: Iterable[T]) -> None:
        self.slot = slot
        self.chunks = iter(chunks)

    def __iter__(self) -> Iterator[T]:
        return self.chunks

    def close(self) -> None:
        if hasattr(self.chunks, "close"):
            self.chunks.close()
        if self.slot is not None and self.slot.is_locked:
            self.slot.release()
