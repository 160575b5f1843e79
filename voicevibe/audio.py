"""Audio input: a microphone (sounddevice) or a file (soundfile), as 24 kHz mono blocks.

Both sources yield float32 blocks of `BLOCK` samples (80 ms at 24 kHz), the last one
zero-padded, so the engine has a single consumer path. The microphone callback only
enqueues (STYLE point 4); resampling and re-blocking happen on the consumer's thread.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Protocol

import numpy as np
import soundfile as sf
import soxr

from voicevibe.config import BLOCK, SAMPLE_RATE, Config

log = logging.getLogger(__name__)

BLOCK_SECONDS = BLOCK / SAMPLE_RATE  # 0.08 s
FILE_CHUNK_FRAMES = 65_536  # ~1.4 s at 48 kHz per read: memory stays bounded for a 3-hour file
RESAMPLE_QUALITY = "HQ"  # soxr 'HQ': 20-bit precision, far below the model's noise floor
NO_AUDIO_SECONDS = 2.0  # a running stream this long without a callback is dead (unplugged?)
POLL_SECONDS = 0.1  # consumer wake-up period, so stop() and the no-audio check stay prompt
FIX_INPUT = "pass --input with an index or a name part"


class AudioError(RuntimeError):
    """An audio device or file cannot be used; the message names it and says what to do."""


@dataclass(frozen=True)
class InputDevice:
    """One PortAudio device that can record."""

    index: int  # PortAudio's number: it changes when a device comes or goes (AirPods, an iPhone, a virtual device)
    name: str
    channels: int
    default_samplerate: float
    is_default: bool
    hostapi: str = ""  # Core Audio, ALSA, JACK...

    def label(self) -> str:
        """Short human form, e.g. `3 'USB Audio'`."""
        return f"{self.index} '{self.name}'"

    @property
    def key(self) -> str:
        """What names this device across unplugging and renumbering: `name, host API` (sounddevice's form);
        `resolve_device` matches it exactly."""
        return f"{self.name}, {self.hostapi}" if self.hostapi else self.name


def _sounddevice() -> ModuleType:
    """Import sounddevice, turning a missing PortAudio into an AudioError with the fix."""
    try:
        import sounddevice
    except OSError as e:  # sounddevice raises OSError when the PortAudio library is absent
        raise AudioError(f"PortAudio library not found ({e}) — install it "
                         "(Debian/Ubuntu: apt install libportaudio2; macOS: brew install portaudio)") from e
    except ImportError as e:
        raise AudioError(f"the sounddevice package is missing ({e}) — pip install sounddevice") from e
    return sounddevice


def rescan_devices() -> None:
    """Make PortAudio enumerate devices again (it caches the list); never with a stream open.

    sounddevice has no public call for this: `_terminate`/`_initialize` are private, so this is
    the one place that calls them, for sounddevice 0.5.0 (pinned; tests/test_audio.py checks it).
    """
    sd = _sounddevice()
    sd._terminate()
    sd._initialize()


def list_input_devices() -> list[InputDevice]:
    """Every device with at least one input channel; empty when PortAudio sees none."""
    sd = _sounddevice()
    try:
        devices = sd.query_devices()
        apis = [str(api["name"]) for api in sd.query_hostapis()]
    except sd.PortAudioError as e:
        raise AudioError(f"cannot list audio devices: {e} — check the audio system is running") from e
    default = _default_input_index(sd)
    return [
        InputDevice(index=int(d["index"]), name=str(d["name"]), channels=int(d["max_input_channels"]),
                    default_samplerate=float(d["default_samplerate"]), is_default=d["index"] == default,
                    hostapi=apis[d["hostapi"]] if 0 <= d["hostapi"] < len(apis) else "")
        for d in devices if d["max_input_channels"] > 0
    ]


def _default_input_index(sd: ModuleType) -> int | None:
    """PortAudio's default input device, or None when it has none."""
    try:
        return int(sd.query_devices(kind="input")["index"])
    except (sd.PortAudioError, ValueError, KeyError, TypeError):
        return None


def describe_inputs(devices: Sequence[InputDevice]) -> str:
    """`0 'pulse', 3 'USB Audio'` for error messages."""
    return ", ".join(d.label() for d in devices) or "none"


def resolve_device(spec: str | int | None) -> InputDevice:
    """Pick an input: '' or None = default, digits = index, `name, host API` (a device's `key`, as the window
    saves it) = exactly that device, else a case-insensitive name part. Never another device in its place."""
    devices = list_input_devices()
    if not devices:
        raise AudioError("no audio inputs found (PortAudio lists no input device) — plug in a microphone "
                         "or audio interface, or pass an audio file path as --input to rehearse")
    text = "" if spec is None else str(spec).strip()
    if not text:
        for d in devices:
            if d.is_default:
                return d
        log.info("no default input device; using the first input, %s", devices[0].label())
        return devices[0]
    if text.isdigit():
        for d in devices:
            if d.index == int(text):
                return d
        raise AudioError(f"no input device with index {text}; available inputs: "
                         f"{describe_inputs(devices)} — {FIX_INPUT}")
    wanted = text.casefold()
    keyed = [d for d in devices if d.hostapi and d.key.casefold() == wanted]
    if len(keyed) > 1:
        raise AudioError(f"{len(keyed)} inputs are called {text!r} ({describe_inputs(keyed)}) — pick one by its "
                         "index (--input N; indices change when devices come and go)")
    if keyed or is_device_key(text):
        if not keyed:
            raise AudioError(f"microphone {text!r} is not connected; available inputs: {describe_inputs(devices)} — "
                             "plug it in (it is opened when it appears), or pick another input")
        return keyed[0]
    matches = [d for d in devices if wanted in d.name.casefold()]
    exact = [d for d in matches if d.name.casefold() == wanted]
    if len(matches) == 1 or len(exact) == 1:
        return (exact or matches)[0]
    if not matches:
        raise AudioError(f"microphone {text!r} not found; available inputs: "
                         f"{describe_inputs(devices)} — {FIX_INPUT}")
    raise AudioError(f"microphone {text!r} is ambiguous: it matches {describe_inputs(matches)} — "
                     f"{FIX_INPUT} that matches only one")


def is_device_key(spec: str) -> bool:
    """True for `name, host API` with a host API PortAudio has (Core Audio, ALSA...): one device, matched exactly."""
    name, comma, api = spec.rpartition(", ")
    if not (comma and name):
        return False
    sd = _sounddevice()
    return api.casefold() in {str(a["name"]).casefold() for a in sd.query_hostapis()}


class Reblocker:
    """Cuts a stream of arbitrary-length chunks into fixed-size blocks, keeping the remainder."""

    def __init__(self, size: int = BLOCK) -> None:
        if size < 1:
            raise ValueError(f"block size must be >= 1, got {size}")
        self.size = size
        self._rest: np.ndarray = np.zeros(0, dtype=np.float32)

    @property
    def pending(self) -> int:
        """Samples waiting for a full block."""
        return len(self._rest)

    def push(self, chunk: np.ndarray) -> list[np.ndarray]:
        """Add samples; return the blocks completed by them (possibly none)."""
        data = np.concatenate([self._rest, np.asarray(chunk, dtype=np.float32).reshape(-1)])
        whole = len(data) - len(data) % self.size
        self._rest = data[whole:].copy()
        return [data[i:i + self.size] for i in range(0, whole, self.size)]

    def flush(self) -> np.ndarray | None:
        """The remainder zero-padded to a full block, or None when nothing is pending."""
        if not len(self._rest):
            return None
        block = np.zeros(self.size, dtype=np.float32)
        block[:len(self._rest)] = self._rest
        self._rest = np.zeros(0, dtype=np.float32)
        return block


class _BlockConverter:
    """Any-rate mono chunks in, 24 kHz BLOCK-sample blocks out (soxr stream + Reblocker)."""

    def __init__(self, in_rate: float) -> None:
        self._resampler = None if in_rate == SAMPLE_RATE else soxr.ResampleStream(
            in_rate, SAMPLE_RATE, 1, dtype="float32", quality=RESAMPLE_QUALITY)
        self._reblocker = Reblocker(BLOCK)

    def push(self, chunk: np.ndarray) -> list[np.ndarray]:
        """Convert one chunk; return the blocks it completes."""
        chunk = np.ascontiguousarray(chunk, dtype=np.float32)
        if self._resampler is not None:
            chunk = self._resampler.resample_chunk(chunk)
        return self._reblocker.push(chunk)

    def finish(self) -> list[np.ndarray]:
        """Flush the resampler and return the last blocks, the final one zero-padded."""
        blocks = []
        if self._resampler is not None:
            blocks = self._reblocker.push(self._resampler.resample_chunk(np.zeros(0, np.float32), last=True))
        tail = self._reblocker.flush()
        return blocks if tail is None else [*blocks, tail]


def _to_mono(frames: np.ndarray) -> np.ndarray:
    """Average the channels of a (frames, channels) array."""
    return frames[:, 0] if frames.shape[1] == 1 else frames.mean(axis=1, dtype=np.float32)


def _libsndfile_detail(e: sf.LibsndfileError) -> str:
    return e.error_string or f"libsndfile error {e.code}"


class FileSource:
    """An audio file (wav/flac/ogg/mp3...) streamed as 24 kHz mono blocks, for rehearsal and tests."""

    def __init__(self, path: str | Path, *, realtime: bool = True, max_lag_seconds: float | None = None) -> None:
        self.path = Path(path)
        self.realtime = realtime
        # Like a microphone's bounded queue: paced blocks the consumer is this late for are dropped.
        self.max_lag_seconds = max_lag_seconds
        self.dropped_blocks = 0
        self._stop = threading.Event()
        self.frames, self._rate, self.channels = self._validate()

    @property
    def sample_rate(self) -> int:
        """The file's own sample rate."""
        return self._rate

    @property
    def duration_seconds(self) -> float:
        """Length of the file's audio."""
        return self.frames / self._rate

    def _error(self, problem: str) -> AudioError:
        return AudioError(f"{self.path}: {problem}")

    def _open(self) -> sf.SoundFile:
        try:
            return sf.SoundFile(self.path)
        except sf.LibsndfileError as e:
            raise self._error(f"not an audio file (or corrupt): {_libsndfile_detail(e)} — "
                              "use a wav, flac, ogg or mp3 file") from e
        except OSError as e:
            raise self._error(f"cannot open: {e.strerror} — check the file's permissions") from e

    def _validate(self) -> tuple[int, int, int]:
        """Open the file and decode its head and tail, so a bad file fails now, not mid-show."""
        if not self.path.exists():
            raise self._error("file not found — check the path")
        if self.path.is_dir():
            raise self._error("is a folder, not an audio file — give the path of a wav, flac, ogg or mp3")
        if self.path.stat().st_size == 0:
            raise self._error("empty file (0 bytes) — re-export or copy the audio again")
        with self._open() as f:
            frames, rate, channels = f.frames, f.samplerate, f.channels
            if frames <= 0:
                raise self._error("contains no audio (0 samples) — re-export the audio")
            if rate <= 0 or channels <= 0:
                raise self._error(f"bad header ({rate} Hz, {channels} channels) — re-export the audio")
            head_wanted = min(frames, FILE_CHUNK_FRAMES)
            tail_start = max(head_wanted, frames - FILE_CHUNK_FRAMES)
            try:
                head = len(f.read(head_wanted, dtype="float32", always_2d=True))
                tail = 0
                if tail_start < frames:
                    f.seek(tail_start)
                    tail = len(f.read(frames - tail_start, dtype="float32", always_2d=True))
            except sf.LibsndfileError as e:
                raise self._error(f"corrupt or truncated audio: {_libsndfile_detail(e)} — "
                                  "re-export or copy the file again") from e
            # Seeking in ogg/mp3 is not sample-exact (libsndfile can come up a few hundred samples
            # short), so the tail only has to be mostly there; a truncated file gives little or none.
            if head < head_wanted or tail < (frames - tail_start) // 2:
                raise self._error(f"truncated or corrupt: the header announces {frames} samples but "
                                  "decoding stops early — re-export or copy the file again")
        log.debug("%s: %d samples at %d Hz, %d channel(s)", self.path, frames, rate, channels)
        return frames, rate, channels

    def _chunks(self) -> Iterator[np.ndarray]:
        """The file's audio as mono float32 chunks of at most FILE_CHUNK_FRAMES."""
        with self._open() as f:
            while True:
                try:
                    data = f.read(FILE_CHUNK_FRAMES, dtype="float32", always_2d=True)
                except sf.LibsndfileError as e:
                    raise self._error(f"decoding failed mid-file: {_libsndfile_detail(e)} — "
                                      "the file is corrupt; re-export it") from e
                if not len(data):
                    return
                yield _to_mono(data)

    def _converted(self) -> Iterator[np.ndarray]:
        """24 kHz mono BLOCK-sample blocks, last one zero-padded, unpaced."""
        converter = _BlockConverter(self._rate)
        for chunk in self._chunks():
            yield from converter.push(chunk)
        yield from converter.finish()

    def blocks(self) -> Iterator[np.ndarray]:
        """Yield the blocks, at real time (each once its 80 ms have elapsed) or as fast as consumed."""
        start = time.monotonic()
        for index, block in enumerate(self._converted()):
            if self.realtime:
                # Schedule by block index against one start time: sleeping 80 ms per block would drift.
                due = start + (index + 1) * BLOCK_SECONDS
                delay = due - time.monotonic()
                if delay > 0 and self._stop.wait(delay):
                    return
                if self.max_lag_seconds is not None and -delay > self.max_lag_seconds:
                    self.dropped_blocks += 1  # the consumer fell behind real time: keep the lag bounded
                    continue
            if self._stop.is_set():
                return
            yield block

    def stop(self) -> None:
        """End blocks() early, for good (callable from any thread)."""
        self._stop.set()

    def __enter__(self) -> FileSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class MicSource:
    """A live input device as 24 kHz mono blocks; the PortAudio callback only enqueues."""

    def __init__(self, device: str | int | None = None, *, channel: int = 1,
                 queue_seconds: float = 2.0) -> None:
        self.device = resolve_device(device)
        if not 1 <= channel <= self.device.channels:
            raise AudioError(f"microphone {self.device.label()} has {self.device.channels} input "
                             f"channel(s); channel {channel} does not exist — pass --channel "
                             f"1..{self.device.channels}")
        self.channel = channel
        self._column = channel - 1
        self._stream_channels = channel  # enough to include the chosen one
        self.device_rate = self._pick_rate()
        self.blocksize = round(self.device_rate * BLOCK_SECONDS)
        # Whole callback blocks: queue_seconds of audio, at least one block.
        self._queue: queue.Queue[np.ndarray] = queue.Queue(maxsize=max(1, math.ceil(queue_seconds / BLOCK_SECONDS)))
        self.dropped_blocks = 0
        self.status_events = 0
        self._stream: Any = None
        self._started = False
        self._stopped = threading.Event()

    def _pick_rate(self) -> float:
        """24 kHz when the device takes it (no resampling), else the device's default rate."""
        sd = _sounddevice()
        for rate in (SAMPLE_RATE, self.device.default_samplerate):
            try:
                sd.check_input_settings(device=self.device.index, channels=self._stream_channels,
                                        dtype="float32", samplerate=rate)
                return float(rate)
            except (sd.PortAudioError, ValueError) as e:
                log.debug("%s refuses %s Hz: %s", self.device.label(), rate, e)
        raise AudioError(f"microphone {self.device.label()} accepts neither {SAMPLE_RATE} Hz nor its default "
                         f"{self.device.default_samplerate:g} Hz with {self._stream_channels} channel(s) — "
                         "check its settings (Audio MIDI Setup / pavucontrol) or pick another input")

    def _callback(self, indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        # Runs on PortAudio's thread: enqueue only. No DSP, no locks, no logging.
        if status:
            self.status_events += 1
        try:
            self._queue.put_nowait(indata[:, self._column].copy())
        except queue.Full:
            self.dropped_blocks += 1

    def start(self) -> None:
        """Open and start the input stream."""
        if self._stream is not None:
            return
        sd = _sounddevice()
        self._stopped.clear()
        self._started = False
        try:
            stream = sd.InputStream(device=self.device.index, samplerate=self.device_rate,
                                    blocksize=self.blocksize, channels=self._stream_channels,
                                    dtype="float32", callback=self._callback)
            stream.start()
        except sd.PortAudioError as e:
            raise AudioError(f"cannot open microphone {self.device.label()}: {e} — is another app using "
                             "it exclusively? Pick another with --input") from e
        self._stream = stream
        self._started = True
        log.info("recording from %s at %g Hz, channel %d", self.device.label(), self.device_rate, self.channel)

    def blocks(self) -> Iterator[np.ndarray]:
        """Yield 24 kHz blocks until stop() (then what was captured, padded); AudioError if audio stops."""
        if not self._started:
            raise AudioError(f"microphone {self.device.label()} is not started — use `with MicSource(...)`")
        converter = _BlockConverter(self.device_rate)
        last_audio = time.monotonic()
        while not self._stopped.is_set():
            try:
                chunk = self._queue.get(timeout=POLL_SECONDS)
            except queue.Empty:
                silent = time.monotonic() - last_audio
                if not self._stopped.is_set() and silent > NO_AUDIO_SECONDS:
                    raise AudioError(f"no audio from {self.device.label()} for {NO_AUDIO_SECONDS:g} s — "
                                     "unplugged? Check the cable, or pick another input") from None
                continue
            last_audio = time.monotonic()
            yield from converter.push(chunk)
        while not self._queue.empty():  # only the consumer takes from the queue: get_nowait succeeds
            yield from converter.push(self._queue.get_nowait())
        yield from converter.finish()

    def stop(self) -> None:
        """Close the stream (idempotent); blocks() then ends."""
        self._stopped.set()
        stream, self._stream = self._stream, None
        if stream is not None:
            sd = _sounddevice()
            try:
                stream.close()
            except sd.PortAudioError as e:
                log.warning("closing %s: %s", self.device.label(), e)
            if self.dropped_blocks or self.status_events:
                log.info("%s: %d block(s) dropped, %d status event(s)", self.device.label(),
                         self.dropped_blocks, self.status_events)

    def __enter__(self) -> MicSource:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Source(Protocol):
    """An input the audio feed reads: a FileSource, a MicSource, or a test's stand-in."""

    dropped_blocks: int

    def __enter__(self) -> Source: ...

    def __exit__(self, *exc: object) -> None: ...

    def blocks(self) -> Iterator[np.ndarray]:
        """24 kHz BLOCK-sample float32 blocks until the input ends or stop() is called."""

    def stop(self) -> None:
        """End blocks() from another thread."""


def open_source(spec: str, config: Config) -> FileSource | MicSource:
    """An existing path is a rehearsal file; anything else names a microphone."""
    if spec and Path(spec).expanduser().is_file():
        return FileSource(Path(spec).expanduser(), realtime=config.audio.realtime,
                          max_lag_seconds=config.audio.queue_seconds)
    return MicSource(spec or None, channel=config.audio.channel, queue_seconds=config.audio.queue_seconds)


def describe(source: object) -> str:
    """A short name of the input for status lines."""
    if isinstance(source, MicSource):
        return f"microphone {source.device.index} '{source.device.name}' at {source.device_rate:g} Hz"
    if isinstance(source, FileSource):
        return f"file {source.path} ({source.duration_seconds:.1f} s)"
    return str(getattr(source, "name", type(source).__name__))
