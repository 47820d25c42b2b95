"""/insights/ in a real browser (Debian's chromium), served by gunicorn: the charts as drawn."""

import pytest
from django.conf import settings
from playwright.sync_api import expect

from insights.tests.test_insights import attempt
from pages.tests.test_live_browser import browser, logged_in  # noqa: F401 - a fixture
from testing.servers import Gunicorn

pytestmark = [pytest.mark.browser, pytest.mark.gunicorn]

ARTIFACTS = settings.BASE_DIR / "test-artifacts"


@pytest.mark.django_db(transaction=True)
def test_a_single_hour_of_data_draws_its_error_rate(browser):  # noqa: F811 - the fixture
    ARTIFACTS.mkdir(exist_ok=True)
    # The demo's hour: 19 ended, 5 of them in error (26.3 %), and nothing in any other hour.
    for n in range(14):
        attempt(f"ok{n}", "success", hours_ago=0)
    for n in range(5):
        attempt(f"bad{n}", "error", hours_ago=0, error={"type": "device_offline", "message": "x"})

    with Gunicorn() as server:
        page = logged_in(browser, server).new_page()
        page.goto(f"{server.url}/insights/?last=1h")

        dot = page.locator("svg .rate-dot")
        expect(dot).to_have_count(1)
        expect(dot).to_be_visible()
        box = dot.bounding_box()
        assert box is not None and box["width"] > 0 and box["height"] > 0
        assert dot.get_attribute("data-percent") == "26.3"
        said = dot.locator("title").text_content()
        assert said.endswith(": 26.3 % error rate (5 errors of 19 ended)"), said
        # Drawn where 26.3 % is on a chart from 0 (bottom) to 100 % (top).
        chart = page.locator("svg.chart").nth(1).bounding_box()
        share = (chart["y"] + chart["height"] - (box["y"] + box["height"] / 2)) / chart["height"]
        assert abs(share - 0.263) < 0.02
        expect(page.locator("svg .rate-line")).to_have_count(0)
        expect(page.get_by_role("img", name="5 errors")).to_have_count(1)
        expect(page.locator("#resolution-title + p")).not_to_contain_text("Not narrowed")
        page.screenshot(path=ARTIFACTS / "insights-one-hour.png", full_page=True)
