"""Twenty minutes of audio through the engine at the real 4096-step limits (tiny checkpoint).

Kyutai's reference loop dies at step 4096; the engine must reset before that wall, lose no
frame, and emit for every segment exactly the tokens the reference loop emits on that
segment alone. Both run on the tests' fast stand-in codec (testing/fastcodec.py), which
keeps rustymimi's own wall: the LM and the limits are real, the codec costs nothing (the
engine and the reference agree on the real codec in test_stt.py). The reference runs in a
second process, segment by segment as the engine closes them. The real default limits are
checked in test_stt.py::test_the_default_limits_keep_every_segment_under_the_real_wall.
"""

from __future__ import annotations

import dataclasses
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from support.speech import long_show
from voicevibe.audio import FileSource
from voicevibe.config import SttConfig
from voicevibe.events import SegmentReset, Word
from voicevibe.hub import locate_stt
from voicevibe.speech.engine import NO_TEXT_TOKENS, WALL_STEPS, SttEngine, load_model
from voicevibe.testing.checkpoint import CARD, N_Q
from voicevibe.testing.fastcodec import FastMimi

MINUTES = 20
SHOW = dict(minutes=MINUTES, nonstop_from=8, nonstop_minutes=6)  # 6 min with no pause at all

_worker_state: dict = {}  # the reference model, loaded once per worker process


def _load_worker(folder: str, wav: str) -> None:
    from voicevibe.testing.reference import load_reference

    files = locate_stt(folder)
    blocks = list(FileSource(Path(wav), realtime=False).blocks())
    _worker_state.update(files=files, loaded=load_reference(files, "f32"), audio=long_show(blocks, **SHOW))


def _reference_segment(first: int, n: int, flush: int) -> list[tuple[int, int]]:
    from voicevibe.testing.reference import reference_tokens

    tokens = reference_tokens(_worker_state["files"], list(_worker_state["audio"][first:first + n]),
                              flush_frames=flush, max_steps=WALL_STEPS, loaded=_worker_state["loaded"],
                              codec=FastMimi(N_Q, CARD))
    last = first + n - 1
    return [(tok, min(first + i, last)) for i, tok in enumerate(tokens) if tok not in NO_TEXT_TOKENS]


@pytest.mark.slow
def test_twenty_minutes_with_the_real_limits(fast_plain, speech_wav, speech_blocks):
    audio = long_show(speech_blocks, **SHOW)
    files = locate_stt(str(fast_plain))
    model = load_model(files, "f32")
    assert model.fast_codec
    engine = SttEngine(model, dataclasses.replace(SttConfig(), dtype="f32"))
    assert engine.max_segment + engine.flush_frames < WALL_STEPS
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=context, initializer=_load_worker,
                             initargs=(str(fast_plain), str(speech_wav))) as pool:
        words, futures, reasons, start = [], [], set(), 0
        for block in audio:
            for event in engine.step(block):
                if isinstance(event, Word):
                    words.append((event.token, event.step))
                elif isinstance(event, SegmentReset):
                    assert event.step == start + event.segment_frames
                    reasons.add(event.reason)
                    futures.append(pool.submit(_reference_segment, start, event.segment_frames, engine.flush_frames))
                    start = event.step
        words += [(e.token, e.step) for e in engine.flush() if isinstance(e, Word)]
        futures.append(pool.submit(_reference_segment, start, len(audio) - start, engine.flush_frames))
        expected = [pair for future in futures for pair in future.result()]
    assert engine.frames_in == engine.frames_fed == len(audio) == MINUTES * 750
    assert engine.resets >= 4  # 20 min cannot fit in segments of at most 300 s
    assert {"quiet", "limit"} <= reasons  # quiet moments in speech; the cap in the non-stop stretch
    assert len(words) > 1000
    assert words == expected, "the engine's tokens differ from the reference loop's on some segment"
