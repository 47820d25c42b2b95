from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from attempts import health

urlpatterns = [
    path("", RedirectView.as_view(url="/attempts/", permanent=False)),
    path("healthz", health.healthz),
    path("readyz", health.readyz),
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
    path("", include("attempts.urls")),
    path("", include("insights.urls")),
]
