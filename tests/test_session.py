"""Session log, FLAC recording, read_log, replay and latency stats, with their fault cases."""

from __future__ import annotations

import errno
import json
import logging
import os
import signal
import subprocess
import sys
import threading
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from voicevibe.config import BLOCK, SAMPLE_RATE, Config, SessionConfig
from voicevibe.events import ImagePrompt, Levels, Phrase, Status, Summary, Word
from voicevibe.runtime import session
from voicevibe.runtime.latency import LatencyStats
from voicevibe.runtime.session import SessionLog, SessionLogError, read_log, recover_recording, replay

REAL_OPEN_AUDIO = session._open_audio


def open_log(folder: Path, reports: list | None = None, **kwargs) -> SessionLog:
    """A session log in `folder`, its reports appended to `reports`."""
    report = reports.append if reports is not None else None
    return SessionLog.open(SessionConfig(log_dir=str(folder)), record_audio=kwargs.pop("record_audio", False),
                           report=report, **kwargs)


def lines(path: Path) -> list[dict]:
    """The raw JSON lines of a file (no read_log)."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def prompt(text: str = "a red balloon", closed: float = 0.0, start: float = 0.0, end: float = 0.0) -> ImagePrompt:
    return ImagePrompt(text, "un ballon rouge", "film", "calm", "model",
                       phrase_closed_at=closed, brain_start=start, brain_end=end)


def tone(n_blocks: int, seed: int = 0) -> np.ndarray:
    """Reproducible noise in (-0.5, 0.5), n_blocks blocks long."""
    return (np.random.default_rng(seed).uniform(-0.5, 0.5, n_blocks * BLOCK)).astype(np.float32)


# --- the log file -------------------------------------------------------------------------------


def test_log_lines_are_stamped_json_with_the_config_first(tmp_path: Path) -> None:
    config = Config()
    with open_log(tmp_path, name="Première / show!", app_config=config) as log:
        log.write(Word(" été", 12, 3, 0.24))
        log.write(Phrase("il fait beau", 0.1, 1.2, "vad", closed_at=5.0))
        log.write(Status("osc", "target down", "warning"))
        log.write(Summary("a show about summer", "summer field, golden light", "fallback", reason="no model"))
        log.write(Levels(0.5, 0.1, 0.4, 0.1, 1.0, True, False))
        log.write({"type": "osc_send", "target": "127.0.0.1:9000", "bytes": np.int64(44)})
        log.write(prompt(), sent_at=7.5)
    assert log.path is not None and log.path.parent == tmp_path
    assert log.path.name.startswith("voicevibe-") and log.path.name.endswith("-Premi-re-show.jsonl")
    datetime.strptime(log.path.name[len("voicevibe-"):][:15], "%Y%m%d-%H%M%S")
    records = lines(log.path)
    assert [r["type"] for r in records] == ["session_start", "word", "phrase", "status", "summary", "levels",
                                            "osc_send", "image_prompt", "session_end"]
    start = records[0]
    assert start["config"]["osc"]["targets"] == config.osc.targets and start["audio"] is None
    assert records[1]["text"] == " été" and records[6]["bytes"] == 44 and records[7]["sent_at"] == 7.5
    assert records[-1]["lines"] == 9 and records[-1]["lines_dropped"] == 0
    monos = [r["mono"] for r in records]
    assert monos == sorted(monos)
    for r in records:
        wall = datetime.fromisoformat(r["wall"])
        assert wall.utcoffset().total_seconds() == 0
        assert abs((datetime.now(timezone.utc) - wall).total_seconds()) < 600
    assert "été" in log.path.read_text(encoding="utf-8")  # UTF-8, not \\u escapes


def test_default_folder_is_the_user_log_dir(user_state: Path) -> None:
    with SessionLog.open(SessionConfig(), record_audio=False) as log:
        pass
    assert log.path is not None and log.path.parent == session.default_log_dir()
    assert (user_state / "state") in log.path.parents  # conftest's XDG_STATE_HOME, never the real home


def test_two_logs_in_the_same_second_get_two_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(session, "log_stem", lambda name="": "voicevibe-20260101-200000")
    with open_log(tmp_path) as first, open_log(tmp_path) as second:
        first.write({"type": "control", "action": "gain", "value": 3.0})
    assert first.path.name == "voicevibe-20260101-200000.jsonl"
    assert second.path.name == "voicevibe-20260101-200000-2.jsonl"
    assert [r["type"] for r in lines(first.path)] == ["session_start", "control", "session_end"]


def test_write_rejects_what_is_not_an_event(tmp_path: Path) -> None:
    with open_log(tmp_path) as log:
        with pytest.raises(TypeError, match="'type'"):
            log.write({"text": "no type"})
        with pytest.raises(TypeError, match="str"):
            log.write("a string")


def test_threads_write_whole_lines_in_order(tmp_path: Path) -> None:
    with open_log(tmp_path) as log:
        def writer(n: int) -> None:
            for i in range(300):
                log.write({"type": "control", "thread": n, "i": i, "pad": "x" * (i % 50)})

        threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    records = list(read_log(log.path))
    assert len(records) == 4 * 300 + 2 and log.lines_written == len(records)
    for n in range(4):
        assert [r["i"] for r in records if r.get("thread") == n] == list(range(300))
    monos = [r["mono"] for r in records]
    assert monos == sorted(monos)


def test_each_line_is_on_disk_before_close(tmp_path: Path) -> None:
    log = open_log(tmp_path)
    log.write(prompt("first"))
    assert log.flush(10)  # the writer thread puts it there within milliseconds, not at close
    assert [r["type"] for r in read_log(log.path)] == ["session_start", "image_prompt"]
    log.close()
    log.close()  # idempotent
    log.write(prompt("after close"))  # ignored, no error
    assert [r["type"] for r in read_log(log.path)] == ["session_start", "image_prompt", "session_end"]


def test_short_writes_still_make_whole_lines(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class Trickle:
        """A file that accepts at most 7 bytes per write, as a slow or odd filesystem may."""

        def __init__(self, path: Path) -> None:
            self.inner = open(path, "xb", buffering=0)

        def write(self, data: memoryview) -> int:
            return self.inner.write(data[:7])

        def close(self) -> None:
            self.inner.close()

    monkeypatch.setattr(session, "_create_log_file", lambda folder, stem: (folder / "t.jsonl",
                                                                          Trickle(folder / "t.jsonl")))
    with open_log(tmp_path) as log:
        log.write(prompt("une forêt la nuit"))
    assert [r.get("text") for r in read_log(tmp_path / "t.jsonl")] == [None, "une forêt la nuit", None]


# --- faults: unwritable folder, disk full -------------------------------------------------------


def test_log_dir_under_a_file_degrades_to_a_silent_log(tmp_path: Path) -> None:
    (tmp_path / "not-a-folder").write_text("x")
    for log_dir in (tmp_path / "not-a-folder" / "logs", tmp_path / "not-a-folder"):
        reports: list[Status] = []
        log = open_log(log_dir, reports, record_audio=True)
        log.write(prompt())
        log.record(tone(1))
        log.close()
        assert log.path is None and log.audio_path is None and not log.active
        assert len(reports) == 1
        status = reports[0]
        assert status.stage == "session" and status.level == "error"
        assert status.message.startswith("logging stopped: ") and status.message.endswith("; the show goes on")
        assert str(tmp_path / "not-a-folder") in status.message and "folder, not a file" in status.message
        assert log.lines_dropped == 2  # the prompt and session_end (session_start was never tried)


def test_permission_denied_is_reported_with_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def denied(folder: Path, stem: str):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(folder / stem))

    monkeypatch.setattr(session, "_create_log_file", denied)
    reports: list[Status] = []
    with open_log(tmp_path / "logs", reports) as log:
        log.write(prompt())
    assert log.path is None and [s.level for s in reports] == ["error"]
    assert "Permission denied" in reports[0].message and "session.log_dir" in reports[0].message


class FullDisk:
    """A log file on a disk that fills up after `room` writes: then every write fails with ENOSPC."""

    def __init__(self, path: Path, room: int) -> None:
        self.inner, self.room = open(path, "xb", buffering=0), room

    def write(self, data: memoryview) -> int:
        if self.room <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        self.room -= 1
        return self.inner.write(data)

    def close(self) -> None:
        self.inner.close()


@pytest.mark.parametrize("room", [0, 3])
def test_disk_full_stops_logging_once_and_the_show_goes_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                           room: int) -> None:
    monkeypatch.setattr(session, "_create_log_file",
                        lambda folder, stem: (folder / "full.jsonl", FullDisk(folder / "full.jsonl", room)))
    reports: list[Status] = []
    with open_log(tmp_path, reports) as log:
        for i in range(10):
            log.write(prompt(f"prompt {i}"))
    assert len(reports) == 1 and reports[0].level == "error"
    assert "logging stopped: No space left on device" in reports[0].message
    assert "free some disk space" in reports[0].message and reports[0].message.endswith("the show goes on")
    assert log.lines_written == room and log.lines_dropped == 11 + 1 - room  # + session_start, session_end
    assert not log.active
    if room:  # the lines written before the disk filled are intact
        assert [r["type"] for r in read_log(tmp_path / "full.jsonl")] == ["session_start"] + ["image_prompt"] * 2
    else:
        assert (tmp_path / "full.jsonl").stat().st_size == 0


# --- audio recording ----------------------------------------------------------------------------


def test_recording_reads_back_with_the_same_length_and_samples(tmp_path: Path) -> None:
    audio = tone(25)
    with open_log(tmp_path, record_audio=True) as log:
        buffer = np.empty(BLOCK, np.float32)
        for block in audio.reshape(-1, BLOCK):
            buffer[:] = block  # the caller reuses one buffer: the log must have copied it
            log.record(buffer)
    assert log.audio_path == log.path.with_suffix(".flac")
    info = sf.info(log.audio_path)
    assert (info.samplerate, info.channels, info.subtype, info.format) == (SAMPLE_RATE, 1, "PCM_16", "FLAC")
    data, _ = sf.read(log.audio_path, dtype="float32")
    assert len(data) == len(audio) and np.max(np.abs(data - audio)) <= 1 / 32768 + 1e-7
    assert log.blocks_recorded == 25 and log.blocks_dropped == 0
    start, end = lines(log.path)[0], lines(log.path)[-1]
    assert start["audio"] == log.audio_path.name
    assert (end["audio_blocks"], end["audio_blocks_dropped"], end["audio_seconds"]) == (25, 0, 2.0)


class StalledFile:
    """A FLAC file on a stalled disk: the first write waits until released."""

    def __init__(self, path: Path) -> None:
        self.inner = REAL_OPEN_AUDIO(path)
        self.entered, self.release = threading.Event(), threading.Event()

    def write(self, block: np.ndarray) -> None:
        self.entered.set()
        assert self.release.wait(30)
        self.inner.write(block)

    def close(self) -> None:
        self.inner.close()


def test_record_never_blocks_and_counts_drops(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(session, "AUDIO_QUEUE_BLOCKS", 4)
    stalled: list[StalledFile] = []
    monkeypatch.setattr(session, "_open_audio", lambda path: stalled.append(StalledFile(path)) or stalled[0])
    reports: list[Status] = []
    log = open_log(tmp_path, reports, record_audio=True)
    blocks = tone(20).reshape(-1, BLOCK)
    log.record(blocks[0])
    assert stalled[0].entered.wait(10)  # the writer holds block 0, stuck on the disk

    def audio_thread() -> None:
        for block in blocks[1:]:
            log.record(block)

    t = threading.Thread(target=audio_thread)
    t.start()
    t.join(10)
    assert not t.is_alive(), "record() blocked the audio thread"
    assert log.blocks_dropped == 20 - 1 - 4
    stalled[0].release.set()
    log.close()
    assert log.blocks_recorded == 5 and log.blocks_dropped == 15
    assert [(s.level, s.message.split(":")[0]) for s in reports] == [("warning", "audio recording fell behind")]
    assert "15 block(s)" in reports[0].message
    data, _ = sf.read(log.audio_path, dtype="float32")
    assert len(data) == 5 * BLOCK
    assert lines(log.path)[-1]["audio_blocks_dropped"] == 15


class FillingFile:
    """A FLAC file on a disk that fills after `room` blocks (libsndfile then raises "System error")."""

    def __init__(self, path: Path, room: int) -> None:
        self.inner, self.room = REAL_OPEN_AUDIO(path), room

    def write(self, block: np.ndarray) -> None:
        if self.room <= 0:
            raise sf.LibsndfileError(2)  # SF_ERR_SYSTEM, what libsndfile raises on ENOSPC
        self.room -= 1
        self.inner.write(block)

    def close(self) -> None:
        self.inner.close()


def test_disk_full_stops_the_recording_not_the_log(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(session, "_open_audio", lambda path: FillingFile(path, 5))
    reports: list[Status] = []
    with open_log(tmp_path, reports, record_audio=True) as log:
        for block in tone(12).reshape(-1, BLOCK):
            log.record(block)
        log.write(prompt("still logged"))
    assert [s.level for s in reports] == ["error"]
    assert reports[0].message.startswith("audio recording stopped: System error")
    assert reports[0].message.endswith("the show goes on")
    assert log.blocks_recorded == 5 and log.blocks_dropped == 7
    data, _ = sf.read(log.audio_path, dtype="float32")  # closed properly when it failed
    assert len(data) == 5 * BLOCK
    assert [r.get("text") for r in read_log(log.path) if r["type"] == "image_prompt"] == ["still logged"]


def test_recording_that_cannot_start_leaves_the_log_running(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(path: Path):
        raise sf.LibsndfileError(2, prefix="Error opening: ")

    monkeypatch.setattr(session, "_open_audio", broken)
    reports: list[Status] = []
    with open_log(tmp_path, reports, record_audio=True) as log:
        log.record(tone(1))
        log.write(prompt())
    assert log.audio_path is None and log.active is False and log.lines_written == 3
    assert len(reports) == 1 and reports[0].message.startswith("audio recording off: ")


KILLED_RUN = """
import os, signal, sys, time
import numpy as np
from voicevibe.config import SessionConfig
from voicevibe.runtime.session import SessionLog
log = SessionLog.open(SessionConfig(log_dir=sys.argv[1]), record_audio=True, name="killed")
audio = np.random.default_rng(1).uniform(-0.5, 0.5, 50 * 1920).astype(np.float32)
for i, block in enumerate(audio.reshape(-1, 1920)):
    log.record(block)
    log.write({"type": "control", "i": i})
