"""`python manage.py prune`: deletes what is older than the retention settings, in small batches.

- Webhook events and status-history rows older than EVENT_RETENTION_DAYS (an event that a kept
  history row still names stays with it).
- Ended attempts, and those Seam no longer has (not found on Seam), first seen before
  ATTEMPT_RETENTION_DAYS, counted back to a whole day, with their history and events; operator
  actions keep their record, without the link.
The hourly rollups stay, so trends outlive what is pruned (and `rebuild_rollups` keeps the
days before the oldest attempt). Each batch is its own short transaction, so webhooks keep
landing between them (it pauses after each). Every argument is checked before anything is deleted.
"""

import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from attempts import rollups
from attempts.models import Attempt, OperatorAction, Status, StatusChange, WebhookEvent

DEFAULT_BATCH = 200
# After each batch, a pause of at least this long and twice the batch's time: SQLite has one
# writer at a time, and a webhook waiting for the lock must get it before the next batch does.
MIN_PAUSE = 0.02
# Attempts that will not change any more: ended, or no longer on Seam (not found on Seam).
PRUNABLE = ~Q(status=Status.PENDING) | Q(not_found_at__isnull=False)


def days_of(value: object, name: str) -> int | None:
    """Whole days of at least 1, or None for "keep everything"; anything else is refused."""
    if value in (None, ""):
        return None
    try:
        days = int(str(value))
    except ValueError:
        raise CommandError(f"{name} must be a whole number of days, not {value!r}.") from None
    if days < 1:
        raise CommandError(
            f"{name} must be at least 1 day (got {days}); leave it empty to keep everything."
        )
    return days


