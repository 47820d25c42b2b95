"""Real destinations for notices, on free loopback ports: an HTTP receiver for json:// URLs and
an SMTP server (aiosmtpd) for mailto:// URLs. Each keeps what it received."""

import json
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller

from fakeseam import free_port
from testing.servers import serving


class JsonReceiver:
    """`with JsonReceiver() as hook:` then ALERT_URLS=hook.apprise_url; hook.received is a list
    of the JSON bodies posted to it."""

    def __init__(self, port: int = 0, user: str = "", password: str = "", delay: float = 0) -> None:
        self.port = port or free_port()
        self.received: list[dict] = []
        self.authorization: list[str] = []
        credentials = f"{user}:{password}@" if user else ""
        self.apprise_url = f"json://{credentials}127.0.0.1:{self.port}/hook"
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                time.sleep(delay)  # a slow destination, as the test asks
                receiver.received.append(json.loads(body))
                receiver.authorization.append(self.headers.get("Authorization", ""))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._serving = serving(self.server)

    def __enter__(self) -> "JsonReceiver":
        self._serving.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._serving.__exit__(*exc)


class SmtpReceiver:
    """A real SMTP server; `.messages` holds each message's text."""

    def __init__(self) -> None:
        self.port = free_port()
        self.messages: list[str] = []
        self.apprise_url = (
            f"mailto://127.0.0.1:{self.port}?from=alerts@example.com&to=ops@example.com"
            "&mode=insecure"
        )
        receiver = self

        class Handler:
            async def handle_DATA(self, server, session, envelope) -> str:
                receiver.messages.append(envelope.content.decode(errors="replace"))
                return "250 OK"

        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)

    def __enter__(self) -> "SmtpReceiver":
        self.controller.start()
        return self

    def __exit__(self, *exc) -> None:
        self.controller.stop()
