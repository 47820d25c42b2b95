"""Signing in with the team's OpenID Connect provider, on mozilla-django-oidc.

The library runs the authorization code flow (state, nonce, PKCE; the client authenticates to
the token endpoint with client_secret_basic) and checks the ID token's signature against the
provider's keys. This module adds what it leaves to its users:
- the endpoints come from the issuer's discovery document, fetched with a timeout and cached
  (a failure for FAILED_SECONDS, so a provider that is down costs the login page one timeout);
- the ID token's issuer, audience and expiry are checked too;
- a user is known by the provider's issuer and subject (ProviderAccount), made at the first
  sign-in as `preferred_username` (else `email`), and given the role its groups give
  (accounts.access) at every sign-in; a user outside the allowed groups is refused and no
  account is made;
- every refusal is said on the login page, where password sign-in keeps working.
"""

import hashlib
import logging
from typing import Any

import httpx
import jwt
import requests
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model
from django.contrib.auth import views as auth_views
from django.core.cache import cache
from django.core.exceptions import SuspiciousOperation
from django.db import IntegrityError, transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.utils.text import capfirst
from django.views import View
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.views import (
    OIDCAuthenticationCallbackView,
    OIDCAuthenticationRequestView,
)

from accounts.access import give_role, role_from_provider
from accounts.models import ProviderAccount
from dashboard.middleware import kv

log = logging.getLogger(__name__)

DISCOVERY_TIMEOUT_SECONDS = 3
DISCOVERY_SECONDS = 3600
FAILED_SECONDS = 30
ENDPOINTS = ("authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri")
# Signed by the provider's own keys only (never a shared secret, never "none").
ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512"]
CLOCK_SKEW_SECONDS = 30


class Unavailable(Exception):
    """The provider's discovery document could not be had."""


class Refused(Exception):
    """A sign-in the dashboard refuses; the message is for the person signing in."""


class Unverified(Exception):
    """The provider's answer does not hold together; the message is for the log."""


def _key(what: str) -> str:
    return (
        f"oidc:{what}:" + hashlib.blake2b(settings.OIDC_ISSUER.encode(), digest_size=8).hexdigest()
    )


def discovery() -> dict[str, Any]:
    """The provider's endpoints, from `<issuer>/.well-known/openid-configuration`."""
    found = cache.get(_key("discovery"))
    if found:
        return found
    if cache.get(_key("failed")):
        raise Unavailable("the provider did not answer a moment ago")
    url = settings.OIDC_ISSUER.rstrip("/") + "/.well-known/openid-configuration"
    try:
        response = httpx.get(url, timeout=DISCOVERY_TIMEOUT_SECONDS)
        response.raise_for_status()
        document = response.json()
        if document.get("issuer") != settings.OIDC_ISSUER:
            raise ValueError(f"its issuer is {document.get('issuer')!r}, not OIDC_ISSUER")
        if not all(isinstance(document.get(name), str) for name in ENDPOINTS):
            raise ValueError(f"it lacks one of {', '.join(ENDPOINTS)}")
    except (httpx.HTTPError, ValueError, AttributeError) as e:
        cache.set(_key("failed"), 1, FAILED_SECONDS)
        log.warning(kv(event="oidc_discovery", outcome="failed", url=url, reason=str(e)[:200]))
        raise Unavailable(str(e)) from e
    cache.set(_key("discovery"), document, DISCOVERY_SECONDS)
    return document


def offer() -> dict[str, Any] | None:
    """What the login page offers: nothing without OIDC_ISSUER, else the button or a notice."""
    if not settings.OIDC_ISSUER:
        return None
    try:
        discovery()
    except Unavailable:
        return {"name": settings.OIDC_NAME, "available": False, "notice": unavailable()}
    return {"name": settings.OIDC_NAME, "available": True}


def unavailable() -> str:
    return f"{capfirst(settings.OIDC_NAME)} is unavailable right now: sign in with your password."


def groups_of(claims: dict[str, Any]) -> list[str]:
    found = claims.get(settings.OIDC_GROUPS_CLAIM) or []
    return [found] if isinstance(found, str) else [str(g) for g in found if g is not None]


