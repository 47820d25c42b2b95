"""Debian's chromium driven by Playwright, launched the same way by every browser test."""

from collections.abc import Iterator
from contextlib import contextmanager

from playwright.sync_api import Browser, Page, sync_playwright

from testing.servers import wait_until

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@contextmanager
def chromium() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS
        )
        try:
            yield browser
        finally:
            browser.close()


# Counts the polls of the page's poller that it has handled: added after the page's own listener,
# so a poll counts once the rows it brought are in. Returns the count so far.
COUNT_POLLS = """() => {
  if (window.pollsHandled === undefined) {
    window.pollsHandled = 0;
    document.addEventListener("htmx:afterRequest", (event) => {
      if (event.detail.elt.id === "poller") window.pollsHandled += 1;
    });
  }
  return window.pollsHandled;
}"""


def polls_handled(page: Page, count: int = 2, timeout: float = 10) -> None:
    """Returns once the page has handled `count` more polls. A page's polls never overlap, so of
    two, the second was sent after this call: what the page lacks then, no poll since brought."""
    target = page.evaluate(COUNT_POLLS) + count
    wait_until(lambda: page.evaluate("window.pollsHandled") >= target, timeout, f"{count} polls")
