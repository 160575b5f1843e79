"""sounddevice's view of the machine, faked at its seams (query_devices, query_hostapis, the rescan, InputStream):
devices come and go and are renumbered, as macOS does when AirPods, an iPhone or a virtual device appear."""

from __future__ import annotations

import threading
import time
from typing import Any

import numpy as np
import pytest
import sounddevice as sd

Layout = tuple[list[dict[str, Any]], int | None]  # the devices PortAudio lists, and the default input's index


def fake_device(index: int, name: str, inputs: int, rate: float = 48000.0, hostapi: int = 0) -> dict[str, Any]:
    """One entry of sounddevice's device list."""
    return {"index": index, "name": name, "max_input_channels": inputs, "max_output_channels": 2,
            "default_samplerate": rate, "hostapi": hostapi}


def layout(*names: str, default: str | None = None) -> Layout:
    """Devices numbered in the order given; a name ending in '>' is an output only (e.g. speakers)."""
    devices = [fake_device(i, name.rstrip(">"), 0 if name.endswith(">") else 1) for i, name in enumerate(names)]
    index = next((d["index"] for d in devices if d["name"] == default), None)
    return devices, index


def install_devices(monkeypatch: pytest.MonkeyPatch, devices: list[dict[str, Any]], default: int | None,
                    apis: tuple[str, ...] = ("ALSA",)) -> None:
    """Make sounddevice report `devices` (host API 0 is `apis[0]`...), with `default` as the default input."""
    def query_devices(device: Any = None, kind: str | None = None) -> Any:
        if kind == "input":
            if default is None:
                raise sd.PortAudioError("Error querying device -1")
            return devices[default]
        if device is not None:
            return devices[device]
        return sd.DeviceList(devices)

    monkeypatch.setattr(sd, "query_devices", query_devices)
    monkeypatch.setattr(sd, "query_hostapis", lambda: tuple({"name": name, "devices": []} for name in apis))


class FakeAudioSystem:
    """A Mac's inputs under Core Audio as PortAudio sees them: the list changes only at a rescan (PortAudio
    caches it), to the next of `rescans`. Each stream delivers noise at real time until `unplug()`."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, first: Layout, *rescans: Layout) -> None:
        self.monkeypatch = monkeypatch
        self.rescans = list(rescans)
        self.opened: list[str] = []  # the name of the device each stream was opened on
        self.streams: list[_Stream] = []
        self._show(first)
        monkeypatch.setattr(sd, "_terminate", lambda: None)
        monkeypatch.setattr(sd, "_initialize", self._rescan)
        monkeypatch.setattr(sd, "check_input_settings", lambda **kwargs: None)
        monkeypatch.setattr(sd, "InputStream", self._open)

    def _show(self, shown: Layout) -> None:
        self.devices, default = shown
        install_devices(self.monkeypatch, self.devices, default, apis=("Core Audio",))

    def _rescan(self) -> None:
        if self.rescans:
            self._show(self.rescans.pop(0))

    def _open(self, *, device: int, samplerate: float, blocksize: int, channels: int, dtype: str,
              callback: Any) -> _Stream:
        self.opened.append(self.devices[device]["name"])
        stream = _Stream(blocksize, samplerate, channels, callback)
        self.streams.append(stream)
        return stream

    def unplug(self) -> None:
        """Every open stream stops delivering audio (the device was pulled out)."""
        for stream in self.streams:
            stream.unplugged.set()


class _Stream:
    def __init__(self, blocksize: int, samplerate: float, channels: int, callback: Any) -> None:
        self.blocksize, self.seconds, self.channels = blocksize, blocksize / samplerate, channels
        self.callback = callback
        self.closed, self.unplugged = threading.Event(), threading.Event()
        self.thread = threading.Thread(target=self._run, name="fake-portaudio")

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        rng = np.random.default_rng(0)
        while not (self.closed.is_set() or self.unplugged.is_set()):
            self.callback((0.3 * rng.standard_normal((self.blocksize, self.channels))).astype(np.float32),
                          self.blocksize, None, None)
            time.sleep(self.seconds)

    def close(self) -> None:
        self.closed.set()
        if self.thread.is_alive() and self.thread is not threading.current_thread():
            self.thread.join(timeout=5)
