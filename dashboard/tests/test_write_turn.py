import os
import threading
import time

import pytest
from django.db import OperationalError, connection

from dashboard.sqlite import write_turn

# SQLite has one writer at a time, and its writers queue on the turn; PostgreSQL locks rows
# itself, and there the turn lets everyone through. Each test checks what holds on its pass.
SQLITE = connection.vendor == "sqlite"


def busy_timeout_ms() -> int:
    with connection.cursor() as cursor:
        cursor.execute("PRAGMA busy_timeout")
        return cursor.fetchone()[0]


class Holder(threading.Thread):
    """Holds the write turn in a thread of its own until released."""

    def __init__(self) -> None:
        super().__init__()
        self.holding, self.release = threading.Event(), threading.Event()

    def run(self) -> None:
        with write_turn():
            self.holding.set()
            self.release.wait(10)

    def __enter__(self) -> "Holder":
        self.start()
        assert self.holding.wait(10)
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.join(10)


def test_threads_of_one_process_take_turns(db):
    entered = threading.Event()

    def wait_for_the_turn() -> None:
        with write_turn():
            entered.set()

    with Holder():
        waiter = threading.Thread(target=wait_for_the_turn)
        waiter.start()
        assert entered.wait(0.2 if SQLITE else 10) is not SQLITE
    assert entered.wait(10)
    waiter.join(10)


def test_a_bounded_wait_past_its_deadline_fails(db):
    if not SQLITE:
        with Holder(), write_turn(0.1):
            return  # nothing to wait for
    with Holder():
        started = time.monotonic()
        with pytest.raises(OperationalError, match="waited for the write turn"):
            with write_turn(0.1):
                pytest.fail("entered a turn another thread holds")
        assert 0.1 <= time.monotonic() - started < 2
        with pytest.raises(OperationalError):
            with write_turn(-1):
                pass
    # The turn it did not get is free once the holder is done.
    with write_turn(0.1):
        pass


def test_a_bounded_turn_bounds_sqlites_own_wait_by_what_is_left(db):
    if not SQLITE:
        with write_turn(2.0):
            pass
        assert not os.path.exists(f"{connection.settings_dict['NAME']}-webhook-lock")
        return
    usual = busy_timeout_ms()
    with write_turn(2.0):
        assert 1000 < busy_timeout_ms() <= 2000
    assert busy_timeout_ms() == usual
    with write_turn():
        assert busy_timeout_ms() == usual
