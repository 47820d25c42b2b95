"""Small formatting helpers for attempts: durations, versions, and untrusted error payloads."""

from datetime import timedelta
from typing import Any

from django import template

from attempts.paging import EPOCH

register = template.Library()


@register.filter
def duration(value: timedelta | None) -> str:
    """A duration the way an operator reads it: 850 ms, 4.2 s, 3 min 5 s, 2 h 10 min, 3 d 4 h."""
    if value is None:
        return ""
    seconds = max(value.total_seconds(), 0)
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, s = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {s} s"
    hours, m = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {m} min"
    days, h = divmod(hours, 24)
    return f"{days} d {h} h"


@register.filter
def version(attempt: Any) -> int:
    """When the row last changed, in microseconds: a live page sends it back with its poll."""
    return (attempt.updated_at - EPOCH) // timedelta(microseconds=1)


def _error_field(error: Any, name: str) -> str:
    # The error is untrusted JSON from Seam: any shape, so never assume a dict of strings.
    if isinstance(error, dict):
        value = error.get(name)
        return "" if value is None else str(value)
    return str(error) if name == "message" and error is not None else ""


@register.filter
def error_type(error: Any) -> str:
    return _error_field(error, "type")


@register.filter
def error_message(error: Any) -> str:
    return _error_field(error, "message")
