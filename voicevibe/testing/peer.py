"""A local OSC receiver standing in for the render PC, for tests and benchmarks.

(The independent peer in the tests is liblo's `oscdump`; this one decodes with python-osc, stamps
arrivals, and can just count for a three-hour soak.)
"""

from __future__ import annotations

import socket
import threading
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from pythonosc.osc_packet import OscPacket, ParseError


@dataclass(frozen=True)
class Received:
    """One OSC message as it arrived."""

    address: str
    params: list[Any]
    at: float  # time.monotonic() of the datagram's arrival


class OscPeer:
    """Receives OSC on 127.0.0.1:<port> in a thread; `messages` keeps every decoded message (bundles split),
    `counts` the messages per address. `keep=False` counts only (bounded memory for long runs)."""

    def __init__(self, *, keep: bool = True) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.port: int = self.sock.getsockname()[1]
        self.keep = keep
        self.messages: list[Received] = []
        self.datagrams: list[tuple[float, bytes]] = []
        self.counts: Counter[str] = Counter()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._receive, name="osc-peer")

    def start(self) -> OscPeer:
        """Start receiving."""
        self._thread.start()
        return self

    def close(self) -> None:
        """Stop receiving and close the socket."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(2)
        self.sock.close()

    def __enter__(self) -> OscPeer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _receive(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            at = time.monotonic()
            try:
                messages = [m.message for m in OscPacket(data).messages]
            except ParseError:
                messages = []
            for m in messages:
                self.counts[m.address] += 1
            if self.keep:
                self.datagrams.append((at, data))
                self.messages += [Received(m.address, list(m.params), at) for m in messages]

    def on(self, address: str) -> list[Received]:
        """The messages received so far on one address."""
        return [m for m in self.messages if m.address == address]

    def wait_for(self, address: str, count: int, timeout: float = 10.0) -> list[Received]:
        """The first `count` messages on `address` (fewer if they do not arrive in time)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.on(address)
            if len(found) >= count:
                return found[:count]
            time.sleep(0.02)
        return self.on(address)
