from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from dashboard import health

urlpatterns = [
    path("", RedirectView.as_view(url="/attempts/", permanent=False)),
    path("healthz", health.healthz),
    path("readyz", health.readyz),
    path("cache-notice/", health.cache_notice, name="cache-notice"),
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
    path("", include("alerts.urls")),
    path("", include("metrics.urls")),
    path("", include("seam.urls")),
    path("", include("pages.urls")),
    path("", include("insights.urls")),
]
