"""Counters of what happens when Seam is called or heard from, fed by seam/signals.py.

Under gunicorn, gunicorn.conf.py sets PROMETHEUS_MULTIPROC_DIR before this is imported: each
worker then writes its counts to its own file there and /metrics sums them over every worker.
"""

from django.dispatch import receiver
from prometheus_client import Counter, Histogram

from seam.signals import seam_request, webhook_delivery

WEBHOOK_OUTCOMES = ("recorded", "duplicate", "rejected")

webhook_deliveries = Counter(
    "seam_dashboard_webhook_deliveries",
    "Seam webhook deliveries answered, by outcome.",
    ["outcome"],
)
seam_requests = Counter(
    "seam_dashboard_seam_requests",
    "HTTP requests to the Seam API, by endpoint and outcome (ok, rejected: a 4xx, failed: a 429,"
    " a 5xx or no answer); each retry counts.",
    ["endpoint", "outcome"],
)
seam_request_duration = Histogram(
    "seam_dashboard_seam_request_duration_seconds",
    "Duration of HTTP requests to the Seam API, by endpoint.",
    ["endpoint"],
    buckets=(0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

for _outcome in WEBHOOK_OUTCOMES:
    webhook_deliveries.labels(_outcome)  # every outcome exported from the start, at 0


@receiver(webhook_delivery)
def count_webhook_delivery(sender, outcome: str, **kwargs) -> None:
    webhook_deliveries.labels(outcome).inc()


@receiver(seam_request)
def count_seam_request(sender, endpoint: str, outcome: str, duration: float, **kwargs) -> None:
    seam_requests.labels(endpoint, outcome).inc()
    seam_request_duration.labels(endpoint).observe(duration)