while log.blocks_recorded < 50:
    time.sleep(0.01)
log.flush()
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_killed_app_loses_no_line_and_its_recording_is_recoverable(tmp_path: Path) -> None:
    run = subprocess.run([sys.executable, "-c", KILLED_RUN, str(tmp_path)], env=os.environ, timeout=120)
    assert run.returncode == -signal.SIGKILL
    (log_path,) = tmp_path.glob("*-killed.jsonl")
    records = list(read_log(log_path))
    assert [r["i"] for r in records[1:]] == list(range(50)) and records[-1]["type"] == "control"
    flac = log_path.with_suffix(".flac")
    frames = recover_recording(flac)
    audio = np.random.default_rng(1).uniform(-0.5, 0.5, 50 * BLOCK).astype(np.float32)
    data, rate = sf.read(flac, dtype="float32")
    assert rate == SAMPLE_RATE and len(data) == frames
    assert 45 * BLOCK <= frames <= 50 * BLOCK  # at most the encoder's unwritten frame is lost
    assert np.max(np.abs(data - audio[:frames])) <= 1 / 32768 + 1e-7
    assert recover_recording(flac) == frames  # a sound file is left alone


# --- read_log -----------------------------------------------------------------------------------


def test_read_log_errors_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.jsonl"
    with pytest.raises(SessionLogError, match=f"{missing}: cannot open"):
        read_log(missing)
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    with pytest.raises(SessionLogError, match="empty.jsonl: empty file"):
        read_log(empty)
    wav = tmp_path / "take.wav"
    sf.write(wav, tone(1), SAMPLE_RATE)
    with pytest.raises(SessionLogError, match="take.wav: not a VoiceVibe session log"):
        list(read_log(wav))
    other = tmp_path / "other.jsonl"
    other.write_text('{"event": "x"}\n{"event": "y"}\n')
    with pytest.raises(SessionLogError, match="other.jsonl: not a VoiceVibe session log"):
        list(read_log(other))


