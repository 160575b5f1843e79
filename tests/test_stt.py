"""The STT engine against Kyutai's reference loop, its resets, cache, pauses and load errors."""

from __future__ import annotations

import dataclasses
import json
import shutil

import mlx.core as mx
import numpy as np
import pytest
from moshi_mlx.modules.kv_cache import RotatingKVCache

from voicevibe.config import BLOCK, SttConfig
from voicevibe.events import PhraseEnd, SegmentReset, Word
from voicevibe.hub import ModelError, locate_stt
from voicevibe.speech.engine import (
    NO_TEXT_TOKENS,
    WALL_STEPS,
    PauseTracker,
    SlidingKVCache,
    SttEngine,
    load_model,
    segment_limits,
)
from voicevibe.testing.checkpoint import lm_config_dict
from voicevibe.testing.fastcodec import FastMimi
from voicevibe.testing.reference import load_reference, reference_tokens

F32 = dataclasses.replace(SttConfig(), dtype="f32")


def run_engine(engine: SttEngine, blocks: list[np.ndarray]) -> list:
    events = []
    for block in blocks:
        events += engine.step(block)
    return events + engine.flush()


def expected_words(tokens: list[int], first_frame: int, n_frames: int) -> list[tuple[int, int]]:
    """(token, step) pairs the engine must emit for a reference run over frames [first, first+n)."""
    last = first_frame + n_frames - 1
    return [(tok, min(first_frame + i, last)) for i, tok in enumerate(tokens) if tok not in NO_TEXT_TOKENS]


@pytest.mark.parametrize("which", ["tiny_checkpoint", "tiny_plain", "tiny_checkpoint_mlx"])
def test_engine_emits_the_reference_token_stream(which, request, speech_blocks):
    """PyTorch names + VAD heads, MLX names, and q8 weights: the same tokens as Kyutai's loop."""
    files = locate_stt(str(request.getfixturevalue(which)))
    if which == "tiny_checkpoint_mlx":
        assert files.lm.name == "model.q8.safetensors"
    engine = SttEngine(load_model(files, "f32"), F32)
    events = run_engine(engine, speech_blocks)
    words = [(e.token, e.step) for e in events if isinstance(e, Word)]
    reference = reference_tokens(files, speech_blocks, flush_frames=engine.flush_frames)
    assert len(reference) == len(speech_blocks) + engine.flush_frames
    assert words == expected_words(reference, 0, len(speech_blocks))
    assert len(words) > 10, "the random model should emit text on speech"
    assert engine.frames_fed == engine.frames_in == len(speech_blocks)
    assert not any(isinstance(e, SegmentReset) for e in events)


def segments_of(events: list, total: int) -> list[tuple[int, int]]:
    """(first frame, frame count) of every segment, from the reset events."""
    bounds, start = [], 0
    for e in events:
        if isinstance(e, SegmentReset):
            assert e.step == start + e.segment_frames
            bounds.append((start, e.segment_frames))
            start = e.step
    return [*bounds, (start, total - start)]


@pytest.mark.slow
def test_resets_before_the_wall_lose_no_frame_and_match_the_reference_per_segment(
        tiny_plain, speech_blocks):
    """Shrunk wall (100 steps, the real Mimi's max_seq_len 200), on the real codec: 28 s of audio go through
    in segments, each rebuilding rustymimi (the real-limit show, on the fast codec, is test_stt_long)."""
    wall = 100
    files = locate_stt(str(tiny_plain))
    config = dataclasses.replace(F32, reset_after_seconds=3.0, max_segment_seconds=7.0)
    engine = SttEngine(load_model(files, "f32", mimi_max_seq_len=2 * wall), config, wall_steps=wall)
    # speech with pauses, then 16 s of non-stop sound getting louder (no block is "quiet")
    crescendo = np.linspace(0.05, 0.5, BLOCK * 200) * np.random.default_rng(1).normal(0, 1, BLOCK * 200)
    blocks = speech_blocks + list(crescendo.astype(np.float32).reshape(-1, BLOCK))
    events = run_engine(engine, blocks)
    segments = segments_of(events, len(blocks))
    assert sum(n for _, n in segments) == len(blocks) == engine.frames_fed == engine.frames_in
    assert all(n + engine.flush_frames < wall for _, n in segments)
    reasons = {e.reason for e in events if isinstance(e, SegmentReset)}
    assert {"quiet", "limit"} <= reasons
    loaded = load_reference(files, "f32")
    words = [(e.token, e.step) for e in events if isinstance(e, Word)]
    expected = []
    for first, n in segments:
        tokens = reference_tokens(files, blocks[first:first + n], flush_frames=engine.flush_frames,
                                  max_steps=wall, loaded=loaded)
        expected += expected_words(tokens, first, n)
    assert words == expected
    with pytest.raises(ValueError, match="reached max-steps"):  # the wall the resets avoid
        reference_tokens(files, blocks[:wall + 1], flush_frames=0, max_steps=wall, loaded=loaded)


