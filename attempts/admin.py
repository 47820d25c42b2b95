"""The audit trail in Django's admin: read-only for everyone, and fast at a million rows.

List pages never count the whole table (the paginator counts at most COUNTED_ROWS matches), never
load payloads, and search by exact id only, so each one is an indexed query.
"""

from typing import Any

from django.contrib import admin
from django.contrib.admin.views.main import ChangeList
from django.core.cache import cache
from django.core.paginator import Paginator
from django.db.models import Model, Q, QuerySet
from django.http import HttpRequest
from django.urls import reverse
from django.utils.functional import cached_property
from django.utils.html import format_html

from attempts.models import (
    DOCUMENTED_ACTION_TYPES,
    Attempt,
    OperatorAction,
    Status,
    StatusChange,
    WebhookEvent,
)
from dashboard.web import pretty_json

COUNTED_ROWS = 10_000
FILTER_CHOICES_SECONDS = 300
ATTEMPT_ID_HELP = "An attempt id, exactly as Seam gives it."

admin.site.site_header = "Seam attempts: audit trail"
admin.site.site_title = "Seam attempts admin"
admin.site.site_url = "/attempts/"


class AtLeast(int):
    """A count that stopped counting: shown as "10000+"."""

    def __str__(self) -> str:
        return f"{int(self)}+"


class CappedCountPaginator(Paginator):
    """Counts at most COUNTED_ROWS rows, so a list page costs the same at a million rows: past
    that many, narrow the list with the filters or the search."""

    @cached_property
    def count(self) -> int:
        count = self.object_list.order_by()[:COUNTED_ROWS].count()
        return AtLeast(count) if count == COUNTED_ROWS else count


class LeanChangeList(ChangeList):
    """Loads only the columns the list shows (`list_only`, else `list_display`), never the
    payloads."""

    def get_queryset(self, request: HttpRequest, exclude_parameters: Any = None) -> QuerySet:
        queryset = super().get_queryset(request, exclude_parameters)
        return queryset.only(*(self.model_admin.list_only or self.model_admin.list_display))


class CachedValuesFilter(admin.SimpleListFilter):
    """Choices are the values recorded so far, found once per few minutes for everyone (a
    DISTINCT over a million rows is too slow for every page view), plus the documented ones."""

    field = ""
    documented: list[str] = []

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple]:
        key = f"admin-choices:{model_admin.model._meta.label_lower}:{self.field}"
        values = cache.get(key)
        if values is None:
            recorded = model_admin.model.objects.values_list(self.field, flat=True).distinct()
            values = sorted({*recorded, *self.documented} - {""})
            cache.set(key, values, FILTER_CHOICES_SECONDS)
        return [(value, value) for value in values]

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        if self.value():
            return queryset.filter(**{self.field: self.value()})
        return queryset


class ActionTypeFilter(CachedValuesFilter):
    title = "action type"
    parameter_name = field = "action_type"
    documented = DOCUMENTED_ACTION_TYPES


class EventTypeFilter(CachedValuesFilter):
    title = "event type"
    parameter_name = field = "event_type"


class ToStatusFilter(admin.SimpleListFilter):
    """The statuses there are (the field has no choices, and a DISTINCT would scan the table)."""

    title = "to status"
    parameter_name = "to_status"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple]:
        return Status.choices

    def queryset(self, request: HttpRequest, queryset: QuerySet) -> QuerySet:
        return queryset.filter(to_status=self.value()) if self.value() else queryset


def pretty_json_html(value: Any) -> str:
    """Untrusted JSON, indented and escaped."""
    if value is None:
        return "-"
    return format_html("<pre>{}</pre>", pretty_json(value))


def attempt_link(attempt: Attempt | None) -> str:
    if attempt is None:
        return "-"
    url = reverse("admin:attempts_attempt_change", args=[attempt.pk])
    return format_html('<a href="{}">{}</a>', url, attempt.action_attempt_id)


class LinksAttempt:
    """For records of an attempt: the attempt's id, linking to its page."""

    @admin.display(description="attempt")
    def attempt_id_link(self, obj: StatusChange | WebhookEvent | OperatorAction) -> str:
        return attempt_link(obj.attempt)


class Unchangeable:
    """Recorded facts: viewable by admins, changed by nobody."""

    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


class ReadOnlyAdmin(Unchangeable, admin.ModelAdmin):
    # The columns a list loads, where list_display names more than plain fields.
    list_only: tuple[str, ...] = ()
    # Search is an exact match on this (indexed) field: a substring search scans every row.
    exact_search_field = ""
    show_full_result_count = False
    show_facets = admin.ShowFacets.NEVER
    paginator = CappedCountPaginator
    list_per_page = 50
    actions = None

    def get_changelist(self, request: HttpRequest, **kwargs: Any) -> type[ChangeList]:
        return LeanChangeList

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet, search_term: str
    ) -> tuple[QuerySet, bool]:
        term = search_term.strip()
        return (self.search(queryset, term) if term else queryset), False

    def search(self, queryset: QuerySet, term: str) -> QuerySet:
        return queryset.filter(**{self.exact_search_field: term})