def test_read_log_skips_a_truncated_last_line(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "cut.jsonl"
    good = '{"type": "session_start", "mono": 1.0}\n{"type": "image_prompt", "text": "a", "mono": 2.0}\n'
    cut_mid_character = '{"type": "image_prompt", "text": "forê'.encode()[:-1]  # half of "ê"
    path.write_bytes(good.encode() + cut_mid_character)
    with caplog.at_level(logging.WARNING, logger="voicevibe.runtime.session"):
        records = list(read_log(path))
    assert [r["mono"] for r in records] == [1.0, 2.0]
    assert "line 3 is cut short" in caplog.text


def test_read_log_rejects_a_corrupt_middle_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"type": "session_start", "mono": 1.0}\n{"type": oops\n{"type": "x", "mono": 3.0}\n')
    with pytest.raises(SessionLogError, match="bad.jsonl: corrupt session log at line 2"):
        list(read_log(path))


# --- replay -------------------------------------------------------------------------------------


def write_records(path: Path, records: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


SHOW = [{"type": "session_start", "mono": 9.0},
        {"type": "image_prompt", "text": "a red balloon", "mono": 10.0},
        {"type": "word", "text": " hi", "mono": 11.0},
        {"type": "summary", "text": "not replayed", "image_prompt": "not replayed", "mono": 11.5},
        {"type": "manual_prompt", "text": "black frame", "mono": 12.5},
        {"type": "image_prompt", "text": "la forêt", "mono": 12.5},
        {"type": "image_prompt", "text": "  ", "mono": 13.0},
        {"type": "image_prompt", "text": "snow on the theatre", "mono": 20.0}]


@pytest.mark.parametrize(("speed", "delays"), [(1.0, [2.5, 7.5]), (2.0, [1.25, 3.75]), (0.5, [5.0, 15.0])])
def test_replay_resends_prompts_with_their_timing(tmp_path: Path, speed: float, delays: list[float]) -> None:
    path = write_records(tmp_path / "show.jsonl", SHOW)
    calls: list[tuple[str, object]] = []
    count = replay(path, lambda text: calls.append(("send", text)), speed=speed,
                   sleep=lambda s: calls.append(("sleep", s)))
    assert count == 4
    assert calls == [("send", "a red balloon"), ("sleep", delays[0]), ("send", "black frame"),
                     ("send", "la forêt"), ("sleep", delays[1]), ("send", "snow on the theatre")]


def test_replay_of_a_real_log(tmp_path: Path) -> None:
    with open_log(tmp_path) as log:
        log.write(prompt("one"))
        log.write({"type": "manual_prompt", "text": "two"})
    sent: list[str] = []
    assert replay(log.path, sent.append, sleep=lambda s: None) == 2 and sent == ["one", "two"]


def test_replay_errors(tmp_path: Path) -> None:
    path = write_records(tmp_path / "quiet.jsonl", SHOW[:1] + SHOW[2:4])
    with pytest.raises(SessionLogError, match="quiet.jsonl: nothing to replay"):
        replay(path, print)
    for speed in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="speed"):
            replay(path, print, speed=speed)
    with pytest.raises(SessionLogError, match="missing.jsonl"):
        replay(tmp_path / "missing.jsonl", print)


# --- latency ------------------------------------------------------------------------------------


def test_latency_stats_per_stage() -> None:
    stats = LatencyStats()
    for i in range(20):  # queue 10+i ms, brain 500+10i ms, send 2 ms
        closed = 100.0 + i
        start = closed + (10 + i) / 1e3
        end = start + (500 + 10 * i) / 1e3
        stats.add(prompt(closed=closed, start=start, end=end), end + 0.002)
    stats.add(prompt(closed=200.0, start=200.02, end=200.62), None)  # held by freeze: no send stages
    stats.add(prompt(), 300.0)  # no stamps (a resend): counted, no stage
    by_name = {s.name: s for s in stats.stages()}
    queue, brain, send, total = (by_name[name] for name in session.STAGES)
    assert (queue.count, brain.count, send.count, total.count) == (21, 21, 20, 20)
    assert queue.max_ms == pytest.approx(29.0) and queue.median_ms == pytest.approx(20.0)
    assert queue.p95_ms == pytest.approx(28.0)
    assert brain.median_ms == pytest.approx(600.0) and brain.p95_ms == pytest.approx(680.0)
    assert send.median_ms == pytest.approx(2.0, abs=1e-6)
    assert total.max_ms == pytest.approx(29 + 690 + 2)
    text = stats.summary()
    rows = text.splitlines()
    assert rows[0].startswith("latency (ms) over 22 prompt(s)") and len(rows) == 6
    assert rows[-1].startswith("1 prompt(s) not sent")
    assert len({len(row) for row in rows[:5]}) == 1  # aligned columns
    assert rows[2].split()[-4:] == ["21", "600.0", "680.0", "690.0"]


def test_latency_summary_without_prompts() -> None:
    assert LatencyStats().summary() == "latency: no prompts"
    assert LatencyStats().stages() == []


def test_latency_stats_from_a_log(tmp_path: Path) -> None:
    with open_log(tmp_path) as log:
        log.write(prompt(closed=1.0, start=1.25, end=2.0), sent_at=2.004)
        log.write(prompt(closed=3.0, start=3.0, end=3.5))  # not sent
    stats = session.latency_from_log(log.path)
    assert stats.prompts == 2 and stats.unsent == 1
    assert {s.name: s.count for s in stats.stages()} == dict(zip(session.STAGES, (2, 2, 1, 1)))
