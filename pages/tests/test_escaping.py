"""Seam's payloads and types are untrusted: whatever they hold is shown as text, never run."""

import pytest
from django.contrib.auth.models import User

from attempts.merge import Observation, merge
from attempts.models import Source
from pages.templatetags.attempt_tags import version

SCRIPT = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"


@pytest.fixture
def operator(client):
    client.force_login(User.objects.create_user("operator"))
    return client


@pytest.fixture
def hostile():
    merge("aa1", Observation(status="pending", action_type=SCRIPT), source=Source.WEBHOOK)
    error = {"type": f"x{SCRIPT}", "message": f"Lock said {SCRIPT}"}
    return merge(
        "aa1",
        Observation(status="error", has_payload=True, error=error),
        source=Source.API,
    ).attempt


def assert_escaped(body: str) -> None:
    assert SCRIPT not in body
    assert ESCAPED in body


@pytest.mark.django_db
class TestEscaping:
    def test_the_list_and_its_counts(self, operator, hostile):
        response = operator.get("/attempts/")

        body = response.content.decode()
        assert_escaped(body)
        stats = body[body.index('class="stats"') : body.index('id="seam-status"')]
        assert_escaped(stats)
        assert f"x{ESCAPED}" in body  # the error type in its row
        assert f'value="{ESCAPED}"' in body  # the type as a filter choice

    def test_the_list_filtered_by_that_type(self, operator, hostile):
        response = operator.get("/attempts/", {"action_type": SCRIPT})

        assert [a.pk for a in response.context["page"].rows] == [hostile.pk]
        assert_escaped(response.content.decode())

    def test_the_detail_page(self, operator, hostile):
        body = operator.get("/attempts/aa1/").content.decode()

        assert_escaped(body)
        assert f"Lock said {ESCAPED}" in body  # the prominent message
        assert f"&quot;Lock said {ESCAPED}&quot;" in body  # the pretty JSON

    def test_the_poll_partial(self, operator, hostile):
        response = operator.get(
            "/attempts/poll/", {"v": f"{hostile.pk}.{version(hostile) - 1}"}, HTTP_HX_REQUEST="true"
        )

        assert response.status_code == 200
        assert_escaped(response.content.decode())
