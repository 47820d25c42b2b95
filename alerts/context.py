from functools import partial

from django.http import HttpRequest

from alerts.models import Incident

BANNER_PATHS = ("/attempts/", "/events/")


def open_incidents(limit: int = 5) -> dict:
    incidents = Incident.objects.filter(resolved_at__isnull=True).select_related("rule")
    return {"count": incidents.count(), "first": list(incidents.order_by("-opened_at")[:limit])}


def incident_banner(request: HttpRequest) -> dict:
    """A banner on the attempts and events pages while an incident is open. Lazy: only a page
    whose template shows it pays for the query."""
    user = getattr(request, "user", None)
    if not request.path.startswith(BANNER_PATHS) or not (user and user.is_authenticated):
        return {}
    return {"incident_banner": partial(open_incidents)}
