from typing import Any

from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET

from accounts.access import login_required
from attempts.filters import AttemptFilterForm
from dashboard.shared import figures_key, shared
from dashboard.web import is_partial
from insights.figures import DEFAULT_LAST, report


@login_required
@require_GET
def insights(request: HttpRequest) -> HttpResponse:
    form = AttemptFilterForm(request.GET)
    context: dict[str, Any] = {"form": form, "picked": form.picked()}
    status = 200
    if form.is_valid():
        # The list's filters, not its id search nor "not found on Seam": the rollups know neither.
        filters = {**form.filters(), "q": None, "not_found": None}
        base = {k: request.GET.getlist(k) for k in ("action_type", "last", "since", "until")}
        base = {k: v for k, v in base.items() if v}
        if not (filters["last"] or filters["since"] or filters["until"]):
            base["last"] = [DEFAULT_LAST]
        # Shared by every viewer for half a minute, as the list's counts are.
        key = figures_key("insights:report", filters, base)
        context["report"] = shared(key, lambda: report(filters, base))
    else:
        status = 400
    template = "insights/_report.html" if is_partial(request, "report") else "insights/page.html"
    response = render(request, template, context, status=status)
    patch_vary_headers(response, ["HX-Request"])
    return response
