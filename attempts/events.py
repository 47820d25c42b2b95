"""The recorded webhook events: which types Seam documents, and the filters of the events list.

`filtered_events()` turns valid filters into the events they select, newest first: the events
page pages through it, the CSV export streams all of it.
"""

from typing import Any

from django import forms
from django.db.models import Q, QuerySet

from attempts import search
from attempts.models import Attempt, WebhookEvent
from attempts.paging import AnyChoiceField, PagedFilterForm, distinct_values

# The action types Seam documents events for, each `.succeeded` or `.failed`.
DOCUMENTED_EVENT_ACTIONS = (
    "lock_door",
    "unlock_door",
    "simulate_keypad_code_entry",
    "simulate_manual_lock_via_keypad",
)
DOCUMENTED_ACTION_ATTEMPT_EVENTS = frozenset(
    f"action_attempt.{action}.{outcome}"
    for action in DOCUMENTED_EVENT_ACTIONS
    for outcome in ("succeeded", "failed")
)
# Seam's other event families: recorded as known, never applied to an attempt.
SEAM_EVENT_NAMESPACES = frozenset(
    {
        "access_code",
        "access_grant",
        "access_method",
        "acs_access_group",
        "acs_credential",
        "acs_encoder",
        "acs_entrance",
        "acs_system",
        "acs_user",
        "client_session",
        "connect_webview",
        "connected_account",
        "device",
        "enrollment_automation",
        "lock",
        "noise_sensor",
        "phone",
        "thermostat",
    }
)


def is_known_type(event_type: str) -> bool:
    if event_type.startswith("action_attempt."):
        return event_type in DOCUMENTED_ACTION_ATTEMPT_EVENTS
    return event_type.split(".", 1)[0] in SEAM_EVENT_NAMESPACES and "." in event_type


def event_types_ever_recorded() -> list[str]:
    return distinct_values(WebhookEvent, "event_type", "events:types")


def workspaces_ever_recorded() -> list[str]:
    return distinct_values(WebhookEvent, "workspace_id", "events:workspaces")


class EventFilterForm(PagedFilterForm):
    field_order = ["event_type", "workspace", "q", "after", "before"]

    event_type = AnyChoiceField(max_length=255, required=False, widget=forms.CheckboxSelectMultiple)
    workspace = AnyChoiceField(max_length=255, required=False, widget=forms.CheckboxSelectMultiple)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        known = set(DOCUMENTED_ACTION_ATTEMPT_EVENTS) | set(event_types_ever_recorded())
        self.offer("event_type", known)
        self.offer("workspace", set(workspaces_ever_recorded()))

    def filters(self) -> dict[str, Any]:
        return {k: self.cleaned_data.get(k) for k in ("event_type", "workspace", "q")}


def filtered_events(filters: dict[str, Any]) -> QuerySet[WebhookEvent]:
    """Every event the filters select, newest first (by received_at, then id)."""
    qs = WebhookEvent.objects.all()
    if filters.get("event_type"):
        qs = qs.filter(event_type__in=filters["event_type"])
    if filters.get("workspace"):
        # Never empty; saying so lets SQLite use the partial index of events by workspace.
        qs = qs.filter(workspace_id__in=filters["workspace"]).exclude(workspace_id="")
    if q := filters.get("q"):
        # An event id or any part of one (3 characters or more), or the id of the attempt it
        # concerns: index lookups, no join.
        attempt_pk = Attempt.objects.filter(action_attempt_id=q).values_list("pk", flat=True)
        by_id = Q(event_id=q)
        if len(q) >= search.MIN_CONTAINS:
            by_id = search.contains(WebhookEvent, "event_id", q)
        qs = qs.filter(by_id | Q(attempt_id__in=list(attempt_pk)))
    return qs.order_by("-received_at", "-id")
