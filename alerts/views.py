from datetime import timedelta

from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from accounts.access import login_required, operator_required
from alerts.models import Incident

RESOLVED_DAYS = 7
RESOLVED_SHOWN = 100


@require_GET
@login_required
def alert_list(request: HttpRequest) -> HttpResponse:
    """Open incidents first, newest first; then the recently resolved."""
    incidents = Incident.objects.select_related("rule", "acknowledged_by")
    since = timezone.now() - timedelta(days=RESOLVED_DAYS)
    context = {
        "open": list(incidents.filter(resolved_at__isnull=True).order_by("-opened_at")),
        "resolved": list(
            incidents.filter(resolved_at__gte=since).order_by("-resolved_at")[:RESOLVED_SHOWN]
        ),
        "resolved_days": RESOLVED_DAYS,
    }
    return render(request, "alerts/list.html", context)


@operator_required("acknowledge an incident")
@require_POST
def acknowledge(request: HttpRequest, incident_id: int) -> HttpResponse:
    incident = get_object_or_404(Incident.objects.select_related("rule"), pk=incident_id)
    # One conditional update: of two operators acknowledging at once, the first one stands.
    taken = Incident.objects.filter(
        pk=incident.pk, resolved_at__isnull=True, acknowledged_at__isnull=True
    ).update(acknowledged_at=timezone.now(), acknowledged_by=request.user)
    if taken:
        messages.success(request, f"Acknowledged: {incident}.")
    else:
        incident = Incident.objects.select_related("rule", "acknowledged_by").get(pk=incident.pk)
        if incident.acknowledged_at is not None:
            messages.info(request, f"Already acknowledged by {incident.acknowledgement}.")
        else:
            messages.info(request, f"{incident} was resolved before anyone acknowledged it.")
    return redirect("alert-list")
