"""gunicorn's sync worker, kept alive while a response streams.

The arbiter kills a worker that has not said it is alive for `timeout` seconds, and a sync worker
says so only between requests: a CSV export that streams for longer was killed mid-file, and the
client got a file cut short. This worker also says so after each chunk of a streamed response, so
a response that keeps moving is never cut, however long it runs; a worker stuck in one place (no
chunk for `timeout`, as nginx's proxy_read_timeout would cut it too) is still killed. Everything
else is the sync worker's: one request at a time per worker, which the webhook relies on.
"""

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from gunicorn.workers.sync import SyncWorker


class Heartbeat:
    """A streamed response body that calls `alive()` before each chunk it hands to the worker."""

    def __init__(self, body: Iterable[bytes], alive: Callable[[], None]) -> None:
        self.body = body
        self.alive = alive

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.body:
            self.alive()
            yield chunk

    def close(self) -> None:
        # Django's response ends its request here (signals, the database connection).
        if hasattr(self.body, "close"):
            self.body.close()


class StreamingSyncWorker(SyncWorker):
    def load_wsgi(self) -> None:
        super().load_wsgi()
        app = self.wsgi

        def wsgi(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
            body = app(environ, start_response)
            # Django's StreamingHttpResponse; whitenoise's files go out by sendfile, as before.
            if getattr(body, "streaming", False):
                return Heartbeat(body, self.notify)
            return body

        self.wsgi = wsgi
