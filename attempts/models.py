from django.conf import settings
from django.db import models
from django.utils import timezone

# The action types Seam documents. Seam adds types over time and older servers still send
# others, so a type is any string: this list only seeds the filter's choices.
DOCUMENTED_ACTION_TYPES = [
    "LOCK_DOOR",
    "UNLOCK_DOOR",
    "SCAN_CREDENTIAL",
    "ENCODE_CREDENTIAL",
    "RESET_SANDBOX_WORKSPACE",
    "SET_FAN_MODE",
    "SET_HVAC_MODE",
    "ACTIVATE_CLIMATE_PRESET",
    "SIMULATE_KEYPAD_CODE_ENTRY",
    "SIMULATE_MANUAL_LOCK_VIA_KEYPAD",
    "PUSH_THERMOSTAT_PROGRAMS",
    "SYNC_ACCESS_CODES",
    "CREATE_ACCESS_CODE",
    "DELETE_ACCESS_CODE",
    "UPDATE_ACCESS_CODE",
    "CREATE_NOISE_THRESHOLD",
    "DELETE_NOISE_THRESHOLD",
    "UPDATE_NOISE_THRESHOLD",
]


class Status(models.TextChoices):
    PENDING = "pending"
    SUCCESS = "success"
    ERROR = "error"


TERMINAL_STATUSES = frozenset({Status.SUCCESS, Status.ERROR})


class Source(models.TextChoices):
    WEBHOOK = "webhook", "Webhook"
    API = "api", "API fetch"
    OPERATOR = "operator", "Operator"


