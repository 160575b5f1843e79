"""A local stand-in for the Hugging Face hub, over real HTTP, for the first-launch download tests.

The hub cannot be reached from the build machines, so this server answers what huggingface_hub
asks when it downloads a file: `HEAD /{repo}/resolve/{revision}/{file}` (X-Repo-Commit, ETag,
Content-Length) and `GET` of the same path (with `Range` for a resumed download). Each file's
ETag is what the real hub uses as the cache's blob name: the sha256 of the content for large
(LFS) files, git's blob sha1 for small ones. GET streams in chunks with a pause between them, so
a download takes long enough for its progress to be seen.
"""

from __future__ import annotations

import functools
import hashlib
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

import huggingface_hub
import pytest

COMMIT = "0123456789abcdef0123456789abcdef01234567"
LFS_FROM = 10_000  # bytes: larger files get a sha256 ETag, as LFS files do on the hub
PATH = re.compile(r"^/(?P<repo>[^/]+/[^/]+)/resolve/(?P<revision>[^/]+)/(?P<file>.+)$")


@functools.lru_cache(maxsize=64)
def etag_of(path: Path) -> str:
    """The hub's ETag for a file: sha256 (LFS) or git's blob sha1 (plain git files)."""
    data = path.read_bytes()
    if len(data) >= LFS_FROM:
        return hashlib.sha256(data).hexdigest()
    return hashlib.sha1(f"blob {len(data)}\0".encode() + data).hexdigest()


@dataclass
class HubServer:
    """Serves `repos` ({"owner/name": folder}) on 127.0.0.1; `url` once started."""

    repos: dict[str, Path]
    chunk: int = 256 * 1024
    pause: float = 0.0  # seconds between chunks
    requests: list[str] = field(default_factory=list)  # "HEAD owner/name/file", "GET ..."
    url: str = ""

    def file_for(self, request_path: str) -> Path | None:
        match = PATH.match(unquote(request_path.split("?", 1)[0]))
        if match is None or match["repo"] not in self.repos:
            return None
        path = self.repos[match["repo"]] / match["file"]
        return path if path.is_file() else None


def _handler(server: HubServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # quiet: the test asserts what matters
            pass

        def _headers(self, path: Path) -> tuple[int, int]:
            size = path.stat().st_size
            start = 0
            ranged = re.match(r"bytes=(\d+)-$", self.headers.get("Range", ""))
            if ranged and self.command == "GET":
                start = min(int(ranged[1]), size)
                self.send_response(206)
                self.send_header("Content-Range", f"bytes {start}-{size - 1}/{size}")
            else:
                self.send_response(200)
            self.send_header("X-Repo-Commit", COMMIT)
            self.send_header("ETag", f'"{etag_of(path)}"')
            self.send_header("Content-Length", str(size - start))
            self.send_header("Content-Type", "application/octet-stream")
            self.end_headers()
            return start, size

        def _find(self) -> Path | None:
            server.requests.append(f"{self.command} {unquote(self.path)}")
            path = server.file_for(self.path)
            if path is None:
                self.send_response(404)
                self.send_header("X-Error-Code", "EntryNotFound")
                self.send_header("Content-Length", "0")
                self.end_headers()
            return path

        def do_HEAD(self) -> None:
            path = self._find()
            if path is not None:
                self._headers(path)

        def do_GET(self) -> None:
            path = self._find()
            if path is None:
                return
            start, size = self._headers(path)
            with open(path, "rb") as fh:
                fh.seek(start)
                while block := fh.read(server.chunk):
                    try:
                        self.wfile.write(block)
                        self.wfile.flush()
                    except (BrokenPipeError, ConnectionResetError):
                        return
                    if server.pause:
                        time.sleep(server.pause)

    return Handler


@contextmanager
def hub_server(repos: dict[str, Path], *, chunk: int = 256 * 1024, pause: float = 0.0) -> Iterator[HubServer]:
    """Run a HubServer on a free port until the block ends."""
    state = HubServer(repos, chunk, pause)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, name="hub-server")
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(10)


@pytest.fixture
def hub_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty Hugging Face cache for this test, in this process and in the workers it spawns."""
    cache = tmp_path / "hf-cache"
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    return cache
