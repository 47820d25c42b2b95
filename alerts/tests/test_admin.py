import pytest
from django.contrib.admin.models import LogEntry

from alerts.models import Kind, Rule


def form(rule: Rule, **changes) -> dict:
    data = {
        "name": rule.name,
        "kind": rule.kind,
        "enabled": "on" if rule.enabled else "",
        "action_type": rule.action_type,
        "window_minutes": rule.window_minutes,
        "min_ended": rule.min_ended,
        "threshold": "" if rule.threshold is None else rule.threshold,
        "minutes": rule.minutes,
        "error_types": rule.error_types,
        **changes,
    }
    return {k: v for k, v in data.items() if v != ""}


@pytest.mark.django_db
@pytest.mark.parametrize(
    "kind, changes, field, message",
    [
        (Kind.ERROR_RATE, {"window_minutes": "-5"}, "window_minutes", "greater than or equal"),
        (Kind.ERROR_RATE, {"window_minutes": "0"}, "window_minutes", "between 1 and"),
        (Kind.ERROR_RATE, {"threshold": "150"}, "threshold", "at most 100"),
        (Kind.ERROR_TYPE, {"enabled": "on", "error_types": ""}, "error_types", "at least one"),
        (Kind.STUCK, {"threshold": "0.5"}, "threshold", "whole number"),
        (Kind.WEBHOOKS_MISSED, {"action_type": "LOCK_DOOR"}, "action_type", "does not look"),
    ],
)
def test_it_refuses_nonsense_with_a_readable_error(admin_client, kind, changes, field, message):
    rule = Rule.objects.get(kind=kind)
    response = admin_client.post(f"/admin/alerts/rule/{rule.pk}/change/", form(rule, **changes))
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert message in " ".join(errors[field])
    assert Rule.objects.get(pk=rule.pk).window_minutes == rule.window_minutes


@pytest.mark.django_db
def test_it_records_who_changed_a_rule_and_when(admin_client, admin_user):
    rule = Rule.objects.get(kind=Kind.ERROR_TYPE)
    response = admin_client.post(
        f"/admin/alerts/rule/{rule.pk}/change/",
        form(rule, enabled="on", error_types="lock_jammed,low_battery"),
    )
    assert response.status_code == 302
    rule.refresh_from_db()
    assert rule.enabled and rule.error_type_list == ["lock_jammed", "low_battery"]
    entry = LogEntry.objects.get(object_id=str(rule.pk))
    assert entry.user == admin_user
    assert "Enabled" in entry.get_change_message()
    page = admin_client.get(f"/admin/alerts/rule/{rule.pk}/change/").content.decode()
    assert f"· {admin_user} · Changed" in page
    listing = admin_client.get("/admin/alerts/rule/").content.decode()
    assert f"by {admin_user}" in listing


@pytest.mark.django_db
def test_incidents_and_notices_are_read_only(admin_client):
    assert admin_client.get("/admin/alerts/incident/add/").status_code == 403
    assert admin_client.get("/admin/alerts/notice/add/").status_code == 403
    assert admin_client.get("/admin/alerts/incident/").status_code == 200


@pytest.mark.django_db
def test_a_rule_with_incidents_cannot_be_deleted_only_disabled(admin_client):
    from alerts.evaluation import evaluate
    from alerts.tests.test_check_alerts import ended
    from attempts.models import Status

    ended("LOCK_DOOR", Status.ERROR, 10)
    evaluate()
    rule = Rule.objects.get(kind=Kind.ERROR_RATE)
    response = admin_client.post(f"/admin/alerts/rule/{rule.pk}/delete/", {"post": "yes"})
    assert response.status_code == 200
    assert "<title>Cannot delete rule" in response.content.decode()
    assert Rule.objects.filter(pk=rule.pk).exists()
