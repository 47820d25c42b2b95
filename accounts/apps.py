from django.apps import AppConfig
from django.contrib.admin.apps import AdminConfig as DjangoAdminConfig


class AccountsConfig(AppConfig):
    """Who signs in and what each may do: roles, single sign-on, an auth proxy's headers."""

    name = "accounts"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from accounts.trusted_header import warn_if_ignored

        warn_if_ignored()


class AdminConfig(DjangoAdminConfig):
    """Django's admin, on the site that lets admins in (accounts.access.AdminSite)."""

    default_site = "accounts.access.AdminSite"
