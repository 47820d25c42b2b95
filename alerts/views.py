from datetime import timedelta

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from alerts.models import Incident
from dashboard.access import login_required

RESOLVED_DAYS = 7
RESOLVED_SHOWN = 100


@require_GET
@login_required
def alert_list(request: HttpRequest) -> HttpResponse:
    """Open incidents first, newest first; then the recently resolved."""
    incidents = Incident.objects.select_related("rule")
    since = timezone.now() - timedelta(days=RESOLVED_DAYS)
    context = {
        "open": list(incidents.filter(resolved_at__isnull=True).order_by("-opened_at")),
        "resolved": list(
            incidents.filter(resolved_at__gte=since).order_by("-resolved_at")[:RESOLVED_SHOWN]
        ),
        "resolved_days": RESOLVED_DAYS,
    }
    return render(request, "alerts/list.html", context)
