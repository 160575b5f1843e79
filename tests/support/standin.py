"""A tiny OpenAI-compatible stand-in, only for answers the real test server cannot be made to give
(a prompt in French, a garbage stream, one whole JSON completion instead of a stream)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


class StandIn(ThreadingHTTPServer):
    """Answers /v1/models with one model and every chat request with `answer` (SSE) or `whole` (JSON)."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.answer: list[str] = []  # the `data:` payloads of the next streamed answers
        self.whole: dict | None = None  # when set: a non-streamed completion instead
        self.headers_seen: list[dict[str, str]] = []
        self.requests: list[tuple[str, dict]] = []  # (path, JSON body) of every POST

    @property
    def url(self) -> str:
        """The base URL to put in brain.model."""
        return f"http://127.0.0.1:{self.server_address[1]}/v1"

    def stream_answer(self, content: str) -> None:
        """Stream `content` in a few chunks, with a finish_reason, like a real server."""
        pieces = [content[i:i + 7] for i in range(0, len(content), 7)]
        chunks = [{"choices": [{"delta": {"content": p}, "finish_reason": None}]} for p in pieces]
        chunks.append({"choices": [{"delta": {}, "finish_reason": "stop"}]})
        self.answer = [json.dumps(c) for c in chunks] + ["[DONE]"]

    def stream_text(self, text: str) -> None:
        """Stream `text` as a /v1/completions answer (chunks with `text`, not `delta`), like a real server."""
        pieces = [text[i:i + 7] for i in range(0, len(text), 7)]
        chunks = [{"choices": [{"text": p, "finish_reason": None}]} for p in pieces]
        chunks.append({"choices": [{"text": "", "finish_reason": "stop"}]})
        self.answer = [json.dumps(c) for c in chunks] + ["[DONE]"]


class _Handler(BaseHTTPRequestHandler):
    server: StandIn

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def _send(self, status: int, content_type: str, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self.server.headers_seen.append(dict(self.headers))
        self._send(200, "application/json", json.dumps({"object": "list", "data": [{"id": "standin"}]}).encode())

    def do_POST(self) -> None:
        self.server.headers_seen.append(dict(self.headers))
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append((self.path, request))
        if not request.get("stream"):  # the structured-output probe
            self._send(200, "application/json", json.dumps({"choices": [{"message": {"content": "{"}}]}).encode())
        elif self.server.whole is not None:
            self._send(200, "application/json", json.dumps(self.server.whole).encode())
        else:
            body = "".join(f"data: {payload}\n\n" for payload in self.server.answer).encode()
            self._send(200, "text/event-stream", body)


@pytest.fixture
def standin() -> Iterator[StandIn]:
    """The stand-in, serving on a free loopback port."""
    server = StandIn()
    thread = threading.Thread(target=server.serve_forever, name="standin")
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
