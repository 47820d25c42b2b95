from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.utils import timezone


class Kind(models.TextChoices):
    ERROR_RATE = "error_rate", "Error rate"
    ERROR_TYPE = "error_type", "Error type"
    STUCK = "stuck", "Stuck attempts"
    WEBHOOKS_MISSED = "webhooks_missed", "Webhooks missed"
    SEAM_UNREACHABLE = "seam_unreachable", "Seam unreachable"


# What each kind reads, for the admin's help and the rule's own check.
USES_WINDOW = {Kind.ERROR_RATE, Kind.ERROR_TYPE, Kind.WEBHOOKS_MISSED}
USES_MINUTES = {Kind.STUCK, Kind.SEAM_UNREACHABLE}
USES_ACTION_TYPE = {Kind.ERROR_RATE, Kind.ERROR_TYPE, Kind.STUCK}
MAX_MINUTES = 7 * 24 * 60


class Rule(models.Model):
    """When to open an incident. Admins edit rules in the admin; each change is in its history."""

    name = models.CharField(max_length=100, unique=True)
    kind = models.CharField(max_length=32, choices=Kind.choices)
    enabled = models.BooleanField(default=True)
    action_type = models.CharField(
        max_length=100,
        blank=True,
        help_text="Only this action type; empty: each action type on its own, new ones included.",
    )
    window_minutes = models.PositiveIntegerField(
        default=15, help_text="Error rate, error type, webhooks missed: look this far back."
    )
    min_ended = models.PositiveIntegerField(
        default=10, help_text="Error rate: only once at least this many attempts ended."
    )
    threshold = models.FloatField(
        null=True,
        blank=True,
        help_text=(
            "Error rate: percent (empty: ALERT_ERROR_RATE). Error type, stuck, webhooks missed: "
            "at least this many (empty: 1). Seam unreachable: not used."
        ),
    )
    minutes = models.PositiveIntegerField(
        default=15,
        help_text="Stuck: pending longer than this. Seam unreachable: failing longer than this.",
    )
    error_types = models.TextField(
        blank=True, help_text="Error type: the error types, comma-separated (lock_jammed, …)."
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    @property
    def error_type_list(self) -> list[str]:
        return [t.strip() for t in self.error_types.split(",") if t.strip()]

    def limit(self) -> float:
        """The threshold in force: the rule's own, else its kind's default."""
        if self.threshold is not None:
            return self.threshold
        return settings.ALERT_ERROR_RATE if self.kind == Kind.ERROR_RATE else 1

    def clean(self) -> None:
        errors: dict[str, str] = {}
        if self.kind in USES_WINDOW and not 1 <= (self.window_minutes or 0) <= MAX_MINUTES:
            errors["window_minutes"] = f"The window is between 1 and {MAX_MINUTES} minutes."
        if self.kind in USES_MINUTES and not 1 <= (self.minutes or 0) <= MAX_MINUTES:
            errors["minutes"] = f"Between 1 and {MAX_MINUTES} minutes."
        if self.kind == Kind.ERROR_RATE:
            if self.threshold is not None and not 0 < self.threshold <= 100:
                errors["threshold"] = "An error rate is a percent above 0 and at most 100."
            if not self.min_ended:
                errors["min_ended"] = "At least one attempt must have ended."
        elif self.threshold is not None and self.kind != Kind.SEAM_UNREACHABLE:
            if self.threshold < 1 or self.threshold != int(self.threshold):
                errors["threshold"] = "A count: a whole number, at least 1."
        if self.kind == Kind.ERROR_TYPE and self.enabled and not self.error_type_list:
            errors["error_types"] = "Name at least one error type, or disable the rule."
        if self.action_type and self.kind not in USES_ACTION_TYPE:
            errors["action_type"] = "This kind of rule does not look at action types."
        if errors:
            raise ValidationError(errors)


class Incident(models.Model):
    """A rule's condition holding for one scope (an action type, an error type, or everything),
    from the evaluation that saw it first to the first one that no longer did."""

    # A rule with incidents is disabled, not deleted: its history stays.
    rule = models.ForeignKey(Rule, on_delete=models.PROTECT, related_name="incidents")
    scope = models.CharField(max_length=100, blank=True)
    opened_at = models.DateTimeField(default=timezone.now)
    resolved_at = models.DateTimeField(null=True, blank=True)
    # The latest figure, against the threshold then in force, as the page and notices say it.
    figure = models.FloatField()
    threshold = models.FloatField()
    summary = models.CharField(max_length=300)
    link = models.CharField(max_length=500)
    updated_at = models.DateTimeField(default=timezone.now)
    # An operator saw it and is on it: who and when, on /alerts/ and in the resolution notice.
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        constraints = [
            # One open incident per rule and scope, whoever evaluates.
            models.UniqueConstraint(
                fields=["rule", "scope"],
                condition=Q(resolved_at__isnull=True),
                name="incident_one_open_per_scope",
            )
        ]
        indexes = [
            models.Index(fields=["resolved_at", "-opened_at"], name="incident_state_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.rule.name}: {self.scope or 'all'}"

    @property
    def is_open(self) -> bool:
        return self.resolved_at is None

    @property
    def acknowledgement(self) -> str:
        """Who acknowledged it and when, as pages and notices say it ("" while nobody has)."""
        if self.acknowledged_at is None:
            return ""
        who = self.acknowledged_by.get_username() if self.acknowledged_by else "a removed user"
        return f"{who} at {self.acknowledged_at:%Y-%m-%d %H:%M} UTC"


class Notice(models.Model):
    """One message due to one destination: the firing or the resolution of an incident.

    Made in the same transaction as the change it tells of, sent after it: a crash in between
    leaves it pending, and the next evaluation sends it.
    """

    class Event(models.TextChoices):
        FIRING = "firing"
        RESOLVED = "resolved"

    class State(models.TextChoices):
        PENDING = "pending"
        SENT = "sent"
        GAVE_UP = "gave_up", "Gave up"

    incident = models.ForeignKey(Incident, on_delete=models.CASCADE, related_name="notices")
    # A hash of the Apprise URL, never the URL: it holds the destination's token.
    destination = models.CharField(max_length=64)
    # The URL's scheme and host, safe to show.
    label = models.CharField(max_length=200)
    event = models.CharField(max_length=16, choices=Event.choices)
    state = models.CharField(max_length=16, choices=State.choices, default=State.PENDING)
    tries = models.PositiveIntegerField(default=0)
    last_error = models.CharField(max_length=200, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["incident", "destination", "event"], name="notice_once_per_destination"
            )
        ]
        indexes = [models.Index(fields=["state", "created_at"], name="notice_state_idx")]

    def __str__(self) -> str:
        return f"{self.event} to {self.label}"
