"""Session log: one JSONL file per run, the input audio beside it (FLAC), replay and latency stats.

Every line is one JSON object: `{"type": ..., fields..., "mono": time.monotonic(), "wall": ISO 8601
UTC}`. The first line is `session_start` (with the effective config), the last `session_end`.
A log must never stop a show: `SessionLog.open` does not raise for an unwritable folder (it
returns a log that writes nothing), and a failed write (disk full...) stops logging with one error
`Status` to the `report` callback; after that, writes are dropped and counted. The recording has
its own writer thread and fails the same way, on its own. Per-stage latency lives in `latency`.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import logging
import math
import os
import queue
import re
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, Any

import numpy as np
import platformdirs
import soundfile as sf

from voicevibe import __version__
from voicevibe.config import APP_NAME, BLOCK, SAMPLE_RATE, Config, SessionConfig
from voicevibe.events import ImagePrompt, Status, to_json_dict
from voicevibe.runtime.latency import STAGES, LatencyStats, StageStats  # noqa: F401 - part of this module's API

log = logging.getLogger(__name__)

Report = Callable[[Status], None]

AUDIO_QUEUE_BLOCKS = 250  # 20 s of 80 ms blocks: how long the disk may stall before blocks are dropped
JOIN_SECONDS = 10.0  # closing waits this long for the writers to drain their queues
LINE_QUEUE_SIZE = 20_000  # log lines the writer may be behind (a stalled disk) before lines are dropped
REPLAYED_TYPES = ("image_prompt", "manual_prompt", "cue")  # the lines `replay` re-sends (their "text")
UNKNOWN_FRAMES = 2**62  # libsndfile's frame count for a FLAC whose writer was killed before closing


class SessionLogError(ValueError):
    """A session log cannot be read or replayed: missing, not a VoiceVibe log, or corrupt."""


def default_log_dir() -> Path:
    """The platform's user log folder for VoiceVibe."""
    return Path(platformdirs.user_log_dir(APP_NAME))


def log_stem(name: str = "", now: datetime | None = None) -> str:
    """`voicevibe-YYYYmmdd-HHMMSS[-name]` in local time; the name is reduced to letters, digits, - and _."""
    stamp = (now or datetime.now()).strftime("%Y%m%d-%H%M%S")
    clean = re.sub(r"[^\w-]+", "-", name, flags=re.ASCII).strip("-")[:60]
    return f"{APP_NAME}-{stamp}" + (f"-{clean}" if clean else "")


def _create_log_file(folder: Path, stem: str) -> tuple[Path, IO[bytes]]:
    """Create a new, unbuffered log file (a suffix -2, -3... if two runs start in the same second)."""
    for n in range(1, 100):
        path = folder / (f"{stem}.jsonl" if n == 1 else f"{stem}-{n}.jsonl")
        try:
            return path, open(path, "xb", buffering=0)
        except FileExistsError:
            continue
    raise FileExistsError(errno.EEXIST, "99 logs with the same name", str(folder / stem))


def _open_audio(path: Path) -> sf.SoundFile:
    """The FLAC recording: 24 kHz mono 16-bit."""
    return sf.SoundFile(path, "w", samplerate=SAMPLE_RATE, channels=1, subtype="PCM_16", format="FLAC")


def _reason(e: BaseException) -> str:
    """A short human reason for an I/O failure."""
    if isinstance(e, OSError):
        return e.strerror or str(e)
    return str(e).strip() or type(e).__name__


def _hint(e: BaseException) -> str:
    """What the operator can do about an I/O failure."""
    code = getattr(e, "errno", None)
    if code in (errno.ENOSPC, errno.EDQUOT):
        return "free some disk space"
    if code in (errno.ENOTDIR, errno.EEXIST):
        return "session.log_dir must be a folder, not a file"
    if code in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "set session.log_dir to a writable folder"
    return "check the disk and session.log_dir"


