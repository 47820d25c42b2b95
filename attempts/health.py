from django.http import HttpRequest, HttpResponse


def healthz(request: HttpRequest) -> HttpResponse:
    """Liveness for load balancers: answers while the process runs, touches nothing."""
    return HttpResponse("ok\n", content_type="text/plain")
