import hashlib
import hmac
import os

from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.http import require_GET
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from metrics.gauges import DashboardCollector


def registry() -> CollectorRegistry:
    """Under gunicorn, the counts of every worker (multiprocess files); else this process's."""
    registry = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.MultiProcessCollector(registry)
    else:
        registry.register(REGISTRY)
    registry.register(DashboardCollector())
    return registry


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus' text format (0.0.4, which every Prometheus reads), for
    `Authorization: Bearer <METRICS_TOKEN>`."""
    token = settings.METRICS_TOKEN
    if not token:
        raise Http404("METRICS_TOKEN is not set")
    given = request.headers.get("Authorization", "").encode()
    # Digests of equal length: the comparison's time tells nothing, not even the token's length.
    expected = hashlib.sha256(f"Bearer {token}".encode()).digest()
    if not hmac.compare_digest(hashlib.sha256(given).digest(), expected):
        response = HttpResponse(
            "a bearer token is required\n", status=401, content_type="text/plain"
        )
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(generate_latest(registry()), content_type=CONTENT_TYPE_PLAIN_0_0_4)
