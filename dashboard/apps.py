from django.apps import AppConfig
from django.contrib.admin.apps import AdminConfig as DjangoAdminConfig


class DashboardConfig(AppConfig):
    """The project itself, as an app for its models and migrations (roles, sign-in)."""

    name = "dashboard"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from dashboard.trusted_header import warn_if_ignored

        warn_if_ignored()


class AdminConfig(DjangoAdminConfig):
    """Django's admin, on the site that lets admins in (dashboard.access.AdminSite)."""

    default_site = "dashboard.access.AdminSite"