class Command(BaseCommand):
    help = (
        "Deletes webhook events and history older than EVENT_RETENTION_DAYS and ended attempts "
        "older than ATTEMPT_RETENTION_DAYS, in batches; the hourly rollups stay."
    )

    def add_arguments(self, parser):
        parser.add_argument("--event-days", help="overrides EVENT_RETENTION_DAYS")
        parser.add_argument("--attempt-days", help="overrides ATTEMPT_RETENTION_DAYS")
        parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH)
        parser.add_argument(
            "--dry-run", action="store_true", help="say what would go, delete nothing"
        )

    def handle(self, *args, event_days, attempt_days, batch_size: int, dry_run: bool, **options):
        event_days = days_of(
            settings.EVENT_RETENTION_DAYS if event_days is None else event_days,
            "--event-days" if event_days is not None else "EVENT_RETENTION_DAYS",
        )
        attempt_days = days_of(
            settings.ATTEMPT_RETENTION_DAYS if attempt_days is None else attempt_days,
            "--attempt-days" if attempt_days is not None else "ATTEMPT_RETENTION_DAYS",
        )
        if not 1 <= batch_size <= 100_000:
            raise CommandError("--batch-size must be between 1 and 100000.")
        now = timezone.now()
        events_before = now - timedelta(days=event_days) if event_days else None
        # A whole day: every attempt of a day goes, or none, so `rebuild_rollups` can tell the
        # pruned days (before the oldest attempt) from the rest.
        attempts_before = (
            rollups.day_of(now - timedelta(days=attempt_days)) if attempt_days else None
        )
        if attempts_before:
            pending = (
                Attempt.objects.filter(first_seen_at__lt=attempts_before).exclude(PRUNABLE).count()
            )
            if pending:
                raise CommandError(
                    f"{pending} pending attempts were first seen before "
                    f"{attempts_before:%Y-%m-%d %H:%M} UTC, and ATTEMPT_RETENTION_DAYS would "
                    "delete them: keep attempts longer, or refresh them from Seam first (those "
                    "Seam no longer has are marked so, and then pruned). "
                    "Nothing was deleted."
                )
        if events_before is None and attempts_before is None:
            self.stdout.write(
                "No retention set (EVENT_RETENTION_DAYS, ATTEMPT_RETENTION_DAYS): nothing to prune."
            )
            return
        if dry_run:
            self.dry_run(events_before, attempts_before)
            return
        started = time.monotonic()
        if attempts_before:
            n = self.prune_attempts(attempts_before, batch_size)
            self.stdout.write(
                f"Deleted {n:,} attempts first seen before {attempts_before:%Y-%m-%d %H:%M} UTC."
            )
        if events_before:
            history, events = self.prune_events(events_before, batch_size)
            self.stdout.write(
                f"Deleted {history:,} history rows and {events:,} webhook events older than "
                f"{events_before:%Y-%m-%d %H:%M} UTC."
            )
        self.stdout.write(f"Done in {time.monotonic() - started:.1f} s.")

    def dry_run(self, events_before: datetime | None, attempts_before: datetime | None) -> None:
        if attempts_before:
            old = Attempt.objects.filter(PRUNABLE, first_seen_at__lt=attempts_before)
            self.stdout.write(
                f"Would delete {old.count():,} attempts first seen before "
                f"{attempts_before:%Y-%m-%d %H:%M} UTC, with "
                f"{StatusChange.objects.filter(attempt__in=old).count():,} history rows and "
                f"{WebhookEvent.objects.filter(attempt__in=old).count():,} webhook events."
            )
        if events_before:
            self.stdout.write(
                f"Would delete {StatusChange.objects.filter(at__lt=events_before).count():,} "
                f"history rows and {old_events(events_before).count():,} webhook events older "
                f"than {events_before:%Y-%m-%d %H:%M} UTC."
            )
        self.stdout.write("Dry run: nothing was deleted.")

    def prune_attempts(self, before: datetime, batch_size: int) -> int:
        # Chosen again inside each batch's transaction, its rows locked: a webhook may have
        # found one not found on Seam meanwhile (or added a pending attempt from before the
        # cutoff): it stays.
        old = Attempt.objects.filter(PRUNABLE, first_seen_at__lt=before).order_by(
            "first_seen_at", "id"
        )
        deleted = 0
        while chosen := list(old.values_list("pk", flat=True)[:batch_size]):
            with paced(), transaction.atomic():
                batch = list(
                    old.filter(pk__in=chosen).select_for_update().values_list("pk", flat=True)
                )
                StatusChange.objects.filter(attempt_id__in=batch).delete()
                WebhookEvent.objects.filter(attempt_id__in=batch).delete()
                OperatorAction.objects.filter(attempt_id__in=batch).update(attempt=None)
                deleted += Attempt.objects.filter(pk__in=batch).delete()[0]
            if len(chosen) < batch_size:
                break
        return deleted

    def prune_events(self, before: datetime, batch_size: int) -> tuple[int, int]:
        history = events = 0
        last = 0
        while True:
            # By primary key: history rows grow in time order, and no index on `at` is needed.
            batch = list(
                StatusChange.objects.filter(pk__gt=last, at__lt=before)
                .order_by("pk")
                .values_list("pk", flat=True)[:batch_size]
            )
            if not batch:
                break
            last = batch[-1]
            history += deleted(StatusChange.objects.filter(pk__in=batch))
        old = old_events(before).order_by("received_at", "id")
        while batch := list(old.values_list("pk", flat=True)[:batch_size]):
            events += deleted(WebhookEvent.objects.filter(pk__in=batch))
            if len(batch) < batch_size:
                break
        return history, events


def old_events(before: datetime) -> QuerySet[WebhookEvent]:
    named = StatusChange.objects.filter(event=OuterRef("pk"))
    return WebhookEvent.objects.filter(received_at__lt=before).exclude(Exists(named))


def deleted(qs: QuerySet) -> int:
    with paced(), transaction.atomic():
        return qs.delete()[0]


@contextmanager
def paced() -> Iterator[None]:
    started = time.monotonic()
    yield
    time.sleep(max(MIN_PAUSE, 2 * (time.monotonic() - started)))
