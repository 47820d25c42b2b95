from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from accounts import oidc
from dashboard import health
from pages import views as pages

urlpatterns = [
    path("", RedirectView.as_view(url="/attempts/", permanent=False)),
    path("healthz", health.healthz),
    path("readyz", health.readyz),
    path("cache-notice/", pages.cache_notice, name="cache-notice"),
    # Before Django's: the same login, with single sign-on's button.
    path("accounts/login/", oidc.LoginView.as_view(), name="login"),
    path("accounts/", include("django.contrib.auth.urls")),
    # The redirect URI to register at the provider is <dashboard>/oidc/callback/.
    path("oidc/authenticate/", oidc.Start.as_view(), name="oidc_authentication_init"),
    path("oidc/callback/", oidc.Callback.as_view(), name="oidc_authentication_callback"),
    path("admin/", admin.site.urls),
    path("", include("alerts.urls")),
    path("", include("metrics.urls")),
    path("", include("seam.urls")),
    path("", include("pages.urls")),
    path("", include("insights.urls")),
]