def _json_default(value: object) -> object:
    """JSON for the few non-JSON values events carry (numpy scalars and arrays, paths)."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


def as_record(event: object) -> dict[str, Any]:
    """A log record for an event dataclass or a plain dict with a string "type"."""
    if isinstance(event, dict):
        if not isinstance(event.get("type"), str):
            raise TypeError(f"a session log record needs a string 'type': {event!r:.200}")
        return dict(event)
    if dataclasses.is_dataclass(event) and not isinstance(event, type):
        return to_json_dict(event)
    raise TypeError(f"cannot log {type(event).__name__}: give an event dataclass or a dict with a 'type'")


class SessionLog:
    """One run's JSONL log (and FLAC recording); thread-safe; never raises I/O errors to its callers.

    `write` stamps the line and queues it; a writer thread of its own puts it on disk (a few
    milliseconds later, each line flushed), so a slow disk never delays the show.
    """

    def __init__(self, path: Path | None, file: IO[bytes] | None, report: Report | None = None) -> None:
        """Use `SessionLog.open`; this wraps an already open file (or none: a log that writes nothing)."""
        self.path = path
        self.audio_path: Path | None = None
        self.lines_written = 0
        self.lines_dropped = 0
        self._file = file
        self._report = report
        self._lock = threading.Lock()
        self._closing = self._closed = False
        self._recorder: _Recorder | None = None  # None again once closed
        self._recorded: _Recorder | None = None  # kept for its counters
        self._lines: queue.Queue[bytes | None] = queue.Queue(LINE_QUEUE_SIZE)
        self._queued = 0  # lines queued and not yet written or dropped
        self._drained = threading.Condition(self._lock)
        # daemon: a forgotten close() must not hang the app's exit; close() drains and joins it.
        self._writer = threading.Thread(target=self._write_lines, name="session-log", daemon=True)
        if file is not None:
            self._writer.start()

    @classmethod
    def open(cls, config: SessionConfig, *, record_audio: bool, name: str = "", report: Report | None = None,
             app_config: Config | None = None) -> SessionLog:
        """Start a session log in `config.log_dir` (or the user log dir), plus a FLAC recording if asked.

        Never raises for I/O problems: an unwritable folder gives a log that writes nothing
        (`path` None) and one error Status to `report`. `report` may be called from the audio
        writer's thread and must not block. `app_config` (the effective config) goes into the first line.
        """
        folder = Path(config.log_dir).expanduser() if config.log_dir else default_log_dir()
        try:
            folder.mkdir(parents=True, exist_ok=True)
            path, file = _create_log_file(folder, log_stem(name))
        except OSError as e:
            session = cls(None, None, report)
            session._failed(f"cannot create a log file in {folder}", e)
            return session
        session = cls(path, file, report)
        if record_audio:
            session._start_recording(path.with_suffix(".flac"))
        session.write({"type": "session_start", "version": __version__, "name": name, "log": path.name,
                       "audio": session.audio_path.name if session.audio_path else None,
                       "sample_rate": SAMPLE_RATE, "pid": os.getpid(),
                       "config": dataclasses.asdict(app_config) if app_config else
                       {"session": dataclasses.asdict(config)}})
        log.info("session log: %s%s", path, f" (recording {session.audio_path.name})" if session.audio_path else "")
        return session

    @property
    def active(self) -> bool:
        """True while lines are still being written."""
        return self._file is not None

    @property
    def blocks_recorded(self) -> int:
        """Audio blocks written to the FLAC file so far."""
        return self._recorded.blocks if self._recorded else 0

    @property
    def blocks_dropped(self) -> int:
        """Audio blocks lost: the writer queue was full, or recording stopped on an error."""
        return self._recorded.dropped if self._recorded else 0

    def _start_recording(self, audio_path: Path) -> None:
        try:
            self._recorder = self._recorded = _Recorder(audio_path, self._notify)
        except (OSError, sf.SoundFileError) as e:
            reason = f"{_reason(e)} ({audio_path}) — {_hint(e)}"
            log.error("audio recording off: %s", reason)
            self._notify(Status("session", f"audio recording off: {reason}; the show goes on", "error"))
            return
        self.audio_path = audio_path

    def _notify(self, status: Status) -> None:
        if self._report is not None:
            self._report(status)

    def _failed(self, where: str, e: BaseException) -> None:
        """Report (once per failure) that logging stopped; the caller already dropped the file."""
        reason = f"{_reason(e)} ({where}) — {_hint(e)}"
        log.error("session log stopped: %s", reason)
        self._notify(Status("session", f"logging stopped: {reason}; the show goes on", "error"))

    def write(self, event: object, **extra: object) -> None:
        """Queue one line: an event dataclass or a dict with a "type", plus `extra` fields and the stamps."""
        record = as_record(event)
        record.update(extra)
        with self._lock:
            if self._file is None or self._closed:
                if not self._closed:
                    self.lines_dropped += 1
                return
            # Stamped and queued under one lock: the lines are in the order of their stamps.
            record["mono"] = time.monotonic()
            record["wall"] = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
            data = (json.dumps(record, ensure_ascii=False, default=_json_default) + "\n").encode("utf-8")
            try:
                self._lines.put_nowait(data)
                self._queued += 1
            except queue.Full:  # the disk stalls for many seconds: lose lines, never time
                self.lines_dropped += 1

    def flush(self, timeout: float | None = JOIN_SECONDS) -> bool:
        """Wait until every line queued so far is on disk (or dropped); False after `timeout`."""
        with self._lock:
            return self._drained.wait_for(lambda: self._queued == 0, timeout)

    def _write_lines(self) -> None:
        while (data := self._lines.get()) is not None:
            failure: OSError | None = None
            file = self._file
            try:
                if file is None:
                    raise _Dropped
                view = memoryview(data)
                while view:  # a regular file rarely writes short, but a short write must not lose the tail
                    view = view[file.write(view):]
                written = True
            except _Dropped:
                written = False
            except OSError as e:
                failure, written = e, False
            with self._lock:
                self._queued -= 1
                if written:
                    self.lines_written += 1
                else:
                    self.lines_dropped += 1
                if failure is not None:
                    self._drop_file()
                self._drained.notify_all()
            if failure is not None:
                self._failed(str(self.path), failure)

    def _drop_file(self) -> None:
        """Close the log file after a failure, ignoring the second failure closing may bring (lock held)."""
        file, self._file = self._file, None
        if file is None:
            return
        try:
            file.close()
        except OSError as e:
            log.debug("closing the failed log: %s", e)

    def record(self, block: np.ndarray) -> None:
        """Queue one block of input (float32 mono 24 kHz) for the FLAC file; never blocks, drops if full."""
        if self._recorder is not None:
            self._recorder.put(block)

    def close(self) -> None:
        """Finish the recording, write `session_end`, close the file (idempotent)."""
        with self._lock:
            if self._closing:
                return
            self._closing = True
            recorder, self._recorder = self._recorder, None
        if recorder is not None:
            recorder.close()
        self.flush()
        end = {"type": "session_end", "lines": self.lines_written + 1, "lines_dropped": self.lines_dropped}
        if recorder is not None:
            end.update(audio_blocks=recorder.blocks, audio_blocks_dropped=recorder.dropped,
                       audio_seconds=round(recorder.frames / SAMPLE_RATE, 3))
        self.write(end)
        with self._lock:
            self._closed = True
        if self._writer.is_alive():
            self._lines.put(None)
            self._writer.join(JOIN_SECONDS)
        with self._lock:
            if self._file is not None:
                self._drop_file()
        if self.lines_dropped:
            log.warning("session log: %d line(s) could not be written", self.lines_dropped)

    def __enter__(self) -> SessionLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class _Dropped(Exception):
    """The log file is gone (an earlier failure): the line is counted, not written."""


class _Recorder:
    """The FLAC writer thread behind a bounded queue: the audio path only ever does put_nowait."""

    def __init__(self, path: Path, report: Report) -> None:
        self.path = path
        self.blocks = self.frames = 0
        self._dropped_full = 0  # counted by the audio thread only
        self._dropped_failed = 0  # counted by the writer thread only
        self._report = report
        self._file: sf.SoundFile | None = _open_audio(path)
        self._queue: queue.Queue[np.ndarray | None] = queue.Queue(maxsize=AUDIO_QUEUE_BLOCKS)
        # daemon: a forgotten close() must not hang the app's exit; close() drains and joins it.
        self._thread = threading.Thread(target=self._run, name="session-audio", daemon=True)
        self._thread.start()

    @property
    def dropped(self) -> int:
        """Blocks lost to a full queue or to a failed file."""
        return self._dropped_full + self._dropped_failed

    def put(self, block: np.ndarray) -> None:
        """Queue a copy of the block (the caller may reuse its buffer), or count it dropped."""
        if self._file is None:
            self._dropped_full += 1
            return
        try:
            self._queue.put_nowait(np.array(block, dtype=np.float32, copy=True).reshape(-1))
        except queue.Full:
            self._dropped_full += 1

    def _run(self) -> None:
        warned = False
        while (block := self._queue.get()) is not None:
            if self._file is None:
                self._dropped_failed += 1
                continue
            try:
                self._file.write(block)
            except (OSError, sf.SoundFileError) as e:
                self._dropped_failed += 1
                self._stop(e)
                continue
            self.blocks += 1
            self.frames += len(block)
            if self.dropped and not warned:
                warned = True
                message = (f"audio recording fell behind: {self.dropped} block(s) of 80 ms dropped "
                           f"(slow disk?) ({self.path}); the show goes on")
                log.warning("%s", message)
                self._report(Status("session", message, "warning"))
        self._close_file()

    def _stop(self, e: BaseException) -> None:
        reason = f"{_reason(e)} ({self.path}) — {_hint(e)}"
        log.error("audio recording stopped: %s", reason)
        self._close_file()
        self._report(Status("session", f"audio recording stopped: {reason}; the show goes on", "error"))

    def _close_file(self) -> None:
        file, self._file = self._file, None
        if file is None:
            return
        try:
            file.close()
        except (OSError, sf.SoundFileError) as e:
            log.error("closing the recording %s: %s", self.path, _reason(e))

    def close(self) -> None:
        """Drain the queue, close the FLAC file and join the thread."""
        try:
            self._queue.put(None, timeout=JOIN_SECONDS)  # waits only if the writer is stalled with a full queue
        except queue.Full:
            log.error("audio recording: the writer is stuck (%s)", self.path)
        self._thread.join(JOIN_SECONDS)
        if self._thread.is_alive():
            log.error("audio recording: the writer did not finish within %.0f s (%s)", JOIN_SECONDS, self.path)


def recover_recording(path: str | Path) -> int:
    """Make a FLAC recording whose app was killed readable again (in place); returns its sample count.

    libsndfile writes the sample count at close; without it the file reads as endless and fails
    at its end. The decodable blocks are copied into a proper file (losing at most the last 80 ms).
    """
    path = Path(path)
    try:
        with sf.SoundFile(path) as f:
            if f.frames < UNKNOWN_FRAMES:
                return f.frames
            chunks = []
            try:
                while len(chunk := f.read(BLOCK, dtype="float32")):
                    chunks.append(chunk)
            except sf.LibsndfileError as e:
                log.debug("%s: decoding stopped at the cut: %s", path, e)
    except (OSError, sf.SoundFileError) as e:
        raise SessionLogError(f"{path}: cannot read the recording: {_reason(e)}") from e
    audio = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    fixed = path.with_name(path.name + ".part")
    sf.write(fixed, audio, SAMPLE_RATE, subtype="PCM_16", format="FLAC")
    os.replace(fixed, path)
    log.warning("%s: recovered %.1f s of a recording that was not closed", path, len(audio) / SAMPLE_RATE)
    return len(audio)


def read_log(path: str | Path) -> Iterator[dict[str, Any]]:
    """The records of a session log, in order; a truncated last line (a killed app) is skipped with a warning.

    Raises SessionLogError (naming the file) at once for a missing or empty file, and while
    iterating for a line that is not a VoiceVibe record.
    """
    path = Path(path)
    try:
        file = open(path, "rb")
    except OSError as e:
        raise SessionLogError(f"{path}: cannot open the session log: {_reason(e)} — check the path") from e
    if os.fstat(file.fileno()).st_size == 0:
        file.close()
        raise SessionLogError(f"{path}: empty file, not a VoiceVibe session log")
    return _records(path, file)


def _records(path: Path, file: IO[bytes]) -> Iterator[dict[str, Any]]:
    with file:
        for number, raw in enumerate(file, start=1):
            try:
                record = json.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as e:
                if not raw.endswith(b"\n") and number > 1:
                    log.warning("%s: line %d is cut short (the app was stopped mid-write): skipped", path, number)
                    return
                raise _not_a_log(path, number, str(e)) from e
            if not (isinstance(record, dict) and isinstance(record.get("type"), str)
                    and isinstance(record.get("mono"), (int, float))):
                raise _not_a_log(path, number, "a line without a 'type' and a 'mono' time")
            yield record


def _not_a_log(path: Path, number: int, problem: str) -> SessionLogError:
    what = "not a VoiceVibe session log" if number == 1 else f"corrupt session log at line {number}"
    return SessionLogError(f"{path}: {what} ({problem:.120}) — give a voicevibe-*.jsonl file")


def replay(path: str | Path, send_text: Callable[[str], object], *, speed: float = 1.0,
           sleep: Callable[[float], object] = time.sleep) -> int:
    """Re-send a log's image and manual prompts with their original gaps divided by `speed`; returns how many.

    The first prompt goes at once; each later one waits its gap to the previous one (send time
    itself is not subtracted: a UDP send is microseconds).
    """
    if not (math.isfinite(speed) and speed > 0):
        raise ValueError(f"replay speed must be a positive number, not {speed}")
    prompts = [(r["mono"], r["text"]) for r in read_log(path)
               if r["type"] in REPLAYED_TYPES and isinstance(r.get("text"), str) and r["text"].strip()
               and (r["type"] != "cue" or r.get("sent"))]  # a phrase cue's phrase is not a prompt
    if not prompts:
        raise SessionLogError(f"{path}: nothing to replay: the log has no image_prompt or manual_prompt lines")
    previous = prompts[0][0]
    for index, (mono, text) in enumerate(prompts):
        gap = (mono - previous) / speed
        previous = mono
        if index and gap > 0:
            sleep(gap)
        log.info("replay %d/%d: %s", index + 1, len(prompts), text)
        send_text(text)
    return len(prompts)


def latency_from_log(path: str | Path) -> LatencyStats:
    """Latency stats of a logged session: its image_prompt lines, with their "sent_at" field if logged."""
    stats = LatencyStats()
    names = {f.name for f in dataclasses.fields(ImagePrompt)}
    for record in read_log(path):
        if record["type"] == "image_prompt":
            try:
                prompt = ImagePrompt(**{k: v for k, v in record.items() if k in names})
            except TypeError as e:
                raise SessionLogError(f"{path}: an image_prompt line lacks fields: {e}") from e
            stats.add(prompt, record.get("sent_at"))
    return stats
