"""Where notices go: the Apprise URLs of ALERT_URLS. Apprise speaks every service (json://,
mailto://, slack://, msteams://, pagerduty://, ntfy://, …); this module only names them safely.

A URL holds its service's token, so it never leaves this module: notices are keyed by a hash of
it, and pages and log lines show its label (the scheme and host, with Apprise's own masking).
"""

import hashlib
import logging
from dataclasses import dataclass
from urllib.parse import urlsplit

import apprise
from django.conf import settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Destination:
    key: str
    label: str
    url: str

    def __repr__(self) -> str:
        return f"<Destination {self.label}>"


def _service(url: str):
    return apprise.Apprise.instantiate(url, suppress_exceptions=True)


def label_of(url: str) -> str:
    """scheme://host as Apprise prints it in privacy mode (user names and tokens masked)."""
    service = _service(url)
    if service is None:
        return f"{url.split(':', 1)[0][:20]}://…"
    parts = urlsplit(service.url(privacy=True))
    host = parts.netloc.rsplit("@", 1)[-1]
    return f"{parts.scheme}://{host}"[:200]


def configured() -> list[Destination]:
    return [
        Destination(hashlib.sha256(url.encode()).hexdigest(), label_of(url), url)
        for url in dict.fromkeys(settings.ALERT_URLS)
    ]


def problems(urls: list[str]) -> list[str]:
    """A readable reason for each URL Apprise cannot use; never the URL itself."""
    found = []
    for position, url in enumerate(urls, 1):
        if _service(url) is None:
            scheme = url.split("://", 1)[0] if "://" in url else ""
            found.append(
                f"ALERT_URLS entry {position} ({scheme or 'no scheme'}://…) is not an Apprise URL"
                " that Apprise can use: check its scheme and the parts that service needs."
            )
    return found


def send(destination: Destination, title: str, body: str) -> bool:
    """True when the destination took the notice; False when it refused, failed or timed out."""
    service = _service(destination.url)
    if service is None:
        return False
    try:
        return bool(service.notify(body=body, title=title))
    except Exception:  # a plugin's bug must not stop the other notices
        log.exception("alerts notice destination=%s outcome=error", destination.label)
        return False