class ReadOnlyInline(Unchangeable, admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = False


class StatusChangeInline(ReadOnlyInline):
    model = StatusChange
    fields = ["at", "from_status", "to_status", "source", "conflict", "event"]
    ordering = ["at", "id"]


class OperatorActionInline(ReadOnlyInline):
    model = OperatorAction
    fields = ["at", "kind", "user"]
    ordering = ["at", "id"]


@admin.register(Attempt)
class AttemptAdmin(ReadOnlyAdmin):
    list_display = ["action_attempt_id", "action_type", "status", "first_seen_at", "ended_at"]
    list_filter = [ActionTypeFilter, "status", "payload_fetched", "first_seen_at"]
    # Matches the attempt_*newest_idx indexes.
    ordering = ["-first_seen_at", "-id"]
    exact_search_field = "action_attempt_id"
    search_fields = [exact_search_field]
    search_help_text = ATTEMPT_ID_HELP
    fields = [
        "action_attempt_id",
        "action_type",
        "status",
        "workspace_id",
        "first_seen_at",
        "ended_at",
        "time_to_resolution",
        "fetched_at",
        "payload_fetched",
        "error_json",
        "result_json",
        "updated_at",
    ]
    readonly_fields = fields
    inlines = [StatusChangeInline, OperatorActionInline]

    @admin.display(description="error")
    def error_json(self, obj: Attempt) -> str:
        return pretty_json_html(obj.error)

    @admin.display(description="result")
    def result_json(self, obj: Attempt) -> str:
        return pretty_json_html(obj.result)


@admin.register(StatusChange)
class StatusChangeAdmin(LinksAttempt, ReadOnlyAdmin):
    list_display = ["at", "attempt_id_link", "from_status", "to_status", "source", "conflict"]
    list_only = (
        "at",
        "from_status",
        "to_status",
        "source",
        "conflict",
        "attempt",
        "attempt__action_attempt_id",
    )
    list_select_related = ["attempt"]
    list_filter = [ToStatusFilter, "source", "conflict", "at"]
    # The primary key follows time and is indexed; "at" alone has no index for a million rows.
    ordering = ["-id"]
    exact_search_field = "attempt__action_attempt_id"
    search_fields = [exact_search_field]
    search_help_text = ATTEMPT_ID_HELP
    fields = ["attempt_id_link", "from_status", "to_status", "source", "conflict", "event", "at"]
    readonly_fields = fields


@admin.register(WebhookEvent)
class WebhookEventAdmin(LinksAttempt, ReadOnlyAdmin):
    list_display = ["received_at", "event_type", "event_id", "attempt_id_link", "known_type"]
    list_only = (
        "received_at",
        "event_type",
        "event_id",
        "known_type",
        "attempt",
        "attempt__action_attempt_id",
    )
    list_select_related = ["attempt"]
    list_filter = [EventTypeFilter, "known_type", "received_at"]
    # Matches event_newest_idx.
    ordering = ["-received_at", "-id"]
    search_fields = ["event_id"]
    search_help_text = "An event id or an attempt id, exactly."
    fields = [
        "event_id",
        "event_type",
        "known_type",
        "attempt_id_link",
        "svix_id",
        "occurred_at",
        "created_at",
        "received_at",
        "payload_json",
    ]
    readonly_fields = fields

    def search(self, queryset: QuerySet, term: str) -> QuerySet:
        # Resolved first: an OR across the join would not use the indexes.
        attempt_pks = list(
            Attempt.objects.filter(action_attempt_id=term).values_list("pk", flat=True)
        )
        return queryset.filter(Q(event_id=term) | Q(attempt_id__in=attempt_pks))

    @admin.display(description="payload")
    def payload_json(self, obj: WebhookEvent) -> str:
        return pretty_json_html(obj.payload)


@admin.register(OperatorAction)
class OperatorActionAdmin(LinksAttempt, ReadOnlyAdmin):
    list_display = ["at", "user", "kind", "action_attempt_id"]
    list_only = ("at", "kind", "action_attempt_id", "user", "user__username")
    list_select_related = ["user"]
    list_filter = ["kind", "at"]
    # Matches operatoraction_newest_idx.
    ordering = ["-at", "-id"]
    exact_search_field = "action_attempt_id"
    search_fields = [exact_search_field]
    search_help_text = ATTEMPT_ID_HELP
    fields = ["at", "user", "kind", "action_attempt_id", "attempt_id_link"]
    readonly_fields = fields
