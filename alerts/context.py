from functools import partial

from django.http import HttpRequest

from alerts.models import Incident

BANNER_PATHS = ("/attempts/", "/events/")


NAMED = 5
COUNTED = 20


def open_incidents() -> dict:
    # One short indexed read, no COUNT: a page of the list never counts a table.
    incidents = list(
        Incident.objects.filter(resolved_at__isnull=True)
        .select_related("rule")
        .order_by("-opened_at")[: COUNTED + 1]
    )
    count = f"{COUNTED}+" if len(incidents) > COUNTED else len(incidents)
    return {"count": count, "first": incidents[:NAMED], "more": len(incidents) > NAMED}


def incident_banner(request: HttpRequest) -> dict:
    """A banner on the attempts and events pages while an incident is open. Lazy: only a page
    whose template shows it pays for the query."""
    user = getattr(request, "user", None)
    if not request.path.startswith(BANNER_PATHS) or not (user and user.is_authenticated):
        return {}
    return {"incident_banner": partial(open_incidents)}
