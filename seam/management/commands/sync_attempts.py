"""Catches up with Seam: the repair for webhooks that never arrived, safe to run every minute.

1. Records the `action_attempt.*` events Seam lists since the newest one recorded (with an
   overlap), exactly as the webhook records them: an event already recorded changes nothing.
2. Where Seam lists attempts without ids, merges the newest pages: attempts never seen appear.
3. Refreshes, in batches, every pending attempt and every ended one whose payload is missing.

Every step goes through the same merge as the webhook and the live pages, so it may run while
they do, and two runs at once are harmless (the second one waits for nothing: it skips).
"""

import time
from datetime import timedelta

from django.conf import settings
from django.core.cache import cache
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from attempts.events import DOCUMENTED_ACTION_ATTEMPT_EVENTS
from attempts.models import WebhookEvent
from dashboard.cache import cache_available
from seam import live
from seam.client import (
    PAGE_LIMIT,
    SeamClient,
    SeamError,
    SeamNotConfigured,
    SeamUnauthorized,
    SeamUnavailable,
)
from seam.ingest import InvalidEvent, record_event
from seam.refresh import attempts_needing_fetch, fetch_and_merge, merge_api_attempt

LOCK_KEY = "sync_attempts:running"
LOCK_SECONDS = 15 * 60
PATIENT = {"max_attempts": 5, "max_backoff": 10.0, "max_total": 45.0}


class Command(BaseCommand):
    help = "Catches up with Seam: missed action_attempt events, new attempts, pending attempts."

    def add_arguments(self, parser):
        parser.add_argument(
            "--overlap-minutes",
            type=int,
            default=60,
            help="list events from this long before the newest one recorded (late deliveries)",
        )
        parser.add_argument(
            "--first-hours",
            type=int,
            default=24,
            help="how far back to list events when none is recorded yet",
        )
        parser.add_argument(
            "--discovery-pages",
            type=int,
            default=10,
            help="at most this many pages of the workspace's attempts to look through",
        )

    def handle(self, *args, overlap_minutes, first_hours, discovery_pages, **options):
        started = time.monotonic()
        try:
            # Not the web's client: a background job can wait out a longer hiccup of Seam's.
            options = {**PATIENT, **getattr(settings, "SEAM_CLIENT_OPTIONS", {})}
            client = SeamClient(settings.SEAM_API_URL, settings.SEAM_API_KEY, **options)
        except SeamNotConfigured as exc:
            raise CommandError(str(exc)) from None
        if not cache.add(LOCK_KEY, True, LOCK_SECONDS):
            if cache_available():
                self.stdout.write("sync_attempts outcome=skipped reason=another_run_in_progress")
                return
            # Overlapping runs are safe, and the catch-up matters most while the cache is down:
            # the pages' live refresh from Seam is paused then.
            self.stderr.write("sync_attempts cache=unavailable: running without the overlap lock")
        counts: dict[str, int | str] = {}
        failures: list[str] = []
        try:
            for step in (self.sync_events, self.discover, self.refresh):
                try:
                    counts |= step(
                        client,
                        overlap=timedelta(minutes=overlap_minutes),
                        first=timedelta(hours=first_hours),
                        pages=discovery_pages,
                    )
                except (SeamUnauthorized, SeamUnavailable) as exc:
                    # Pages say they are stale and the "Seam unreachable" alert counts from
                    # here too, so a Seam down at night is seen with no page open.
                    live.failed(exc)
                    # The other steps would fail the same way: stop, say why.
                    raise CommandError(f"sync_attempts failed: {exc}") from None
                except SeamError as exc:
                    failures.append(f"{step.__name__}: {exc}")
        finally:
            cache.delete(LOCK_KEY)
            client.close()
        live.answered(live.seam_state())
        summary = " ".join(f"{name}={value}" for name, value in counts.items())
        self.stdout.write(f"sync_attempts {summary} duration_s={time.monotonic() - started:.2f}")
        if failures:
            raise CommandError("sync_attempts incomplete: " + "; ".join(failures))

    def sync_events(self, client: SeamClient, *, overlap, first, **_) -> dict[str, int]:
        since = self.newest_event_at()
        since = since - overlap if since else timezone.now() - first
        events = client.list_events(since, sorted(DOCUMENTED_ACTION_ATTEMPT_EVENTS), PAGE_LIMIT)
        # Oldest first, as they happened, so an attempt's history reads in order.
        events.sort(key=lambda e: str(e.get("occurred_at") or "") if isinstance(e, dict) else "")
        recorded = invalid = 0
        for payload in events:
            try:
                recorded += record_event(payload)[1]
            except InvalidEvent:
                invalid += 1
        if len(events) >= PAGE_LIMIT:
            self.stderr.write(
                f"sync_attempts warning: Seam listed a full page of {len(events)} events since"
                f" {since.isoformat()}; run again to catch up with the rest."
            )
        return {
            "events_listed": len(events),
            "events_recorded": recorded,
            "events_already_recorded": len(events) - recorded - invalid,
            "events_invalid": invalid,
        }

    @staticmethod
    def newest_event_at():
        # One indexed look-up per type (event_type, -received_at), not a scan of every event.
        newest = [
            WebhookEvent.objects.filter(event_type=event_type)
            .order_by("-received_at", "-id")
            .values_list("occurred_at", "received_at")
            .first()
            for event_type in DOCUMENTED_ACTION_ATTEMPT_EVENTS
        ]
        times = [occurred or received for occurred, received in filter(None, newest)]
        return max(times, default=None)

    def discover(self, client: SeamClient, *, pages, **_) -> dict[str, int | str]:
        discovered = listed = 0
        cursor = None
        for _ in range(pages):
            page = client.list_page(limit=PAGE_LIMIT, page_cursor=cursor)
            if page is None:
                return {"discovery": "unsupported"}
            merged = [m for data in page.items if (m := merge_api_attempt(data))]
            listed += len(page.items)
            new = sum(m.created for m in merged)
            discovered += new
            cursor = page.next_page_cursor
            # Seam lists newest first: a page with nothing new means the rest is known.
            if not cursor or not new:
                break
        return {"attempts_listed": listed, "attempts_discovered": discovered}

    def refresh(self, client: SeamClient, **_) -> dict[str, int]:
        asked = answered = changed = payloads = 0
        last_pk = 0
        needing = attempts_needing_fetch().order_by("pk").values_list("pk", "action_attempt_id")
        while batch := list(needing.filter(pk__gt=last_pk)[:PAGE_LIMIT]):
            last_pk = batch[-1][0]
            cache.touch(LOCK_KEY, LOCK_SECONDS)  # a long catch-up keeps its turn
            merged = fetch_and_merge([id_ for _, id_ in batch], client)
            asked += len(batch)
            answered += len(merged)
            changed += sum(m.status_changed for m in merged)
            payloads += sum(m.attempt.payload_fetched and m.attempt.is_terminal for m in merged)
        return {
            "attempts_refreshed": asked,
            "attempts_not_in_seam": asked - answered,
            "attempts_ended": changed,
            "payloads_fetched": payloads,
        }
