"""SEAM_WEBHOOK_SECRET as a comma list: secrets bound to a workspace, and secrets side by side
while one is rotated."""

import base64
import json
import os

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from attempts.models import Attempt, WebhookEvent
from seam import secrets
from testing.servers import Gunicorn
from testing.webhooks import deliver, seam_event, signed_headers


def new_secret() -> str:
    return "whsec_" + base64.b64encode(os.urandom(24)).decode()


BOUND = new_secret()  # workspace ws_1's endpoint
OLD, NEW = new_secret(), new_secret()  # bound to none: rotated
SETTING = f"ws_1:{BOUND}, {OLD},{NEW}"


def signed(secret: str, **fields) -> tuple[bytes, dict[str, str]]:
    body = json.dumps(seam_event(**fields)).encode()
    return body, signed_headers(body, secret=secret)


@pytest.fixture(scope="module")
def server(django_db_setup):
    with Gunicorn(env={"SEAM_WEBHOOK_SECRET": SETTING}) as server:
        yield server


@pytest.mark.django_db(transaction=True)
@pytest.mark.gunicorn
class TestSecretsInTheReceiver:
    def test_a_bound_secret_verifies_its_workspaces_events(self, server):
        body, headers = signed(BOUND, event_id="evt_ws1", workspace_id="ws_1")
        response = deliver(server, body, headers)
        assert response.status_code == 200, response.text
        assert WebhookEvent.objects.filter(event_id="evt_ws1").exists()

    def test_a_bound_secret_refuses_another_workspaces_events(self, server):
        body, headers = signed(BOUND, event_id="evt_ws2", workspace_id="ws_2")
        response = deliver(server, body, headers)
        assert response.status_code == 401
        assert response.json()["error"] == "signed with the secret of another workspace"
        assert not WebhookEvent.objects.exists() and not Attempt.objects.exists()

    def test_a_bound_secret_refuses_an_event_naming_no_workspace(self, server):
        body, headers = signed(BOUND, event_id="evt_none", workspace_id=None)
        assert deliver(server, body, headers).status_code == 401
        assert not WebhookEvent.objects.exists()

    @pytest.mark.parametrize("secret", [OLD, NEW])
    def test_either_secret_of_a_rotation_verifies_any_workspace(self, server, secret):
        body, headers = signed(secret, event_id=f"evt_{secret[-6:]}", workspace_id="ws_9")
        assert deliver(server, body, headers).status_code == 200
        assert WebhookEvent.objects.filter(event_id=f"evt_{secret[-6:]}").exists()

    def test_a_secret_not_configured_is_refused(self, server):
        body, headers = signed(new_secret(), event_id="evt_other")
        assert deliver(server, body, headers).status_code == 401
        assert not WebhookEvent.objects.exists()


class TestParse:
    def test_one_secret_is_one_entry_bound_to_no_workspace(self):
        (entry,), problems = secrets.parse(OLD)
        assert (entry.position, entry.workspace_id, problems) == (1, "", ())

    def test_entries_keep_their_workspace_and_position(self):
        entries, problems = secrets.parse(SETTING)
        assert [(e.position, e.workspace_id) for e in entries] == [(1, "ws_1"), (2, ""), (3, "")]
        assert problems == ()

    def test_malformed_entries_are_named_by_position_never_by_value(self):
        setting = f"{OLD},,ws_1:seam_apikey1_token,:{NEW},{NEW[:-1]}"
        entries, problems = secrets.parse(setting)
        assert [e.position for e in entries] == [1]
        assert problems == (
            "SEAM_WEBHOOK_SECRET entry 2 of 5 is empty.",
            "SEAM_WEBHOOK_SECRET entry 3 of 5 is not a whsec_ secret in base64.",
            "SEAM_WEBHOOK_SECRET entry 4 of 5 names no workspace before its colon.",
            "SEAM_WEBHOOK_SECRET entry 5 of 5 is not a whsec_ secret in base64.",
        )

    def test_the_demo_signs_with_the_first_entrys_secret(self):
        assert secrets.signing_secret(SETTING) == BOUND
        assert secrets.signing_secret(OLD) == OLD


class TestSystemCheck:
    def test_it_fails_naming_the_setting_and_no_value(self, settings):
        settings.SEAM_WEBHOOK_SECRET = f"{OLD},ws_1:whsec_not base64"
        with pytest.raises(SystemCheckError) as failed:
            call_command("check")
        assert "SEAM_WEBHOOK_SECRET entry 2 of 2 is not a whsec_ secret" in str(failed.value)
        assert OLD not in str(failed.value) and "not base64" not in str(failed.value)

    def test_it_passes_a_well_formed_list(self, settings):
        settings.SEAM_WEBHOOK_SECRET = SETTING
        call_command("check")
