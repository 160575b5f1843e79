"""The tests' fast stand-in codec: deterministic, audio-dependent, with rustymimi's wall, chosen by the checkpoint."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from voicevibe.config import SttConfig
from voicevibe.events import Word
from voicevibe.hub import locate_stt
from voicevibe.speech.engine import NO_TEXT_TOKENS, SttEngine, load_model
from voicevibe.testing.checkpoint import CARD, MIMI_NAME, N_Q
from voicevibe.testing.fastcodec import CodecLimitError, FastMimi, is_fast_codec
from voicevibe.testing.reference import reference_tokens


def test_the_stand_in_is_deterministic_and_follows_the_audio():
    mimi = FastMimi(32, 2048)
    a, b = np.zeros((1, 1, 1920), np.float32), np.full((1, 1, 1920), 0.3, np.float32)
    codes = mimi.encode_step(a)
    assert codes.shape == (1, 32, 1) and codes.dtype == np.uint32 and codes.max() < 2048
    assert (codes == FastMimi(32, 2048).encode_step(a)).all()
    assert not (codes == mimi.encode_step(b)).all()


def test_the_stand_in_stops_at_rustymimis_wall():
    """max_seq_len counts encoder positions, two per 80 ms block, as rustymimi's does."""
    mimi = FastMimi(8, 2048, max_seq_len=10)
    block = np.zeros((1, 1, 1920), np.float32)
    for _ in range(5):
        mimi.encode_step(block)
    with pytest.raises(CodecLimitError, match="max_seq_len"):
        mimi.encode_step(block)


def test_the_checkpoint_chooses_the_codec(fast_checkpoint, tiny_checkpoint):
    assert is_fast_codec(fast_checkpoint / MIMI_NAME)
    assert not is_fast_codec(tiny_checkpoint / MIMI_NAME)
    assert (fast_checkpoint / MIMI_NAME).stat().st_size < 1000  # not the 384 MB random Mimi
    model = load_model(locate_stt(str(fast_checkpoint)), "f32")
    assert model.fast_codec and isinstance(model.new_mimi(), FastMimi)
    assert not load_model(locate_stt(str(tiny_checkpoint)), "f32", warmup=False).fast_codec


def test_the_engine_on_the_stand_in_gives_the_reference_loops_tokens(fast_checkpoint, speech_blocks):
    """The engine picks the stand-in from the checkpoint; the reference loop, given the same codec, agrees."""
    files = locate_stt(str(fast_checkpoint))
    engine = SttEngine(load_model(files, "f32"), dataclasses.replace(SttConfig(), dtype="f32"))
    events = [e for block in speech_blocks for e in engine.step(block)] + engine.flush()
    words = [(e.token, e.step) for e in events if isinstance(e, Word)]
    tokens = reference_tokens(files, speech_blocks, flush_frames=engine.flush_frames, codec=FastMimi(N_Q, CARD))
    last = len(speech_blocks) - 1
    assert words == [(t, min(i, last)) for i, t in enumerate(tokens) if t not in NO_TEXT_TOKENS]
    assert len(words) > 10
