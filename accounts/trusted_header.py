"""Signing in by a header that an auth proxy in front sets (oauth2-proxy behind nginx, say):
REMOTE_USER_HEADER names the user, REMOTE_GROUPS_HEADER (a comma list) their groups, which give
their role as single sign-on's groups do (accounts.access). Honoured only with BEHIND_PROXY: a
client reaching the dashboard itself could send any header it likes.
"""

import logging
from typing import Any

from django.conf import settings
from django.contrib.auth.backends import RemoteUserBackend
from django.contrib.auth.middleware import RemoteUserMiddleware
from django.db import transaction
from django.http import HttpRequest

from accounts.access import give_role, role_from_provider
from dashboard.middleware import kv

log = logging.getLogger(__name__)


def honoured() -> bool:
    return bool(settings.REMOTE_USER_HEADER) and settings.BEHIND_PROXY


def meta_key(header: str) -> str:
    return "HTTP_" + header.upper().replace("-", "_")


def warn_if_ignored() -> None:
    """Once at start: a header mode that is set but cannot be honoured says so."""
    if settings.REMOTE_USER_HEADER and not settings.BEHIND_PROXY:
        log.warning(
            kv(
                event="remote_user_header_ignored",
                header=settings.REMOTE_USER_HEADER,
                reason="BEHIND_PROXY is off: only a proxy in front may say who the user is",
            )
        )


class TrustedHeaderMiddleware(RemoteUserMiddleware):
    """Django's RemoteUserMiddleware on the configured header, and only behind the proxy."""

    async_capable = False  # served by WSGI

    def process_request(self, request: HttpRequest) -> None:
        if not honoured():
            return
        self.header = meta_key(settings.REMOTE_USER_HEADER)
        super().process_request(request)


class TrustedHeaderBackend(RemoteUserBackend):
    """Makes the user the proxy names at their first sign-in; with REMOTE_GROUPS_HEADER, gives
    the role their groups give at every sign-in, and refuses (making no account) a user whose
    groups may not use the dashboard."""

    def authenticate(self, request: HttpRequest | None, remote_user: str) -> Any:
        if request is None or not honoured() or not remote_user or len(remote_user) > 150:
            return None
        role = None
        if settings.REMOTE_GROUPS_HEADER:
            groups = request.META.get(meta_key(settings.REMOTE_GROUPS_HEADER), "")
            role = role_from_provider(g.strip() for g in groups.split(",") if g.strip())
            if role is None:
                request.signin_refusal = (  # type: ignore[attr-defined]
                    f"The sign-in proxy names you {remote_user!r}, but none of your groups may "
                    "use this dashboard: ask an admin to add you to one."
                )
                log.warning(kv(event="signin", method="header", outcome="refused"))
                return None
        with transaction.atomic():
            user = super().authenticate(request, remote_user)
            if user is not None and role is not None:
                give_role(user, role)
        if user is not None:
            log.info(kv(event="signin", method="header", outcome="ok", user=user.pk))
        return user

    def configure_user(self, request: HttpRequest, user: Any, created: bool = True) -> Any:
        if created:  # signs in through the proxy only, never with a password here
            user.set_unusable_password()
            user.save(update_fields=["password"])
        return user
