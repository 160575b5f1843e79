"""The speech engine's worker process: conditioned blocks in, transcript events out.

`run_stt_worker` runs in the worker process and owns every MLX and rustymimi object: it loads
the model once, then steps a fresh `SttEngine` per stream (`SttBegin`), one `AudioBlock` at
a time. Only the worker imports this module (speech/stage.py names it by "module:function"),
so MLX is imported at the top.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import mlx.core as mx

from voicevibe.config import SttConfig
from voicevibe.events import SpeechEvent, Status
from voicevibe.hub import ModelError, locate_stt
from voicevibe.speech.engine import SttEngine, SttModel, load_model
from voicevibe.workers.messages import (
    AudioBlock,
    Shutdown,
    SttBegin,
    SttFlush,
    SttMemory,
    SttMemoryQuery,
    SttStepped,
    WorkerFailed,
    WorkerLoading,
    WorkerReady,
)
from voicevibe.workers.process import EXIT_FAILED, EXIT_STEP_ERRORS, Link, resolve

log = logging.getLogger(__name__)

STEP_ERRORS = 3  # step exceptions within STEP_ERROR_SECONDS: the worker restarts instead of looping
STEP_ERROR_SECONDS = 10.0

Progress = Callable[[str, float], None]
SttLoader = Callable[[SttConfig, Progress], SttModel]


def load_stt(config: SttConfig, progress: Progress) -> SttModel:
    """The default loader: the configured checkpoint from a folder or the hub cache, never downloading."""
    return load_model(locate_stt(config.model, allow_download=False), config.dtype, progress=progress)


def cap_cache(config: SttConfig) -> int:
    """Cap the buffers MLX keeps for reuse at stt.mlx_cache_mb (set again at each stream); the cap in bytes."""
    limit = config.mlx_cache_mb * 1024 * 1024
    mx.set_cache_limit(limit)
    return limit


def mlx_memory(seq: int, cache_limit: int) -> SttMemory:
    """MLX's memory figures now (mlx 0.26's top-level calls; `mx.metal.*` are their deprecated names)."""
    return SttMemory(seq, mx.get_active_memory(), mx.get_peak_memory(), mx.get_cache_memory(), cache_limit)


def run_stt_worker(link: Link, loader: SttLoader | str, config: SttConfig, skip: Any) -> int:
    """Load the model (`loader`: a callable, or its "module:function"), then step one engine per stream until
    Shutdown.

    Blocks and flushes numbered `skip.value` or lower (a shared counter the main process sets at
    Stop) are answered without being stepped, so a backlog never delays a Stop.
    """
    link.send(WorkerLoading(f"loading speech model {config.model} ({config.dtype})", 0.0))
    cache_limit = cap_cache(config)
    try:
        model = resolve(loader)(config, lambda message, fraction: link.send(WorkerLoading(message, fraction)))
    except ModelError as e:
        link.send(WorkerFailed(str(e)))
        return EXIT_FAILED
    engine = SttEngine(model, config)
    vad = "with" if engine.use_vad else "without"
    link.send(WorkerReady(f"speech model ready: {config.model}, {vad} pause detection"))
    errors: deque[float] = deque()  # when the recent step errors happened
    step_errors = 0  # in this stream
    while True:
        message = link.recv()
        if isinstance(message, Shutdown):
            return 0
        if isinstance(message, SttMemoryQuery):
            link.send(mlx_memory(message.seq, cache_limit))
        elif isinstance(message, SttBegin):
            cache_limit = cap_cache(message.config)
            engine.close()
            engine = SttEngine(model, message.config)
            step_errors = 0
        elif isinstance(message, (AudioBlock, SttFlush)) and message.seq <= skip.value:
            link.send(SttStepped(message.seq, (), 0.0, engine.counters(step_errors),
                                 flushed=isinstance(message, SttFlush), stepped=False, sent_at=time.monotonic()))
        elif isinstance(message, AudioBlock):
            start = time.perf_counter()
            try:
                events: list[SpeechEvent | Status] = [*engine.step(message.samples())]
            except Exception as e:  # the model's step: fresh state, and the show goes on
                log.exception("STT step failed")
                now = time.monotonic()
                errors.append(now)
                while errors and now - errors[0] > STEP_ERROR_SECONDS:
                    errors.popleft()
                if len(errors) >= STEP_ERRORS:
                    return EXIT_STEP_ERRORS  # the supervisor restarts the process, with backoff
                step_errors += 1
                engine.close()
                engine = SttEngine(model, engine.config)
                events = [Status("stt", f"speech recognition failed ({type(e).__name__}: {e}); "
                                 "restarted with fresh state", "error")]
            link.send(SttStepped(message.seq, tuple(events), time.perf_counter() - start,
                                 engine.counters(step_errors), sent_at=time.monotonic()))
        elif isinstance(message, SttFlush):
            start = time.perf_counter()
            flushed = engine.flush()
            link.send(SttStepped(message.seq, tuple(flushed), time.perf_counter() - start,
                                 engine.counters(step_errors), flushed=True, sent_at=time.monotonic()))


# ---- in the main process ------------------------------------------------------------------------