class Attempt(models.Model):
    """One Seam action attempt, as last known to the dashboard."""

    # Seam's id, as Seam gives it: UUIDs on the real API, "action_attempt1" on the fake.
    action_attempt_id = models.CharField(max_length=255, unique=True)
    action_type = models.CharField(max_length=100, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    error = models.JSONField(null=True, blank=True)
    # The error's "type", as a column: the list filters and counts by it.
    error_type = models.CharField(max_length=100, blank=True, default="")
    result = models.JSONField(null=True, blank=True)
    workspace_id = models.CharField(max_length=255, blank=True)
    first_seen_at = models.DateTimeField(default=timezone.now)
    fetched_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    # Webhooks say that an attempt ended but not how: the error or result comes from the API.
    payload_fetched = models.BooleanField(default=False)
    # Bumped on every change: a live page asks only for the rows changed since its last poll.
    updated_at = models.DateTimeField(auto_now=True)
    # Seam's answers to refreshes have left it out since then, this many in a row (None: the
    # last answer had it). Left out long and often enough, it is marked "not found on Seam"
    # (not_found_at): no longer refreshed, not counted stuck, prunable. merge() clears all three
    # when Seam speaks of it again. Nullable, so adding them rewrote no table.
    missing_since = models.DateTimeField(null=True, blank=True)
    missing_count = models.IntegerField(null=True, blank=True)
    not_found_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [
            # The unfiltered list, newest first, and its keyset cursor (first_seen_at, id); the
            # columns after them let the counts of a partial hour read the index alone.
            models.Index(
                fields=["-first_seen_at", "-id", "action_type", "status", "error_type"],
                name="attempt_newest_idx",
            ),
            # The list filtered by status (and the pending attempts the refresh looks for).
            models.Index(
                fields=["status", "-first_seen_at", "-id"], name="attempt_status_newest_idx"
            ),
            # The list filtered by action_type, with or without status.
            models.Index(
                fields=["action_type", "status", "-first_seen_at", "-id"],
                name="attempt_type_status_newest_idx",
            ),
            # The alert rules: attempts that ended in the last minutes, by type and status,
            # read from the index alone.
            models.Index(fields=["ended_at", "action_type", "status"], name="attempt_ended_idx"),
            # The list filtered by error type. Only errors are in it: the attempts without an
            # error type, most of them, cost a webhook no write to it.
            models.Index(
                fields=["error_type", "-first_seen_at", "-id"],
                name="attempt_errtype_newest_idx",
                condition=~models.Q(error_type=""),
            ),
            # Those not found on Seam, newest first: few, and read by the list's filter, the
            # stuck count (which leaves them out) and prune.
            models.Index(
                fields=["-first_seen_at", "-id"],
                name="attempt_not_found_newest_idx",
                condition=models.Q(not_found_at__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return self.action_attempt_id

    @property
    def is_terminal(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @property
    def not_found(self) -> bool:
        """Seam has left it out of its answers long enough: it no longer has it."""
        return self.not_found_at is not None

    @property
    def time_to_resolution(self):
        if self.ended_at is None:
            return None
        return self.ended_at - self.first_seen_at


class WebhookEvent(models.Model):
    """One Seam webhook event, verified and recorded once."""

    event_id = models.CharField(max_length=255, unique=True)
    event_type = models.CharField(max_length=255)
    payload = models.JSONField()
    svix_id = models.CharField(max_length=255, blank=True)
    occurred_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(null=True, blank=True)
    received_at = models.DateTimeField(default=timezone.now)
    attempt = models.ForeignKey(
        Attempt, null=True, blank=True, on_delete=models.PROTECT, related_name="events"
    )
    known_type = models.BooleanField(default=True)
    # The payload's workspace_id: every Seam event belongs to one.
    workspace_id = models.CharField(max_length=255, blank=True, default="")

    class Meta:
        indexes = [
            # The events list, newest first, and its keyset cursor.
            models.Index(fields=["-received_at", "-id"], name="event_newest_idx"),
            # The events list filtered by event_type.
            models.Index(
                fields=["event_type", "-received_at", "-id"], name="event_type_newest_idx"
            ),
            # The events list filtered by workspace.
            models.Index(
                fields=["workspace_id", "-received_at", "-id"],
                name="event_workspace_newest_idx",
                condition=~models.Q(workspace_id=""),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.event_type} {self.event_id}"


class StatusChange(models.Model):
    """A change of an attempt's status, or a conflicting status that was not applied."""

    # No index of its own: statuschange_attempt_at_idx starts with it.
    attempt = models.ForeignKey(
        Attempt, on_delete=models.PROTECT, related_name="history", db_index=False
    )
    from_status = models.CharField(max_length=16, blank=True)
    to_status = models.CharField(max_length=16)
    source = models.CharField(max_length=16, choices=Source.choices)
    # A second, different terminal status: recorded for the audit, never applied.
    conflict = models.BooleanField(default=False)
    event = models.ForeignKey(
        WebhookEvent, null=True, blank=True, on_delete=models.PROTECT, related_name="+"
    )
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [
            # An attempt's history, oldest first, on its page.
            models.Index(fields=["attempt", "at"], name="statuschange_attempt_at_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.from_status or '-'} → {self.to_status} ({self.source})"


class OperatorAction(models.Model):
    """What an operator did (tracked an id, asked for a refresh), with who and when."""

    class Kind(models.TextChoices):
        TRACK = "track", "Tracked an attempt"
        REFRESH = "refresh", "Refreshed from Seam"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    kind = models.CharField(max_length=16, choices=Kind.choices)
    action_attempt_id = models.CharField(max_length=255)
    attempt = models.ForeignKey(
        Attempt, null=True, blank=True, on_delete=models.PROTECT, related_name="operator_actions"
    )
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        indexes = [models.Index(fields=["-at"], name="operatoraction_newest_idx")]

    def __str__(self) -> str:
        return f"{self.kind} {self.action_attempt_id}"


class Rollup(models.Model):
    """How many attempts first seen in a period (an hour, a day: `start` is its beginning) have
    these values. Kept by merge() in the same transaction as the change it counts
    (attempts/rollups.py); `rebuild_rollups` recomputes them. Rows at zero stay."""

    start = models.DateTimeField()
    action_type = models.CharField(max_length=100, blank=True)
    status = models.CharField(max_length=16)
    count = models.BigIntegerField(default=0)

    class Meta:
        abstract = True


class CountRollup(Rollup):
    """By action type, status and error type (empty unless an error's type is known)."""

    error_type = models.CharField(max_length=100, blank=True)

    class Meta:
        abstract = True
        constraints = [
            models.UniqueConstraint(
                fields=["start", "action_type", "status", "error_type"], name="%(class)s_key"
            )
        ]

    def __str__(self) -> str:
        return f"{self.start:%Y-%m-%d %H}h {self.action_type} {self.status} {self.error_type}"


class ResolutionRollup(Rollup):
    """Ended attempts by action type, status, error type (so the percentiles can be narrowed by
    it) and time to resolution's bucket (attempts.rollups.EDGES_US)."""

    error_type = models.CharField(max_length=100, blank=True)
    bucket = models.PositiveSmallIntegerField()

    class Meta:
        abstract = True
        constraints = [
            models.UniqueConstraint(
                fields=["start", "action_type", "status", "error_type", "bucket"],
                name="%(class)s_key",
            )
        ]

    def __str__(self) -> str:
        return (
            f"{self.start:%Y-%m-%d %H}h {self.action_type} {self.status} {self.error_type} "
            f"bucket {self.bucket}"
        )


class HourlyCount(CountRollup):
    pass


class DailyCount(CountRollup):
    pass


class HourlyResolution(ResolutionRollup):
    pass


class DailyResolution(ResolutionRollup):
    pass
