"""Attempts Seam no longer has: Seam's fake server restarted knows none of the old ids."""

import json
from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from accounts.access import Role
from attempts.counts import compute_stats
from attempts.filters import AttemptFilterForm
from attempts.merge import Observation, merge
from attempts.models import Attempt, Source
from fakeseam import FakeSeam
from seam.refresh import attempts_needing_fetch
from testing.users import logged_in
from testing.webhooks import SECRET, seam_event, signed_headers

pytestmark = [pytest.mark.seam]


def sync() -> str:
    out = StringIO()
    call_command("sync_attempts", stdout=out, stderr=StringIO())
    return out.getvalue()


def no_filters() -> dict:
    form = AttemptFilterForm({})
    assert form.is_valid()
    return form.filters()


def first_missed(ago: timedelta) -> None:
    """Moves the clock: the first answer that left the attempts out came `ago` ago."""
    Attempt.objects.exclude(missing_since=None).update(missing_since=timezone.now() - ago)


@pytest.fixture
def restarted(seam_settings):
    """Seam's fake server started afresh: the attempts recorded from the old one are not on it."""
    with FakeSeam() as fresh:
        seam_settings.SEAM_API_URL = fresh.url
        seam_settings.SEAM_CLIENT_OPTIONS = {"max_attempts": 1}
        yield fresh


@pytest.fixture
def operator(client):
    return logged_in(client, Role.OPERATOR)


@pytest.fixture
def lost(fake_seam, seam_settings) -> str:
    """An attempt recorded pending an hour ago from the fake server as it was."""
    action_attempt_id = fake_seam.lock_door()["action_attempt_id"]
    fake_seam.set_attempt(action_attempt_id, "pending")
    merge(action_attempt_id, Observation("pending"), source=Source.WEBHOOK)
    Attempt.objects.update(first_seen_at=timezone.now() - timedelta(hours=1))
    return action_attempt_id


@pytest.mark.django_db
class TestNotFoundOnSeam:
    def test_it_is_marked_after_enough_refreshes_over_enough_time(self, lost, restarted):
        assert compute_stats(no_filters(), 15)["stuck"] == 1
        for _ in range(5):
            assert "attempts_refreshed=1 attempts_not_in_seam=1" in sync()
        attempt = Attempt.objects.get(action_attempt_id=lost)
        # Five answers without it, but all within minutes: not yet.
        assert (attempt.missing_count, attempt.not_found_at) == (5, None)
        first_missed(timedelta(minutes=29))
        sync()
        assert Attempt.objects.get(action_attempt_id=lost).not_found_at is None

        first_missed(timedelta(minutes=31))
        sync()

        attempt = Attempt.objects.get(action_attempt_id=lost)
        assert attempt.not_found and attempt.status == "pending"
        assert "attempts_refreshed=0" in sync()  # no longer asked about
        assert not attempts_needing_fetch().exists()
        stats = compute_stats(no_filters(), 15)
        assert (stats["types"][0]["pending"], stats["stuck"]) == (1, 0)

    def test_few_refreshes_over_a_long_time_do_not_mark_it(self, lost, restarted):
        sync()
        first_missed(timedelta(hours=5))
        for _ in range(3):
            sync()
        attempt = Attempt.objects.get(action_attempt_id=lost)
        assert (attempt.missing_count, attempt.not_found_at) == (4, None)

    def test_an_answer_that_has_it_starts_the_count_again(self, lost, fake_seam, settings):
        with FakeSeam() as fresh:
            settings.SEAM_API_URL = fresh.url
            for _ in range(4):
                sync()
        settings.SEAM_API_URL = fake_seam.url
        sync()
        attempt = Attempt.objects.get(action_attempt_id=lost)
        assert (attempt.missing_since, attempt.missing_count, attempt.not_found_at) == (
            None,
            None,
            None,
        )

    def test_the_list_and_its_page_say_so_and_a_filter_finds_them(self, lost, restarted, operator):
        done = Observation("success", has_payload=True, result={})
        merge("still_there", done, source=Source.API)  # ended: never asked about again
        for _ in range(5):
            sync()
        first_missed(timedelta(minutes=31))
        sync()

        listed = operator.get("/attempts/").content.decode()
        assert "not found on Seam</span>" in listed and "still_there" in listed
        found = operator.get("/attempts/?not_found=1").content.decode()
        assert lost in found and "still_there" not in found
        page = operator.get(f"/attempts/{lost}/").content.decode()
        assert "Not found on Seam since" in page and "6 refreshes in a row" in page
        assert "data-poll" not in page  # nothing left to ask Seam
        counts = operator.get("/attempts/?not_found=1&status=pending").context["stats"]
        assert (counts["total"], counts["stuck"]) == (1, 0)

    def test_prune_deletes_it_like_an_ended_one(self, lost, restarted):
        Attempt.objects.update(first_seen_at=timezone.now() - timedelta(days=40))
        with pytest.raises(CommandError, match="1 pending attempts"):
            call_command("prune", "--attempt-days", "30", stdout=StringIO())
        for _ in range(5):
            sync()
        first_missed(timedelta(minutes=31))
        sync()

        out = StringIO()
        call_command("prune", "--attempt-days", "30", stdout=out)

        assert "Deleted 1 attempts" in out.getvalue()
        assert not Attempt.objects.filter(action_attempt_id=lost).exists()

    def test_a_webhook_about_it_clears_the_mark(self, lost, restarted, client, settings):
        for _ in range(5):
            sync()
        first_missed(timedelta(minutes=31))
        sync()
        assert Attempt.objects.get(action_attempt_id=lost).not_found
        settings.SEAM_WEBHOOK_SECRET = SECRET
        body = json.dumps(seam_event("evt_late", action_attempt_id=lost)).encode()
        headers = signed_headers(body)

        response = client.post(
            "/webhooks/seam/",
            body,
            content_type=headers.pop("content-type"),
            headers=headers,
        )

        assert response.status_code == 200
        attempt = Attempt.objects.get(action_attempt_id=lost)
        assert (attempt.status, attempt.not_found_at, attempt.missing_count) == (
            "success",
            None,
            None,
        )

    def test_an_explicit_refresh_that_finds_it_clears_the_mark(
        self, lost, fake_seam, operator, settings
    ):
        with FakeSeam() as fresh:
            settings.SEAM_API_URL = fresh.url
            for _ in range(5):
                sync()
            first_missed(timedelta(minutes=31))
            # Asked explicitly, the fresh server still has no such attempt: it stays marked.
            response = operator.post(f"/attempts/{lost}/refresh/", follow=True)
            assert b"did not include this attempt" in response.content
            assert Attempt.objects.get(action_attempt_id=lost).not_found
        settings.SEAM_API_URL = fake_seam.url  # Seam has it again
        fake_seam.set_attempt(lost, "error", error={"type": "device_offline", "message": "x"})

        response = operator.post(f"/attempts/{lost}/refresh/", follow=True)

        assert b"Refreshed from Seam" in response.content
        attempt = Attempt.objects.get(action_attempt_id=lost)
        assert (attempt.status, attempt.not_found_at, attempt.error_type) == (
            "error",
            None,
            "device_offline",
        )
