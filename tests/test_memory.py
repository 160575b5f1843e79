"""A three-hour show's memory: the speech worker caps MLX's buffer cache and reports MLX's figures over its pipe;
every supervisor.memory_log_seconds the session log gets them with each process's RSS (psutil)."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

from support.shows import WAIT, show_config, until
from voicevibe.config import SttConfig
from voicevibe.runtime.engines import Engines
from voicevibe.runtime.memory import ANSWER_SECONDS, MB, MemoryWatch
from voicevibe.runtime.pipeline import Pipeline
from voicevibe.runtime.session import read_log
from voicevibe.workers.messages import SttMemory


def test_the_speech_worker_caps_the_mlx_cache_and_reports_its_memory(tmp_path: Path, fast_checkpoint: Path,
                                                                     peer) -> None:
    config = show_config(tmp_path, fast_checkpoint, peer)
    engines = Engines(config)
    try:
        engines.start()
        assert engines.stt.wait_ready(threading.Event())
        seq = engines.stt.ask_memory()
        first = until(lambda: engines.stt.memory if engines.stt.memory and engines.stt.memory.seq == seq else None)
        assert first.cache_limit == 512 * MB  # stt.mlx_cache_mb's default
        assert first.active > 0 and first.peak >= first.active  # the model's weights are MLX arrays
        engines.stt.begin(SttConfig(model=str(fast_checkpoint), mlx_cache_mb=64), lambda events: None,
                          queue_seconds=2.0)  # a new stream sets the cap again
        seq = engines.stt.ask_memory()
        again = until(lambda: engines.stt.memory if engines.stt.memory and engines.stt.memory.seq == seq else None)
        assert again.cache_limit == 64 * MB
    finally:
        engines.close()
    assert engines.stt.ask_memory() == 0  # no worker: nothing asked


class FakeStt:
    """The speech stage's memory side: questions counted, answered when the test says."""

    def __init__(self, up: bool = True) -> None:
        self.up, self.asked, self.memory = up, 0, None

    def ask_memory(self) -> int:
        if not self.up:
            return 0
        self.asked += 1
        return self.asked

    def answer(self, seq: int) -> None:
        self.memory = SttMemory(seq, 300 * MB, 400 * MB, 20 * MB, 512 * MB)


def test_the_watch_logs_every_period_with_each_process_and_without_mlx_when_the_worker_is_silent_or_down() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; print('up', flush=True); time.sleep(60)"],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None and child.stdout.readline() == "up\n"  # its Python is loaded: RSS is real
        stt, lines = FakeStt(), []
        watch = MemoryWatch(60.0, stt, lambda: {"stt": child.pid, "brain": None}, lines.append)  # type: ignore[arg-type]
        watch.tick(100.0)  # the first reading is asked at once
        assert stt.asked == 1 and lines == []
        stt.answer(1)
        watch.tick(100.1)
        (line,) = lines
        assert line["type"] == "memory" and set(line["rss_mb"]) == {"main", "stt"}  # no brain process: left out
        assert line["rss_mb"]["main"] > 10 and line["rss_mb"]["stt"] > 1
        assert abs(line["rss_total_mb"] - line["rss_mb"]["main"] - line["rss_mb"]["stt"]) <= 0.2  # rounding
        assert (line["mlx_active_mb"], line["mlx_peak_mb"], line["mlx_cache_mb"], line["mlx_cache_limit_mb"]) == \
            (300.0, 400.0, 20.0, 512.0)
        watch.tick(130.0)
        assert stt.asked == 1 and len(lines) == 1  # not before the period is up
        watch.tick(160.0)
        assert stt.asked == 2
        watch.tick(160.0 + ANSWER_SECONDS - 0.1)
        assert len(lines) == 1  # still waiting for the answer
        watch.tick(160.0 + ANSWER_SECONDS + 0.1)  # the worker never answered: the processes still count
        assert len(lines) == 2 and "mlx_active_mb" not in lines[1] and "main" in lines[1]["rss_mb"]
        stt.up = False
        watch.tick(220.0)  # the worker is down: logged at once, without MLX
        assert len(lines) == 3 and "mlx_active_mb" not in lines[2]
    finally:
        child.kill()
        child.wait()


def test_a_show_logs_memory_with_the_workers_and_mlx(tmp_path: Path, fast_checkpoint: Path, speech_wav: Path,
                                                     peer) -> None:
    config = show_config(tmp_path, fast_checkpoint, peer, supervisor={"memory_log_seconds": 1.0},
                         audio={"realtime": True})
    pipeline = Pipeline(config, input_spec=str(speech_wav))
    pipeline.start()
    try:
        assert pipeline.wait(WAIT)
    finally:
        pipeline.stop()
    lines = [r for r in read_log(pipeline.log_path) if r["type"] == "memory"]
    assert len(lines) >= 5, lines  # about 12 s of speech at real time, one line a second
    with_mlx = [r for r in lines if "mlx_active_mb" in r]
    assert with_mlx and all(r["mlx_cache_limit_mb"] == 512.0 and r["mlx_active_mb"] > 0 for r in with_mlx)
    assert all({"main", "stt"} <= set(r["rss_mb"]) for r in with_mlx)
    assert all(r["rss_mb"]["main"] > 10 for r in lines)