def test_the_default_limits_keep_every_segment_under_the_real_wall():
    """The real limits, checked at once (test_stt_long runs twenty minutes into them): moshi_mlx sizes the
    rotating KV cache of the real 1B config at 4096 steps, Kyutai's loop stops there, rustymimi's encoder
    at 8192 positions (two per block; the codec stand-in keeps that wall); the default settings reset at
    a pause after 120 s and never let a segment and its flush reach the wall, nor do the largest allowed."""
    assert models_config("full").transformer.max_seq_len == WALL_STEPS == 4096
    assert FastMimi(32).max_blocks == WALL_STEPS
    flush, max_segment, reset_after = segment_limits(SttConfig(), audio_delay_seconds=0.5)
    assert (flush, max_segment, reset_after) == (9, 3750, 1500)  # 0.5 s delay + 2 frames; 300 s; 120 s
    assert max_segment + flush < WALL_STEPS
    widest = SttConfig(reset_after_seconds=310.0, max_segment_seconds=315.0)
    for delay in (0.5, 2.5):  # stt-1b-en_fr, stt-2.6b-en
        flush, max_segment, reset_after = segment_limits(widest, audio_delay_seconds=delay)
        assert max_segment + flush < WALL_STEPS and reset_after <= max_segment
    flush, max_segment, _ = segment_limits(SttConfig(), audio_delay_seconds=0.5, wall_steps=200)
    assert max_segment == 200 - flush - 1  # a smaller wall (the tests') caps the segment instead


def models_config(size: str):
    from moshi_mlx import models

    return models.LmConfig.from_config_dict(lm_config_dict(size))


def test_sliding_cache_shows_what_the_reference_cache_shows_after_cropping():
    window, steps = 9, 40
    ours, theirs = SlidingKVCache(window, slack=4), RotatingKVCache(head_dim=2, n_kv_heads=1, max_size=64)
    for i in range(steps):
        k = mx.full((1, 1, 1, 2), float(i))
        got_k, got_v = ours.update_and_fetch(k, k + 0.5)
        ref_k, _ = theirs.update_and_fetch(k, k + 0.5)
        ref_k = ref_k[:, :, -min(window, ref_k.shape[2]):]  # the attention's context crop
        assert got_k.tolist() == ref_k.tolist()
        assert (got_v - got_k).tolist() == (mx.zeros_like(got_k) + 0.5).tolist()
        assert ours.keys.shape[2] == window + 4  # bounded, whatever the step count
    assert ours.offset == steps


def test_engine_cache_stays_bounded_by_the_context(tiny_plain):
    model = load_model(locate_stt(str(tiny_plain)), "f32")
    engine = SttEngine(model, F32)
    for _ in range(1100):
        engine._lm_step()  # feeds the padding frame: no audio has come
    context = model.config.transformer.context
    for layer in model.lm.transformer_cache:
        assert layer.self_attn.keys.shape[2] <= context + 1 + 256
        assert layer.self_attn.offset == 1100


def test_pause_tracker_needs_speech_and_ignores_warmup():
    tracker = PauseTracker(threshold=0.6, smoothing=0.5, warmup_steps=3)
    assert [tracker.update(1.0, False) for _ in range(10)] == [False] * 10  # no speech yet
    tracker.new_segment()
    assert [tracker.update(1.0, True) for _ in range(3)] == [False] * 3  # warm-up
    ends = [tracker.update(p, False) for p in (0.2, 0.9, 0.9, 0.9, 0.9)]
    assert ends == [False, False, True, False, False]  # 0.1, 0.5, 0.7 crosses once
    assert tracker.update(0.9, True) is True  # re-armed by new speech


class ScriptedPauseHead:
    """Stands in for extra head 2: 'paused' with certainty on steps [start, stop)."""

    def __init__(self, start: int, stop: int):
        self.start, self.stop, self.calls = start, stop, 0

    def __call__(self, out: mx.array) -> mx.array:
        self.calls += 1
        paused = self.start <= self.calls < self.stop
        return mx.array([[[10.0 if paused else -10.0] + [0.0] * 5]])


