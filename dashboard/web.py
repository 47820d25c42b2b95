"""Small helpers that the views of every app share."""

import json
from typing import Any

from django import forms
from django.http import HttpRequest


def is_partial(request: HttpRequest, target: str) -> bool:
    """An htmx request for one region of the page (a history restore wants the whole page)."""
    htmx = request.htmx
    return bool(htmx) and htmx.target == target and not htmx.history_restore_request


def form_errors(form: forms.Form) -> str:
    """A form's errors as one readable line, for a 400 that is not a page."""
    return "; ".join(
        f"{name}: {error}" if name != "__all__" else error
        for name, errors in form.errors.items()
        for error in errors
    )


def pretty_json(value: Any) -> str:
    """A JSON payload as people read it: indented, keys sorted, non-ASCII as is."""
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True, default=str)


def parse_newest(value: str | None, what: str = "attempt") -> int | None:
    """The newest row a live page has seen (its primary key), if it says."""
    if value is None or value == "":
        return None
    if not value.isdigit() or len(value) > 18:
        raise ValueError(f"newest must be the whole number of the newest {what} seen.")
    return int(value)
