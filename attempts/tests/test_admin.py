import pytest
from django.contrib import admin
from django.contrib.auth.models import User
from django.db import connection
from django.test.utils import CaptureQueriesContext

from attempts import admin as attempts_admin
from attempts.merge import Observation, merge
from attempts.models import Attempt, OperatorAction, Source, StatusChange, WebhookEvent

LISTS = [
    "/admin/attempts/attempt/",
    "/admin/attempts/statuschange/",
    "/admin/attempts/webhookevent/",
    "/admin/attempts/operatoraction/",
]


@pytest.fixture
def staff(client, db):
    user = User.objects.create_superuser("auditor", password="not-used-here")
    client.force_login(user)
    return user


@pytest.fixture
def recorded(db):
    """An attempt ended in error with a hostile message, its event, an operator's refresh."""
    event = WebhookEvent.objects.create(
        event_id="evt_1",
        event_type="action_attempt.lock_door.failed",
        payload={"action_attempt_id": "aa_1", "note": "<script>alert(1)</script>"},
        svix_id="msg_1",
    )
    merge("aa_1", Observation(status="pending", action_type="LOCK_DOOR"), source=Source.API)
    merge("aa_1", Observation(status="error"), source=Source.WEBHOOK, event=event)
    attempt = merge(
        "aa_1",
        Observation(
            status="error",
            has_payload=True,
            error={"type": "device_offline", "message": "<script>alert(2)</script>"},
        ),
        source=Source.API,
    ).attempt
    event.attempt = attempt
    event.save()
    OperatorAction.objects.create(
        user=User.objects.create_user("operator"),
        kind=OperatorAction.Kind.REFRESH,
        action_attempt_id="aa_1",
        attempt=attempt,
    )
    merge("aa_2", Observation(status="pending", action_type="SET_HEAT"), source=Source.API)
    return attempt


class TestLists:
    @pytest.mark.parametrize("url", LISTS)
    def test_it_lists_without_payloads_or_a_full_count(self, client, staff, recorded, url):
        with CaptureQueriesContext(connection) as queries:
            response = client.get(url)
        assert response.status_code == 200
        sql = [q["sql"].lower() for q in queries if "dashboard_cache" not in q["sql"]]
        counts = [q for q in sql if "count(" in q]
        assert counts and all("limit" in q for q in counts), counts
        for column in ('"error"', '"result"', '"payload"'):
            assert not any(column in q for q in sql if "attempts_" in q), column

    def test_it_filters_attempts(self, client, staff, recorded):
        page = client.get("/admin/attempts/attempt/", {"action_type": "SET_HEAT"}).content
        assert b"aa_2" in page and b"aa_1" not in page
        page = client.get("/admin/attempts/attempt/", {"status__exact": "error"}).content
        assert b"aa_1" in page and b"aa_2" not in page
        page = client.get(
            "/admin/attempts/attempt/", {"first_seen_at__gte": "2000-01-01 00:00:00+00:00"}
        ).content
        assert b"aa_1" in page and b"aa_2" in page

    def test_it_offers_every_recorded_and_documented_type(self, client, staff, recorded):
        page = client.get("/admin/attempts/attempt/").content.decode()
        assert "?action_type=SET_HEAT" in page and "?action_type=SYNC_ACCESS_CODES" in page

    def test_it_filters_events_by_type(self, client, staff, recorded):
        url = "/admin/attempts/webhookevent/"
        page = client.get(url, {"event_type": "action_attempt.lock_door.failed"}).content
        assert b"evt_1" in page
        page = client.get(url, {"event_type": "device.connected"}).content
        assert b"evt_1" not in page

    def test_it_searches_by_exact_id(self, client, staff, recorded):
        page = client.get("/admin/attempts/attempt/", {"q": " aa_2 "}).content
        assert b"aa_2" in page and b"aa_1" not in page
        assert b"aa_1" not in client.get("/admin/attempts/attempt/", {"q": "aa_"}).content
        page = client.get("/admin/attempts/webhookevent/", {"q": "aa_1"}).content
        assert b"evt_1" in page
        page = client.get("/admin/attempts/statuschange/", {"q": "aa_1"}).content
        assert b"aa_1" in page and b"aa_2" not in page

    def test_it_counts_at_most_a_capped_number(self, client, staff, recorded, monkeypatch):
        merge("aa_3", Observation(status="pending"), source=Source.API)
        monkeypatch.setattr(attempts_admin, "COUNTED_ROWS", 2)
        monkeypatch.setattr(admin.site.get_model_admin(Attempt), "list_per_page", 1)
        response = client.get("/admin/attempts/attempt/")
        assert response.context["cl"].result_count == 2
        assert b"2+ attempts" in response.content
        assert client.get("/admin/attempts/attempt/", {"p": "2"}).status_code == 200
        assert client.get("/admin/attempts/attempt/", {"p": "3"}).status_code == 302


class TestDetail:
    def test_it_shows_payloads_pretty_and_escaped(self, client, staff, recorded):
        page = client.get(f"/admin/attempts/attempt/{recorded.pk}/change/").content.decode()
        assert (
            "{\n  &quot;message&quot;: &quot;&lt;script&gt;alert(2)&lt;/script&gt;&quot;," in page
        )
        assert "<script>alert" not in page
        assert "Refreshed from Seam" in page  # the operator's action, inline

    def test_it_shows_an_event_payload(self, client, staff, recorded):
        event = WebhookEvent.objects.get()
        page = client.get(f"/admin/attempts/webhookevent/{event.pk}/change/").content.decode()
        assert "&quot;note&quot;: &quot;&lt;script&gt;alert(1)&lt;/script&gt;&quot;" in page
        assert "<script>alert" not in page


class TestReadOnly:
    @pytest.mark.parametrize("url", LISTS)
    def test_it_refuses_add(self, client, staff, recorded, url):
        assert client.get(url + "add/").status_code == 403

    def test_it_refuses_change_and_delete(self, client, staff, recorded):
        for model in (Attempt, StatusChange, WebhookEvent, OperatorAction):
            obj = model.objects.first()
            url = f"/admin/attempts/{model._meta.model_name}/{obj.pk}/"
            response = client.post(url + "change/", {"status": "success"})
            assert response.status_code == 403, url
            assert client.post(url + "delete/", {"post": "yes"}).status_code == 403, url
            assert model.objects.filter(pk=obj.pk).exists()
        assert Attempt.objects.get(pk=recorded.pk).status == "error"

    def test_it_offers_no_bulk_delete(self, client, staff, recorded):
        response = client.post(
            "/admin/attempts/attempt/",
            {"action": "delete_selected", "_selected_action": [recorded.pk]},
        )
        assert Attempt.objects.filter(pk=recorded.pk).exists()
        assert response.status_code in (200, 302)


class TestAccess:
    def test_it_takes_admins_only(self, client, db):
        client.force_login(User.objects.create_user("plain"))
        response = client.get("/admin/attempts/attempt/")
        assert response.status_code == 302
        assert response["Location"].startswith("/admin/login/")

    def test_a_plain_user_uses_the_dashboard(self, client, db):
        client.force_login(User.objects.create_user("plain"))
        assert client.get("/attempts/").status_code == 200

    def test_staff_without_the_admin_role_sees_nothing(self, client, db):
        client.force_login(User.objects.create_user("helpdesk", is_staff=True))
        assert client.get("/admin/attempts/attempt/", follow=True).status_code == 403
