"""`python manage.py load_attempts N`: bulk-loads N realistic attempts, for benchmarks and demos.

They spread over the last 30 days with errors (and their types), results and times to
resolution, and are counted in the hourly rollups in the same transaction, through the same
code as merge(), so the insights and the counts above the list stay exact.

The catalogue of action types, errors and results below is shared with the `demo` command.
"""

import json
import random
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import connection, transaction
from django.utils import timezone

from attempts import rollups, search
from attempts.models import Attempt, Status

# Action types with a weight: mostly locks, as in a real workspace, plus the legacy thermostat
# types older servers still send and one type no list documents.
ACTION_TYPES: dict[str, int] = {
    "LOCK_DOOR": 30,
    "UNLOCK_DOOR": 30,
    "SIMULATE_KEYPAD_CODE_ENTRY": 3,
    "SIMULATE_MANUAL_LOCK_VIA_KEYPAD": 2,
    "SET_HVAC_MODE": 5,
    "SET_FAN_MODE": 3,
    "ACTIVATE_CLIMATE_PRESET": 3,
    "PUSH_THERMOSTAT_PROGRAMS": 1,
    "SET_COOL": 2,
    "SET_HEAT": 2,
    "SET_HEAT_COOL": 1,
    "SET_THERMOSTAT_OFF": 1,
    "CREATE_ACCESS_CODE": 6,
    "UPDATE_ACCESS_CODE": 2,
    "DELETE_ACCESS_CODE": 3,
    "SYNC_ACCESS_CODES": 2,
    "SCAN_CREDENTIAL": 1,
    "ENCODE_CREDENTIAL": 1,
    "CREATE_NOISE_THRESHOLD": 1,
    "RESET_SANDBOX_WORKSPACE": 1,
    "UNLATCH_GATE": 1,
}

LOCK_ERRORS = [
    ("device_offline", "The device is offline and did not receive the command."),
    ("hub_disconnected", "The lock's hub is disconnected from the internet."),
    ("action_attempt_expired", "The device did not respond before the action attempt expired."),
    ("lock_jammed", "The lock reported a jam while moving the bolt."),
    ("door_open", "The door is open: the lock cannot extend its bolt."),
    ("low_battery", "The lock's battery is too low to move the bolt."),
    ("uncategorized_error", "The lock manufacturer's API answered 503 Service Unavailable."),
]
THERMOSTAT_ERRORS = [
    ("device_offline", "The thermostat is offline and did not receive the command."),
    ("hvac_mode_not_supported", "'heat_cool' mode is not available for this thermostat."),
    ("set_point_out_of_range", "Cooling set point 12 °C is below the thermostat's minimum, 16 °C."),
    ("action_attempt_expired", "The thermostat did not respond before the attempt expired."),
]
ACCESS_CODE_ERRORS = [
    ("duplicate_code_on_device", "An access code with the same PIN already exists on the device."),
    ("device_offline", "The device is offline: the code will not reach it."),
    ("code_not_supported", "The lock accepts 4-digit codes only."),
]
CREDENTIAL_ERRORS = [
    ("no_credential_on_encoder", "No card was found on the encoder."),
    ("incompatible_card_format", "The card on the encoder is not in a format this system uses."),
    ("uncategorized_error", "The encoder answered an unknown error."),
]
GENERIC_ERRORS = [
    ("uncategorized_error", "The device manufacturer's API answered an unknown error."),
    ("action_attempt_expired", "The device did not respond before the action attempt expired."),
]


def errors_for(action_type: str) -> list[tuple[str, str]]:
    if "DOOR" in action_type or "KEYPAD" in action_type or action_type == "UNLATCH_GATE":
        return LOCK_ERRORS
    if action_type.startswith("SET_") or "THERMOSTAT" in action_type or "CLIMATE" in action_type:
        return THERMOSTAT_ERRORS
    if "ACCESS_CODE" in action_type:
        return ACCESS_CODE_ERRORS
    if "CREDENTIAL" in action_type:
        return CREDENTIAL_ERRORS
    return GENERIC_ERRORS


def realistic_error(rng: random.Random, action_type: str) -> dict[str, str]:
    error_type, message = rng.choice(errors_for(action_type))
    return {"type": error_type, "message": message}


def realistic_result(rng: random.Random, action_type: str) -> dict[str, Any]:
    if "DOOR" in action_type:
        # Some locks accept the command without confirming the bolt moved.
        return {"was_confirmed_by_device": rng.random() > 0.1}
    if action_type in ("CREATE_ACCESS_CODE", "UPDATE_ACCESS_CODE"):
        return {
            "access_code": {
                "access_code_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                "name": rng.choice(["Cleaner", "Guest", "Maintenance", "Front desk"]),
                "code": f"{rng.randrange(10_000):04d}",
            }
        }
    return {}


COLUMNS = (
    "action_attempt_id",
    "action_type",
    "status",
    "error",
    "error_type",
    "result",
    "workspace_id",
    "first_seen_at",
    "fetched_at",
    "ended_at",
    "payload_fetched",
    "updated_at",
)


