"""Who may see what and do what. Every page and export is behind `login_required`.

Three roles, each with all the rights of the one before:
- viewer: every page and export;
- operator: also what asks Seam or changes something (Track, Refresh from Seam, acknowledging
  an incident);
- admin: also alert rules, the Django admin and users.

A local user's role is its highest group among GROUP_NAMES; a superuser is an admin, a user in
no group a viewer. A user signing in through the identity provider or the auth proxy gets the
role its groups there give (`role_from_provider`). This module is the only place that decides.
"""

from collections.abc import Callable, Iterable
from enum import IntEnum
from functools import cached_property, wraps
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib import admin
from django.contrib.auth.backends import BaseBackend
from django.contrib.auth.decorators import login_required as django_login_required
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser, Group
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.loader import render_to_string
from django.urls import reverse
from django_htmx.http import HttpResponseClientRedirect


class Role(IntEnum):
    VIEWER = 1
    OPERATOR = 2
    ADMIN = 3

    @property
    def label(self) -> str:
        return self.name.lower()

    @property
    def holders(self) -> str:
        """Who holds this role's rights, as a refusal says it."""
        return " and ".join(f"{r.label}s" for r in Role if r >= self)


# The Django groups that give a local user a role (made by accounts/migrations/0001_roles.py).
GROUP_NAMES = {Role.VIEWER: "Viewers", Role.OPERATOR: "Operators", Role.ADMIN: "Admins"}
ROLE_OF_GROUP = {name: role for role, name in GROUP_NAMES.items()}

AnyUser = AbstractBaseUser | AnonymousUser


def role_of(user: AnyUser) -> Role | None:
    """The user's role; None for nobody logged in (or a deactivated user). Read once per user
    object, so once per request."""
    if not user.is_authenticated or not user.is_active:
        return None
    role = getattr(user, "_dashboard_role", None)
    if role is None:
        role = Role.ADMIN if user.is_superuser else role_of_groups(user.groups.all())
        user._dashboard_role = role  # type: ignore[union-attr]
    return role


def role_of_groups(groups: Iterable[Group]) -> Role:
    return max((ROLE_OF_GROUP.get(g.name, Role.VIEWER) for g in groups), default=Role.VIEWER)


def role_from_provider(groups: Iterable[str]) -> Role | None:
    """The role that a sign-in's groups give (single sign-on's groups claim, or the auth proxy's
    groups header), re-read at every sign-in; None: not allowed to sign in at all."""
    groups = set(groups)
    if groups & set(settings.OIDC_ADMIN_GROUPS):
        return Role.ADMIN
    if groups & set(settings.OIDC_OPERATOR_GROUPS):
        return Role.OPERATOR
    if not settings.OIDC_VIEWER_GROUPS or groups & set(settings.OIDC_VIEWER_GROUPS):
        return Role.VIEWER
    return None


def may(user: AnyUser, role: Role) -> bool:
    found = role_of(user)
    return found is not None and found >= role


def give_role(user: AbstractBaseUser, role: Role) -> None:
    """Makes the user's role exactly this one (its other groups stay)."""
    ours = [Group.objects.get_or_create(name=name)[0] for name in GROUP_NAMES.values()]
    user.groups.remove(*ours)
    user.groups.add(next(g for g in ours if g.name == GROUP_NAMES[role]))
    user.__dict__.pop("_dashboard_role", None)


def login_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Django's, but an htmx request (a poll from a page whose session expired) sends the whole
    page to the login, rather than swapping the login form into it."""
    guarded = django_login_required(view)

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if request.htmx and not request.user.is_authenticated:
            next_url = request.htmx.current_url_abs_path or request.get_full_path()
            return HttpResponseClientRedirect(
                f"{settings.LOGIN_URL}?{urlencode({'next': next_url})}"
            )
        return guarded(request, *args, **kwargs)

    return wrapper


def forbidden(request: HttpRequest, reason: str) -> HttpResponse:
    """A 403 page saying what the user's role does not allow, and who to ask."""
    return HttpResponse(render_to_string("403.html", {"reason": reason}, request), status=403)


def role_required(role: Role, what: str) -> Callable[..., Callable[..., HttpResponse]]:
    def decorator(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @login_required
        @wraps(view)
        def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not may(request.user, role):
                return forbidden(request, f"Only {role.holders} may {what}.")
            return view(request, *args, **kwargs)

        return wrapper

    return decorator


def operator_required(what: str) -> Callable[..., Callable[..., HttpResponse]]:
    """For a view that asks Seam or changes something: a viewer gets a 403 saying so, before
    anything is asked or changed."""
    return role_required(Role.OPERATOR, what)


class Rights:
    """What the page may offer the user, read only when a template asks."""

    def __init__(self, user: AnyUser) -> None:
        self.user = user

    @cached_property
    def role(self) -> Role | None:
        return role_of(self.user)

    @cached_property
    def operate(self) -> bool:
        return may(self.user, Role.OPERATOR)

    @cached_property
    def administer(self) -> bool:
        return may(self.user, Role.ADMIN)


def rights(request: HttpRequest) -> dict[str, Rights]:
    """Template context: `{% if rights.operate %}` around what a viewer may not do."""
    return {"rights": Rights(getattr(request, "user", AnonymousUser()))}


class AdminRights(BaseBackend):
    """An admin holds every permission, as a superuser does: the Django admin, its alert rules
    and its users. Authenticates nobody; the read-only admins refuse changes themselves."""

    def has_perm(self, user_obj: Any, perm: str, obj: Any = None) -> bool:
        return may(user_obj, Role.ADMIN)

    def has_module_perms(self, user_obj: Any, app_label: str) -> bool:
        return may(user_obj, Role.ADMIN)


class AdminSite(admin.AdminSite):
    """The Django admin is for admins (not for `is_staff`), who sign in on the dashboard's own
    login page (single sign-on included)."""

    def has_permission(self, request: HttpRequest) -> bool:
        return may(request.user, Role.ADMIN)

    def login(self, request: HttpRequest, extra_context: dict | None = None) -> HttpResponse:
        if self.has_permission(request):
            return redirect("admin:index")
        if request.user.is_authenticated:
            return forbidden(request, "Only admins may use the Django admin.")
        next_url = request.GET.get("next") or reverse("admin:index")
        return redirect(f"{settings.LOGIN_URL}?{urlencode({'next': next_url})}")
