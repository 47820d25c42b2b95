"""A counting HTTP proxy in front of Seam's fake server: tests see each call the dashboard makes."""

import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx


@dataclass(frozen=True)
class Call:
    at: float  # time.monotonic() when the call arrived
    path: str
    body: Any


class CountingProxy:
    """`with CountingProxy(fake_seam.url) as proxy:` point SEAM_API_URL at proxy.url."""

    def __init__(self, upstream: str) -> None:
        self.upstream = httpx.Client(base_url=upstream, timeout=10)
        self.calls: list[Call] = []
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    body = json.loads(raw) if raw else None
                except ValueError:
                    body = None
                with proxy.lock:
                    proxy.calls.append(Call(time.monotonic(), self.path, body))
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                answer = proxy.upstream.post(self.path, content=raw, headers=headers)
                self.send_response(answer.status_code)
                self.send_header("Content-Type", answer.headers.get("content-type", "text/plain"))
                self.send_header("Content-Length", str(len(answer.content)))
                self.end_headers()
                self.wfile.write(answer.content)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def calls_to(self, path: str) -> list[Call]:
        with self.lock:
            return [c for c in self.calls if c.path == path]

    def reset(self) -> None:
        with self.lock:
            self.calls.clear()

    def __enter__(self) -> "CountingProxy":
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.upstream.close()
