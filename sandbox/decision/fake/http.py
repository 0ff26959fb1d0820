"""The fake Messages API behind a real HTTP server on 127.0.0.1 (a thread of this process).

With ``ANTHROPIC_BASE_URL`` set to :attr:`FakeServer.url`, ``llm="anthropic"`` runs the
real-API code path end to end (the SDK's own HTTP transport, any process), offline.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx2

from sandbox.decision.fake.server import FakeMessagesAPI


@dataclass
class Seen:
    """One request the local server answered."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class FakeServer:
    """Serve ``fake`` on an ephemeral port of 127.0.0.1 for the ``with`` block.

    Every request is recorded in :attr:`seen` (method, path, lower-cased headers, body).
    """

    def __init__(self, fake: FakeMessagesAPI | None = None):
        self.fake = fake or FakeMessagesAPI()
        self.seen: list[Seen] = []
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _serve(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {k.lower(): v for k, v in self.headers.items()}
                with server._lock:
                    server.seen.append(Seen(self.command, self.path, headers, body))
                request = httpx2.Request(
                    self.command,
                    f"http://{self.headers.get('host', '127.0.0.1')}{self.path}",
                    headers=headers,
                    content=body,
                )
                try:
                    response = server.fake.handle(request)
                    payload = response.read()
                    status = response.status_code
                    out_headers = {
                        k: v
                        for k, v in response.headers.items()
                        if k.lower()
                        not in (
                            "content-length",
                            "transfer-encoding",
                            "content-encoding",
                            "connection",
                        )
                    }
                except httpx2.TimeoutException:  # the fake's "slow" fault: a gateway timeout
                    payload, status = b'{"type":"error"}', 504
                    out_headers = {"content-type": "application/json"}
                self.send_response(status)
                for key, value in out_headers.items():
                    self.send_header(key, value)
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_GET = do_POST = do_DELETE = _serve

            def log_message(self, *args) -> None:  # keep notebooks and pytest quiet
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """The base URL to put in ``ANTHROPIC_BASE_URL``."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def requests(self) -> int:
        """How many HTTP requests the server answered."""
        return len(self.seen)

    @property
    def api_keys(self) -> set[str]:
        """Every API key a request carried (``x-api-key`` or a bearer token)."""
        keys = (s.headers.get("x-api-key") or s.headers.get("authorization", "") for s in self.seen)
        return {key.removeprefix("Bearer ") for key in keys}

    def message_bodies(self) -> list[dict]:
        """The JSON bodies of every ``POST /v1/messages``."""
        return [
            json.loads(s.body)
            for s in self.seen
            if s.method == "POST" and s.path.rstrip("/").endswith("/v1/messages")
        ]

    def __enter__(self) -> FakeServer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._server.shutdown()
        self._server.server_close()
