"""Rules are edited here by admins; Django's admin records every change (LogEntry: who, when,
which fields), shown on each rule's page and in its History. Incidents and notices are read-only.
"""

from django.contrib import admin
from django.contrib.admin.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html_join

from alerts.models import Incident, Notice, Rule

CHANGES_SHOWN = 20


def changes(rule: Rule) -> QuerySet[LogEntry]:
    return (
        LogEntry.objects.filter(
            content_type=ContentType.objects.get_for_model(Rule), object_id=str(rule.pk)
        )
        .select_related("user")
        .order_by("-action_time")
    )


@admin.register(Rule)
class RuleAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "enabled", "action_type", "threshold", "last_change"]
    list_filter = ["kind", "enabled"]
    readonly_fields = ["change_history"]
    fieldsets = [
        (None, {"fields": ["name", "kind", "enabled", "action_type"]}),
        (
            "Condition",
            {"fields": ["window_minutes", "min_ended", "threshold", "minutes", "error_types"]},
        ),
        ("Changes", {"fields": ["change_history"]}),
    ]

    @admin.display(description="last change")
    def last_change(self, rule: Rule) -> str:
        entry = changes(rule).first()
        if entry is None:
            return "as installed"
        return f"{entry.action_time:%Y-%m-%d %H:%M} UTC by {entry.user}"

    @admin.display(description="changes (who, when, what)")
    def change_history(self, rule: Rule) -> str:
        if rule.pk is None:
            return "-"
        entries = changes(rule)[:CHANGES_SHOWN]
        if not entries:
            return "No change since it was installed."
        return format_html_join(
            "",
            "<div>{} UTC · {} · {}</div>",
            (
                (f"{e.action_time:%Y-%m-%d %H:%M:%S}", e.user, e.get_change_message() or "-")
                for e in entries
            ),
        )


class ReadOnly(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


@admin.register(Incident)
class IncidentAdmin(ReadOnly):
    list_display = ["rule", "scope", "summary", "opened_at", "resolved_at"]
    list_filter = ["rule"]
    list_select_related = ["rule"]


@admin.register(Notice)
class NoticeAdmin(ReadOnly):
    list_display = ["incident", "event", "label", "state", "tries", "created_at", "sent_at"]
    list_filter = ["state", "event"]
    list_select_related = ["incident__rule"]
