"""The gauges, read at each scrape from what the dashboard already keeps: cheap at any size."""

from collections.abc import Iterator

from django.db.models import Count
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from alerts.models import Incident, Rule
from attempts.counts import attempt_stats
from attempts.filters import DEFAULT_STUCK_MINUTES, AttemptFilterForm
from attempts.models import Status


def unfiltered() -> dict:
    # The list page's own cache key for "no filter": a scrape shares its counts (30 s at most).
    form = AttemptFilterForm({})
    form.is_valid()
    return form.filters()


class DashboardCollector(Collector):
    def collect(self) -> Iterator[GaugeMetricFamily]:
        stats = attempt_stats(unfiltered(), DEFAULT_STUCK_MINUTES)
        attempts = GaugeMetricFamily(
            "seam_dashboard_attempts",
            "Attempts recorded, by action type and status (at most 30 s old).",
            labels=["action_type", "status"],
        )
        for row in stats["types"]:
            for status in Status.values:
                attempts.add_metric([row["action_type"], status], row[status])
        yield attempts
        yield GaugeMetricFamily(
            "seam_dashboard_attempts_stuck",
            f"Attempts pending longer than {DEFAULT_STUCK_MINUTES} minutes (at most 30 s old).",
            value=stats["stuck"],
        )
        incidents = GaugeMetricFamily(
            "seam_dashboard_incidents_open", "Open alert incidents, by rule.", labels=["rule"]
        )
        counts = dict(
            Incident.objects.filter(resolved_at__isnull=True)
            .values_list("rule__name")
            .annotate(n=Count("*"))
            .order_by()
        )
        for name in Rule.objects.filter(enabled=True).values_list("name", flat=True):
            counts.setdefault(name, 0)
        for name, n in sorted(counts.items()):
            incidents.add_metric([name], n)
        yield incidents
