"""Who may see what. Every page and export is behind `login_required`."""

from collections.abc import Callable
from functools import wraps
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth.decorators import login_required as django_login_required
from django.http import HttpRequest, HttpResponse
from django_htmx.http import HttpResponseClientRedirect


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
