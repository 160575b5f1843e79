"""OSC receivers for tests: liblo's oscdump (the independent peer) and voicevibe.testing.peer.OscPeer."""

from __future__ import annotations

import queue
import socket
import subprocess
import threading
from collections.abc import Iterator

import pytest
from pythonosc.osc_message_builder import OscMessageBuilder


def free_port() -> int:
    """A UDP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def oscdump() -> Iterator[tuple[int, queue.Queue]]:
    """liblo's oscdump on a free port; its output lines arrive on the queue."""
    port = free_port()
    proc = subprocess.Popen(["oscdump", "-L", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    lines: queue.Queue = queue.Queue()
    reader = threading.Thread(target=lambda: [lines.put(line.decode("utf-8").rstrip("\n")) for line in proc.stdout])
    reader.start()
    yield port, lines
    proc.terminate()
    proc.wait(timeout=10)
    reader.join(timeout=10)


def dump_lines(port: int, lines: queue.Queue, send) -> list[str]:
    """Wait until oscdump answers a probe, run `send`, then collect everything up to an end marker."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        seen = ""
        for _ in range(100):  # oscdump needs a moment to bind
            probe.sendto(OscMessageBuilder("/probe").build().dgram, ("127.0.0.1", port))
            try:
                seen = lines.get(timeout=0.1)
                break
            except queue.Empty:
                continue
        assert "/probe" in seen
        send()
        probe.sendto(OscMessageBuilder("/end").build().dgram, ("127.0.0.1", port))
        out = []
        while (address := (line := lines.get(timeout=10)).split(" ")[1]) != "/end":
            if address != "/probe":
                out.append(line)
    return out