class ProviderBackend(OIDCAuthenticationBackend):
    """mozilla-django-oidc's backend, with its endpoints from discovery, the ID token's claims
    checked, users known by issuer and subject, and roles from the groups claim."""

    def __init__(self) -> None:
        # The library reads fixed endpoints from settings here; ours come from discovery.
        self.UserModel = get_user_model()
        self.OIDC_RP_CLIENT_ID = settings.OIDC_CLIENT_ID
        self.OIDC_RP_CLIENT_SECRET = settings.OIDC_CLIENT_SECRET
        self.OIDC_RP_SIGN_ALGO = "RS256"
        self.OIDC_RP_IDP_SIGN_KEY = None

    def authenticate(self, request: HttpRequest | None, **kwargs: Any) -> Any:
        if request is None or "nonce" not in kwargs or not settings.OIDC_ISSUER:
            return None  # a password sign-in: not ours
        try:
            endpoints = discovery()
            self.OIDC_OP_TOKEN_ENDPOINT = endpoints["token_endpoint"]
            self.OIDC_OP_USER_ENDPOINT = endpoints["userinfo_endpoint"]
            self.OIDC_OP_JWKS_ENDPOINT = endpoints["jwks_uri"]
            user = super().authenticate(request, **kwargs)
        except Unavailable:
            return refuse(request, unavailable(), "provider_unavailable")
        except Refused as e:
            return refuse(request, str(e), "refused")
        except (
            jwt.InvalidTokenError,
            SuspiciousOperation,
            requests.RequestException,
            Unverified,
        ) as e:
            reason = f"{type(e).__name__}: {e}"[:200]
            message = f"{capfirst(settings.OIDC_NAME)}'s answer could not be verified: try again."
            return refuse(request, message, "unverified", reason)
        if user is not None:
            log.info(kv(event="signin", method="oidc", outcome="ok", user=user.pk))
        return user

    def get_payload_data(self, token: str, key: Any) -> dict[str, Any]:
        """The ID token's claims, once its signature, issuer, audience and expiry are right."""
        return jwt.decode(
            token,
            key,
            algorithms=ALGORITHMS,
            audience=settings.OIDC_CLIENT_ID,
            issuer=settings.OIDC_ISSUER,
            leeway=CLOCK_SKEW_SECONDS,
            options={"require": ["iss", "aud", "exp", "iat", "sub"]},
        )

    def get_userinfo(self, access_token: str, id_token: str, payload: dict) -> dict[str, Any]:
        """The ID token's claims with the userinfo endpoint's: either may carry the groups."""
        userinfo = super().get_userinfo(access_token, id_token, payload)
        if userinfo.get("sub") != payload["sub"]:
            # The library would swallow a SuspiciousOperation here without a word.
            raise Unverified("userinfo is about another subject than the ID token")
        return {**payload, **userinfo}

    def verify_claims(self, claims: dict[str, Any]) -> bool:
        self.role = role_from_provider(groups_of(claims))
        if self.role is None:
            raise Refused(
                f"Signed in by {settings.OIDC_NAME}, but none of your groups there may use this "
                "dashboard: ask an admin to add you to one."
            )
        if not (claims.get("preferred_username") or claims.get("email")):
            raise Refused(f"{capfirst(settings.OIDC_NAME)} gave neither a username nor an email.")
        return True

    def filter_users_by_claims(self, claims: dict[str, Any]) -> Any:
        return self.UserModel.objects.filter(
            provider_account__issuer=settings.OIDC_ISSUER,
            provider_account__subject=claims["sub"],
        )

    def create_user(self, claims: dict[str, Any]) -> Any:
        username = str(claims.get("preferred_username") or claims["email"])[:150]
        taken = Refused(
            f"An account named {username!r} already exists here: an admin can rename or remove "
            "it, then sign in again."
        )
        if self.UserModel.objects.filter(username=username).exists():
            raise taken
        try:
            with transaction.atomic():
                user = self.UserModel.objects.create_user(username, email=claims.get("email", ""))
                ProviderAccount.objects.create(
                    user=user, issuer=settings.OIDC_ISSUER, subject=claims["sub"]
                )
                give_role(user, self.role)
        except IntegrityError as e:  # the same person signing in twice at once
            raise taken from e
        return user

    def update_user(self, user: Any, claims: dict[str, Any]) -> Any:
        give_role(user, self.role)
        return user


def refuse(request: HttpRequest, message: str, outcome: str, reason: str = "") -> None:
    """Says why on the login page (the callback view shows it) and in one log line."""
    request.signin_refusal = message  # type: ignore[attr-defined]
    log.warning(kv(event="signin", method="oidc", outcome=outcome, reason=reason or message))
    return None


class Start(OIDCAuthenticationRequestView):
    """GET /oidc/authenticate/: off to the provider's sign-in, or back to the login page with
    why not."""

    def __init__(self, **kwargs: Any) -> None:
        View.__init__(self, **kwargs)
        self.OIDC_RP_CLIENT_ID = settings.OIDC_CLIENT_ID

    def get(self, request: HttpRequest) -> HttpResponse:
        if not settings.OIDC_ISSUER:
            raise Http404("No single sign-on is set up (OIDC_ISSUER).")
        try:
            self.OIDC_OP_AUTH_ENDPOINT = discovery()["authorization_endpoint"]
        except Unavailable:
            messages.error(request, unavailable())
            return redirect(settings.LOGIN_URL)
        return super().get(request)


class Callback(OIDCAuthenticationCallbackView):
    """GET /oidc/callback/, where the provider sends the browser back."""

    def get(self, request: HttpRequest) -> HttpResponse:
        if not settings.OIDC_ISSUER:
            raise Http404("No single sign-on is set up (OIDC_ISSUER).")
        if request.GET.get("error"):
            said = request.GET.get("error_description") or request.GET["error"]
            request.signin_refusal = (
                f"{capfirst(settings.OIDC_NAME)} did not sign you in: {said[:200]}"
            )
        try:
            return super().get(request)
        except SuspiciousOperation:  # a state this browser did not start, or used already
            request.signin_refusal = "That sign-in had expired or was used already: try again."
            return self.login_failure()

    def login_failure(self) -> HttpResponse:
        message = getattr(self.request, "signin_refusal", "")
        if not message and getattr(self, "user", None) is not None:
            message = "This account is deactivated here: ask an admin."
        messages.error(self.request, message or "Single sign-on did not complete: try again.")
        return redirect(settings.LOGIN_URL)


class LoginView(auth_views.LoginView):
    """Django's login, with the button (or the notice) for single sign-on, and why a sign-in
    by the proxy's header was refused."""

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        # A sign-in by the proxy's header that was refused says why here.
        refusal = getattr(self.request, "signin_refusal", "")
        return super().get_context_data(**kwargs) | {"sso": offer(), "refusal": refusal}