def test_vad_pause_ends_the_phrase_and_resets_after_the_minimum(tiny_checkpoint, speech_blocks):
    files = locate_stt(str(tiny_checkpoint))
    model = load_model(files, "f32")
    assert model.has_vad
    model.lm.extra_heads[2] = ScriptedPauseHead(start=40, stop=44)
    config = dataclasses.replace(F32, reset_after_seconds=3.0, vad_warmup_steps=5)
    engine = SttEngine(model, config)
    events = []
    for block in speech_blocks[:60]:
        events += engine.step(block)
    ends = [e for e in events if isinstance(e, PhraseEnd)]
    assert len(ends) == 1 and ends[0].reason == "vad" and ends[0].step >= 40
    resets = [e for e in events if isinstance(e, SegmentReset)]
    assert [r.reason for r in resets] == ["pause"] and resets[0].step == ends[0].step + 1
    assert engine.frames_fed == engine.frames_in - 1  # the newest frame waits for the next step


def test_missing_and_broken_checkpoints_say_what_to_do(tiny_plain, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_plain, broken, symlinks=True)
    (broken / "model.safetensors").unlink()
    shutil.copy(tiny_plain / "model.safetensors", broken)
    (broken / "tokenizer_en_fr_audio_8000.model").unlink()
    with pytest.raises(ModelError, match="missing tokenizer_en_fr_audio_8000.model"):
        locate_stt(str(broken))
    shutil.copy(tiny_plain / "tokenizer_en_fr_audio_8000.model", broken)
    data = (broken / "model.safetensors").read_bytes()
    (broken / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelError, match=r"model.safetensors: truncated \(.* bytes\); download it again"):
        load_model(locate_stt(str(broken)), "f32", warmup=False)
    (broken / "model.safetensors").write_bytes(b"\x00" * 4)
    with pytest.raises(ModelError, match="not a readable safetensors"):
        load_model(locate_stt(str(broken)), "f32", warmup=False)
    shutil.copy(tiny_plain / "model.safetensors", broken)
    config = json.loads((broken / "config.json").read_text())
    (broken / "config.json").write_text(json.dumps({**config, "dep_q": 8}))
    with pytest.raises(ModelError, match="dialogue model"):
        load_model(locate_stt(str(broken)), "f32", warmup=False)
    del config["num_layers"]
    (broken / "config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match="num_layers"):
        load_model(locate_stt(str(broken)), "f32", warmup=False)
    (broken / "config.json").write_text("{not json")
    with pytest.raises(ModelError, match="config.json"):
        locate_stt(str(broken))
    with pytest.raises(ModelError, match="no such folder"):
        locate_stt(str(tmp_path / "nowhere" / "deeper"))


def test_hub_cache_is_used_offline_and_absence_names_the_fix(tiny_plain, tmp_path, monkeypatch):
    """The real huggingface_hub code path, against a cache laid out as the hub writes it."""
    import huggingface_hub.constants as hc
    import huggingface_hub.file_download as fd

    cache = tmp_path / "hub"
    snapshot = cache / "models--kyutai--stt-1b-en_fr-candle" / "snapshots" / ("a" * 40)
    shutil.copytree(tiny_plain, snapshot, symlinks=True)
    (cache / "models--kyutai--stt-1b-en_fr-candle" / "refs").mkdir()
    (cache / "models--kyutai--stt-1b-en_fr-candle" / "refs" / "main").write_text("a" * 40)
    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(cache))
    files = locate_stt("kyutai/stt-1b-en_fr-candle", allow_download=False)
    assert files.lm == snapshot / "model.safetensors"
    assert load_model(files, "f32", warmup=False).tokenizer.get_piece_size() == 1000
    with pytest.raises(ModelError) as err:
        locate_stt("kyutai/stt-1b-en_fr-mlx", allow_download=False)
    assert "voicevibe models download --model kyutai/stt-1b-en_fr-mlx" in str(err.value)
    # nothing listens on port 9: the download fails at once, as it does with no network
    monkeypatch.setattr(fd, "HUGGINGFACE_CO_URL_TEMPLATE", "http://127.0.0.1:9/{repo_id}/resolve/{revision}/{filename}")
    with pytest.raises(ModelError) as err:
        locate_stt("kyutai/stt-2.6b-en-mlx", allow_download=True)
    assert "could not download config.json" in str(err.value)
    assert "https://huggingface.co/kyutai/stt-2.6b-en-mlx" in str(err.value)
