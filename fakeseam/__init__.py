"""Seam's own fake server (`@seamapi/fake-seam-connect`), run on loopback for tests and the demo.

`npm ci --prefix fakeseam` installs it; `make run` and `make test` do that for you.
"""

import os
import socket
import subprocess
from pathlib import Path
from typing import Any

import httpx

from fakeseam.process import terminate, wait_listening

HERE = Path(__file__).resolve().parent
SERVER_JS = HERE / "node_modules" / "@seamapi" / "fake-seam-connect" / "dist" / "server.js"

# The seeded workspace: its API key, and devices that take actions.
API_KEY = "seam_apikey1_token"
WORKSPACE_ID = "seed_workspace_1"
LOCKS = ["august_device_1", "august_device_2"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class FakeSeam:
    """A running fake Seam server: `with FakeSeam() as seam: seam.url ...`."""

    def __init__(self, port: int = 0, log_path: Path | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.process: subprocess.Popen | None = None
        self.http = httpx.Client(base_url=self.url, timeout=10)

    def start(self, timeout: float = 30) -> "FakeSeam":
        if not SERVER_JS.exists():
            raise RuntimeError(
                "Seam's fake server is not installed: run `npm ci --prefix fakeseam`."
            )
        log = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        self.process = subprocess.Popen(
            ["node", "--import", str(HERE / "loopback.mjs"), str(SERVER_JS), "--seed"],
            env={**os.environ, "PORT": str(self.port)},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        wait_listening(self.process, self.port, "Seam's fake server", timeout)
        return self

    def stop(self) -> None:
        terminate(self.process, timeout=5)
        self.http.close()

    def __enter__(self) -> "FakeSeam":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def call(self, path: str, body: dict[str, Any], *, auth: bool = True) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {API_KEY}"} if auth else {}
        response = self.http.post(path, json=body, headers=headers)
        response.raise_for_status()
        return response.json() if response.content else {}

    def lock_door(self, device_id: str = LOCKS[0]) -> dict[str, Any]:
        """Starts a LOCK_DOOR attempt; the fake ends it in success at once unless told otherwise."""
        return self.call("/locks/lock_door", {"device_id": device_id})["action_attempt"]

    def unlock_door(self, device_id: str = LOCKS[0]) -> dict[str, Any]:
        return self.call("/locks/unlock_door", {"device_id": device_id})["action_attempt"]

    def set_attempt(self, action_attempt_id: str, status: str, **payload: Any) -> None:
        """Sets an attempt's status, with `result=` or `error=` for a terminal one."""
        body = {"action_attempt_id": action_attempt_id, "status": status, **payload}
        self.call("/_fake/update_action_attempt", body, auth=False)

    def outage(self, routes: list[str]) -> None:
        """Those routes answer 503 until `outage([])`."""
        body = {"workspace_id": WORKSPACE_ID, "routes": routes}
        self.call("/_fake/simulate_workspace_outage", body, auth=False)
