import re
from datetime import timedelta

import pytest
from django.utils import timezone

from attempts.models import WebhookEvent
from attempts.paging import PAGE_SIZE
from seam.ingest import record_event


def event(n: int, event_type: str = "action_attempt.lock_door.succeeded", **fields) -> dict:
    return {
        "event_id": f"evt_{n}",
        "event_type": event_type,
        "action_attempt_id": f"aa_{n}",
        "action_type": "LOCK_DOOR",
        "status": "success",
        "workspace_id": "ws_1",
        "created_at": "2026-11-20T10:00:00.000Z",
        "occurred_at": "2026-11-20T10:00:00.000Z",
        **fields,
    }


def event_ids(html: str) -> list[str]:
    return re.findall(r'<td class="id hide-sm"><code>(evt_[^<]*)</code></td>', html)


@pytest.mark.django_db
class TestEventList:
    def test_it_needs_a_login(self, client):
        response = client.get("/events/")
        assert response.status_code == 302
        assert response["Location"].startswith("/accounts/login/")

    def test_it_rejects_post(self, admin_client):
        assert admin_client.post("/events/").status_code == 405

    def test_it_lists_newest_first_linking_to_attempts(self, admin_client):
        for n in range(3):
            record_event(event(n))
        record_event({"event_id": "evt_dev", "event_type": "device.connected", "device_id": "d"})
        response = admin_client.get("/events/")
        assert response.status_code == 200
        html = response.content.decode()
        assert event_ids(html) == ["evt_dev", "evt_2", "evt_1", "evt_0"]
        for n in range(3):
            assert f'href="/attempts/aa_{n}/"' in html
        assert "unknown type" not in html

    def test_it_flags_unknown_types_and_escapes_payloads(self, admin_client):
        record_event(
            event(
                1, "action_attempt.<script>alert(1)</script>.succeeded", note="<script>x</script>"
            )
        )
        html = admin_client.get("/events/").content.decode()
        assert "unknown type" in html and 'class="unknown"' in html
        assert "<script>alert(1)" not in html and "<script>x" not in html
        assert "action_attempt.&lt;script&gt;alert(1)&lt;/script&gt;.succeeded" in html
        # The raw payload, pretty-printed, inside a <details>.
        assert re.search(
            r'<details class="payload">.*&quot;note&quot;: &quot;&lt;script&gt;x', html, re.S
        )

    def test_it_filters_by_event_type_repeatable(self, admin_client):
        record_event(event(1, "action_attempt.lock_door.succeeded"))
        record_event(event(2, "action_attempt.unlock_door.failed", status="error"))
        record_event(event(3, "action_attempt.lock_door.failed", status="error"))
        url = (
            "/events/?event_type=action_attempt.lock_door.failed"
            "&event_type=action_attempt.unlock_door.failed"
        )
        assert event_ids(admin_client.get(url).content.decode()) == ["evt_3", "evt_2"]
        # A type never recorded nor documented is a valid filter, matching nothing.
        response = admin_client.get("/events/?event_type=thing.new")
        assert response.status_code == 200 and event_ids(response.content.decode()) == []

    def test_it_finds_by_event_id_or_attempt_id(self, admin_client):
        for n in range(3):
            record_event(event(n))
        record_event(event(9, "action_attempt.lock_door.failed", action_attempt_id="aa_1"))
        assert event_ids(admin_client.get("/events/?q=evt_2").content.decode()) == ["evt_2"]
        html = admin_client.get("/events/?q=+aa_1+").content.decode()
        assert event_ids(html) == ["evt_9", "evt_1"]
        assert event_ids(admin_client.get("/events/?q=nothing").content.decode()) == []

    def test_it_pages_with_a_cursor(self, admin_client):
        now = timezone.now()
        # Pairs share a received_at: the id breaks the tie, so no row is skipped or repeated.
        WebhookEvent.objects.bulk_create(
            WebhookEvent(
                event_id=f"evt_{n:03d}",
                event_type="lock.locked",
                payload={"n": n},
                received_at=now - timedelta(seconds=n // 2),
            )
            for n in range(PAGE_SIZE * 2 + 7)
        )
        expected = list(
            WebhookEvent.objects.order_by("-received_at", "-id").values_list("event_id", flat=True)
        )
        seen, url, pages = [], "/events/", []
        while url:
            html = admin_client.get(url).content.decode()
            pages.append(url)
            seen += event_ids(html)
            older = re.search(r'href="([^"]*)"[^>]*rel="next"', html)
            url = older.group(1).replace("&amp;", "&") if older else ""
        assert seen == expected and len(pages) == 3

        html = admin_client.get(pages[-1]).content.decode()
        newer = re.search(r'href="([^"]*)"[^>]*rel="prev"', html).group(1).replace("&amp;", "&")
        assert (
            event_ids(admin_client.get(newer).content.decode()) == expected[PAGE_SIZE:][:PAGE_SIZE]
        )

    def test_htmx_gets_the_results_only(self, admin_client):
        record_event(event(1))
        response = admin_client.get(
            "/events/?q=evt_1", headers={"HX-Request": "true", "HX-Target": "results"}
        )
        assert response.status_code == 200
        assert "HX-Request" in response["Vary"]
        html = response.content.decode()
        assert "<html" not in html and event_ids(html) == ["evt_1"]
        assert "HX-Request" in admin_client.get("/events/")["Vary"]

    def test_it_rejects_a_bad_cursor(self, admin_client):
        response = admin_client.get("/events/?after=yesterday")
        assert response.status_code == 400
        assert b"Not a position in the list." in response.content
        both = admin_client.get("/events/?after=1_1&before=2_2")
        assert both.status_code == 400 and b"either after or before" in both.content


@pytest.mark.django_db
class TestLiveEvents:
    HTMX = {"HX-Request": "true", "HX-Target": "poller"}

    def newest(self, admin_client, url: str = "/events/") -> str:
        html = admin_client.get(url).content.decode()
        return re.search(r'data-live name="newest" value="(\d+)"', html).group(1)

    def test_the_page_polls_for_events_recorded_since_it_loaded(self, admin_client, settings):
        settings.SEAM_POLL_SECONDS = 2
        record_event(event(1))
        html = admin_client.get("/events/?event_type=lock.locked").content.decode()

        assert 'hx-get="/events/?event_type=lock.locked" hx-trigger="poll"' in html
        assert 'data-interval="2"' in html

    def test_its_poll_sends_new_events_matching_the_filters(self, admin_client):
        record_event(event(1))
        newest = self.newest(admin_client)
        record_event(event(2))
        record_event(event(3, "lock.locked"))

        everything = admin_client.get(f"/events/?newest={newest}", headers=self.HTMX)
        locks = admin_client.get(
            f"/events/?event_type=lock.locked&newest={newest}", headers=self.HTMX
        ).content.decode()

        html = everything.content.decode()
        assert "no-store" in everything["Cache-Control"]
        assert '<tbody hx-swap-oob="afterbegin:#event-incoming">' in html
        assert event_ids(html) == ["evt_3", "evt_2"]
        assert event_ids(locks) == ["evt_3"]
        last = WebhookEvent.objects.order_by("-pk").first().pk
        assert f'name="newest" value="{last}" hx-swap-oob="true"' in html
        again = admin_client.get(f"/events/?newest={last}", headers=self.HTMX)
        assert again.status_code == 200 and again.content == b""

    @pytest.mark.parametrize(
        "query", ["newest=x", "newest=-3", "newest=1&after=soon", "newest=1&in_flight=x"]
    )
    def test_a_malformed_poll_is_a_400_with_a_reason(self, admin_client, query):
        response = admin_client.get(f"/events/?{query}", headers=self.HTMX)
        assert response.status_code == 400
        assert len(response.content) > 10