def insert(batch: list[Attempt], now: datetime) -> None:
    """Inserts the batch in one statement per batch: PostgreSQL's COPY, SQLite's executemany.

    bulk_create() spends four fifths of a load preparing values field by field; these rows are
    made here, of known types, so they are written as the database stores them.
    """
    table = Attempt._meta.db_table
    columns = ", ".join(COLUMNS)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            with cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for a in batch:
                    copy.write_row(row(a, now, lambda at: at))
            return
        if connection.vendor != "sqlite":
            Attempt.objects.bulk_create(batch)
            return
        marks = ", ".join(["%s"] * len(COLUMNS))
        cursor.executemany(
            f"INSERT INTO {table} ({columns}) VALUES ({marks})",  # noqa: S608 - names only
            [row(a, now, sqlite_time) for a in batch],
        )


def sqlite_time(at: datetime | None) -> str | None:
    # As Django's SQLite backend stores an aware time: naive UTC, as text.
    return None if at is None else str(at.astimezone(UTC).replace(tzinfo=None))


def row(a: Attempt, now: datetime, time_of) -> tuple:
    return (
        a.action_attempt_id,
        a.action_type,
        a.status,
        None if a.error is None else json.dumps(a.error),
        a.error_type,
        None if a.result is None else json.dumps(a.result),
        a.workspace_id,
        time_of(a.first_seen_at),
        time_of(a.fetched_at),
        time_of(a.ended_at),
        a.payload_fetched,
        time_of(now),
    )


class Command(BaseCommand):
    help = "Bulk-loads N realistic attempts (types, statuses, errors, over the last 30 days)."

    def add_arguments(self, parser):
        parser.add_argument("count", type=int, help="how many attempts to add")
        parser.add_argument("--days", type=float, default=30, help="spread over this many days")
        parser.add_argument("--batch-size", type=int, default=5000)
        parser.add_argument("--seed", type=int, default=None, help="for a repeatable load")
        parser.add_argument(
            "--pending", type=float, default=0.01, help="share left pending (default 0.01)"
        )
        parser.add_argument(
            "--error-rate", type=float, default=0.08, help="share that ends in error"
        )

    def handle(self, *args, count: int, days: float, batch_size: int, seed, **options):
        if count < 0 or batch_size < 1 or days <= 0:
            raise CommandError("count must be >= 0, batch size >= 1, days > 0")
        rng = random.Random(seed)
        now = timezone.now()
        span = timedelta(days=days).total_seconds()
        types = list(ACTION_TYPES)
        weights = list(ACTION_TYPES.values())
        if connection.vendor == "sqlite":
            # Random ids land all over the unique index: a big page cache keeps the load fast.
            with connection.cursor() as c:
                c.execute("PRAGMA cache_size = -1048576")
        started = time.monotonic()
        done = 0
        self.decile = 0
        while done < count:
            size = min(batch_size, count - done)
            # Oldest first, as attempts arrive: each batch then adds to the end of the indexes
            # in time order instead of all over them (a load five times faster at ten million).
            batch = [
                self.make_attempt(
                    rng,
                    now,
                    span * (1 - (done + i + rng.random()) / count),
                    types,
                    weights,
                    options,
                )
                for i in range(size)
            ]
            with transaction.atomic():
                insert(batch, now)
                rollups.count(batch)
            done += size
            self.progress(done, count, started)
        # The id search's index, in one go rather than at the first search.
        search.catch_up_all()
        elapsed = time.monotonic() - started
        self.stdout.write(f"Loaded {count:,} attempts in {elapsed:.1f} s.")

    def make_attempt(self, rng, now: datetime, age: float, types, weights, options) -> Attempt:
        """An attempt first seen `age` seconds ago (unless it is left pending: those are new)."""
        action_type = rng.choices(types, weights)[0]
        roll = rng.random()
        if roll < options["pending"]:
            status = Status.PENDING
            # Mostly just started; one in ten stuck for hours.
            age = rng.uniform(0, 60) if rng.random() < 0.9 else rng.uniform(3600, 86400)
        else:
            status = Status.ERROR if roll < options["pending"] + options["error_rate"] else None
            status = status or Status.SUCCESS
        first_seen = now - timedelta(seconds=age)
        attempt = Attempt(
            action_attempt_id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            action_type=action_type,
            status=status,
            workspace_id="5d6b7e2c-3f0a-4a8e-9c1d-2b7f6e4a9c10",
            first_seen_at=first_seen,
        )
        if status != Status.PENDING:
            # Most end within seconds; a long tail takes minutes.
            duration = min(rng.lognormvariate(1.0, 1.2), age)
            attempt.ended_at = attempt.fetched_at = first_seen + timedelta(seconds=duration)
            attempt.payload_fetched = True
            if status == Status.ERROR:
                attempt.error = realistic_error(rng, action_type)
                attempt.error_type = attempt.error["type"]
            else:
                attempt.result = realistic_result(rng, action_type)
        return attempt

    def progress(self, done: int, total: int, started: float) -> None:
        rate = done / max(time.monotonic() - started, 1e-9)
        width = 30
        filled = width * done // max(total, 1)
        line = f"[{'#' * filled}{'.' * (width - filled)}] {done:,}/{total:,} ({rate:,.0f}/s)"
        if self.stderr.isatty():
            self.stderr.write(f"\r{line}", ending="\n" if done == total else "")
        elif done == total or done * 10 // total > self.decile:
            # Not a terminal (a log file, CI): a line per tenth instead of redrawing.
            self.decile = done * 10 // total
            self.stderr.write(line)
