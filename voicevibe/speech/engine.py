"""Kyutai streaming speech-to-text on MLX: one 80 ms block in, typed events out.

The engine owns its step loop instead of using `moshi_mlx.models.LmGen`, so that a show
can last hours: LmGen stops at `max_steps`, its rotating KV cache (4096 positions) wraps
and attends to stale positions, and rustymimi's encoder has a fixed `max_seq_len`. Here
the LM cache keeps exactly the model's context in time order, and the LM and Mimi state
are reset at a pause (or a quiet moment) before the wall. Before a reset, the old state
is flushed with silence so the words still in flight (the model's 0.5 s delay) come out;
every audio frame is fed to the model exactly once.
"""

from __future__ import annotations

import json
import logging
import math
import struct
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import mlx.core as mx
import mlx.nn as nn
import numpy as np
import rustymimi
import sentencepiece
from moshi_mlx import models, utils
from moshi_mlx.modules.transformer import LayerCache

from voicevibe.config import BLOCK, FRAME_SECONDS, SttConfig
from voicevibe.events import PhraseEnd, ResetReason, SegmentReset, SpeechEvent, Word
from voicevibe.hub import ModelError, SttFiles
from voicevibe.testing.fastcodec import FastMimi, is_fast_codec
from voicevibe.workers.messages import SttCounters

log = logging.getLogger(__name__)

NO_TEXT_TOKENS = (0, 3)  # 0: end of padding / word boundary, 3: padding; neither carries text
WALL_STEPS = 4096  # LmGen's max-steps and rustymimi's encoder limit (8192 tokens at 25 Hz)
PAUSE_HEAD = 2  # Kyutai's mic script reads extra head 2, class 0, as "the speaker paused"
QUIET_WINDOW = 250  # 20 s of recent block levels define what "quiet" means (250 * 80 ms)
QUIET_QUANTILE = 0.1  # a block as quiet as the quietest 10% of that window
FINAL_STRETCH = 250  # in the last 20 s before the cap, a quiet block is enough to reset
CACHE_SLACK = 256  # extra KV rows: the window is shifted back once every 256 steps
DTYPES = {"bf16": mx.bfloat16, "f16": mx.float16, "f32": mx.float32}
QUANTIZED = {".q4.safetensors": (4, 32), ".q8.safetensors": (8, 64)}  # bits, group size


def safetensors_names(path: Path) -> list[str]:
    """Tensor names from a safetensors header, after checking the file holds all their data."""
    try:
        with open(path, "rb") as fh:
            (size,) = struct.unpack("<Q", fh.read(8))
            if size > 100_000_000:
                raise ValueError("header too large")
            header = json.loads(fh.read(size))
        end = max((v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"), default=0)
    except (OSError, struct.error, ValueError, KeyError, TypeError, IndexError) as e:
        raise ModelError(f"{path}: not a readable safetensors file ({e}); download it again") from e
    expected, actual = 8 + size + end, path.stat().st_size
    if actual < expected:
        raise ModelError(f"{path}: truncated ({actual:,} of {expected:,} bytes); download it again")
    return [k for k in header if k != "__metadata__"]


class MimiEncoder(Protocol):
    """What the engine needs of a codec (rustymimi.Tokenizer, or the tests' FastMimi)."""

    def encode_step(self, pcm: np.ndarray) -> np.ndarray:
        """Codes [1, 32, frames] for pcm [1, 1, samples], the codec's state carried to the next call."""



@dataclass
class SttModel:
    """Everything loaded from a checkpoint. Owned by one thread: the one that loaded it."""

    name: str
    lm: models.Lm
    config: models.LmConfig
    mimi_path: Path
    mimi_max_seq_len: int | None
    tokenizer: sentencepiece.SentencePieceProcessor
    audio_delay_seconds: float
    has_vad: bool
    fast_codec: bool = False  # the tests' stand-in codec (testing/fastcodec.py), chosen by the checkpoint
    _spare_mimi: MimiEncoder | None = None

    def new_mimi(self) -> MimiEncoder:
        """A fresh Mimi encoder (`Tokenizer.reset()` leaves state behind in rustymimi 0.4.1).

        Building one holds the GIL for 0.3-1.2 s here, so the codec built to check the file at
        load is kept for the first segment, and later ones are built only when audio comes.
        """
        if self._spare_mimi is not None:
            mimi, self._spare_mimi = self._spare_mimi, None
            return mimi
        if self.fast_codec:
            return FastMimi(self.config.audio_codebooks, self.config.audio_vocab_size - 1, self.mimi_max_seq_len)
        try:
            return rustymimi.Tokenizer(str(self.mimi_path), num_codebooks=self.config.audio_codebooks,
                                       max_seq_len=self.mimi_max_seq_len)
        except Exception as e:  # rustymimi raises plain Exception with candle's message
            raise ModelError(f"{self.mimi_path}: cannot load the Mimi codec ({e})") from e


def load_model(files: SttFiles, dtype: str = "bf16", *, mimi_max_seq_len: int | None = None,
               warmup: bool = True, progress: Callable[[str, float], None] | None = None) -> SttModel:
    """Build the LM from config.json, load its weights (MLX or PyTorch names), Mimi and the tokenizer.

    `progress(message, fraction)` hears about each stage (the weights are most of the time).
    """
    def say(message: str, fraction: float) -> None:
        if progress is not None:
            progress(message, fraction)

    raw = dict(files.config)
    names = safetensors_names(files.lm)
    pytorch_names = "out_norm.alpha" in names
    heads = sum(1 for n in names if n.startswith("extra_heads.") and n.endswith(".weight"))
    if raw.get("extra_heads_num_heads", 0) != heads:
        log.info("%s: %d semantic-VAD heads in the weights (config.json says %s)",
                 files.lm.name, heads, raw.get("extra_heads_num_heads"))
        raw["extra_heads_num_heads"] = heads
    try:
        config = models.LmConfig.from_config_dict(raw)
    except (KeyError, TypeError, ValueError) as e:
        raise ModelError(f"{files.source}: config.json lacks or mangles {e}; it is not a Kyutai STT config") from e
    if config.depformer.num_slices:
        raise ModelError(f"{files.source}: dep_q = {config.depformer.num_slices}: this is a dialogue "
                         "model (it talks back), not speech-to-text; use kyutai/stt-1b-en_fr-candle")
    say(f"loading the speech model's weights ({files.lm.stat().st_size / 1e9:.1f} GB)", 0.05)
    lm = models.Lm(config)
    lm.set_dtype(DTYPES[dtype])
    for suffix, (bits, group) in QUANTIZED.items():
        if files.lm.name.endswith(suffix):
            nn.quantize(lm, bits=bits, group_size=group)
    try:
        if pytorch_names:
            lm.load_pytorch_weights(str(files.lm), config, strict=True)
        else:
            lm.load_weights(str(files.lm), strict=True)
    except (ValueError, KeyError, RuntimeError) as e:
        raise ModelError(f"{files.lm}: weights do not match config.json ({e}); "
                         "the file may be truncated or from another model") from e
    say("loading the tokenizer", 0.7)
    tokenizer = sentencepiece.SentencePieceProcessor()
    if not tokenizer.Load(str(files.tokenizer)):  # pragma: no cover - Load raises on failure
        raise ModelError(f"{files.tokenizer}: cannot load the sentencepiece model")
    if tokenizer.get_piece_size() < config.text_out_vocab_size:
        raise ModelError(f"{files.tokenizer}: {tokenizer.get_piece_size()} pieces, but the model emits "
                         f"{config.text_out_vocab_size} text tokens; tokenizer and model do not match")
    lm.transformer_cache = [LayerCache(SlidingKVCache(config.transformer.context + 1))
                            for _ in lm.transformer.layers]
    if warmup:
        say("warming up the speech model", 0.75)
        warm_up(lm)
    delay = float(raw.get("stt_config", {}).get("audio_delay_seconds", 0.5))
    safetensors_names(files.mimi)
    model = SttModel(files.source, lm, config, files.mimi, mimi_max_seq_len, tokenizer, delay,
                     has_vad=heads > PAUSE_HEAD, fast_codec=is_fast_codec(files.mimi))
    if model.fast_codec:
        log.warning("%s: the Mimi file is the tests' fast stand-in codec, not Mimi", files.mimi)
    say("loading the Mimi audio codec", 0.9)
    model._spare_mimi = model.new_mimi()  # fail now, not at the first block, if the codec file is bad
    return model


def warm_up(lm: models.Lm) -> None:
    """Compile the step once. `Lm.warmup()` samples at random and raises ValueError(42) when the
    token happens to be 42 (a guard against optimising the step away): harmless, so it is caught."""
    try:
        lm.warmup()
    except ValueError as e:
        if e.args != (42,):
            raise
        for layer in lm.transformer_cache:
            layer.reset()


class SlidingKVCache:
    """The last `window` keys/values in time order, in a buffer of window + slack rows.

    Attention sees exactly what moshi_mlx's own cache shows it before its 4096-step wall,
    in the same order, but memory stays bounded and there is no wall: when the buffer is
    full the newest window - 1 rows move to the front, once every `slack` steps.
    """

    def __init__(self, window: int, slack: int = CACHE_SLACK):
        self.window = window
        self.capacity = window + slack
        self.keys: mx.array | None = None
        self.values: mx.array | None = None
        self.offset = 0  # positions seen since the last reset: the RoPE position
        self.length = 0  # rows in use

    def update_and_fetch(self, keys: mx.array, values: mx.array) -> tuple[mx.array, mx.array]:
        """Append one step's keys/values and return the attention window."""
        if keys.shape[2] != 1:
            raise ValueError("the streaming cache takes one step at a time")
        if self.keys is None or self.values is None:
            b, h, _, d = keys.shape
            self.keys = mx.zeros((b, h, self.capacity, d), keys.dtype)
            self.values = mx.zeros((b, h, self.capacity, values.shape[3]), values.dtype)
        elif self.length == self.capacity:
            keep = self.window - 1
            self.keys[..., :keep, :] = self.keys[..., self.length - keep:self.length, :]
            self.values[..., :keep, :] = self.values[..., self.length - keep:self.length, :]
            self.length = keep
        self.keys[..., self.length:self.length + 1, :] = keys
        self.values[..., self.length:self.length + 1, :] = values
        self.length += 1
        self.offset += 1
        start = max(0, self.length - self.window)
        return self.keys[..., start:self.length, :], self.values[..., start:self.length, :]

    def reset(self) -> None:
        """Forget everything (a new segment starts at position 0)."""
        self.keys = self.values = None
        self.offset = self.length = 0


class PauseTracker:
    """Smooths the VAD pause probability into phrase ends, armed only once speech was heard."""

    def __init__(self, threshold: float, smoothing: float, warmup_steps: int):
        self.threshold, self.smoothing, self.warmup_steps = threshold, smoothing, warmup_steps
        self.smoothed = 0.0
        self.steps = 0
        self.speech_seen = False

    def new_segment(self) -> None:
        """Model state was reset: its first pause probabilities are unreliable again."""
        self.steps = 0
        self.smoothed = 0.0

    def update(self, pause_prob: float, spoke: bool) -> bool:
        """Feed one step; True when this step ends a phrase."""
        self.steps += 1
        self.speech_seen |= spoke
        if self.steps <= self.warmup_steps:
            return False
        self.smoothed += self.smoothing * (pause_prob - self.smoothed)
        if self.speech_seen and self.smoothed >= self.threshold:
            self.speech_seen = False
            return True
        return False


def segment_limits(config: SttConfig, audio_delay_seconds: float, wall_steps: int = WALL_STEPS) -> tuple[int, int, int]:
    """(flush frames, most frames in a segment, frames before a reset at a pause): a segment plus the
    silence that flushes its last words always stays under the wall."""
    flush = math.ceil(audio_delay_seconds / FRAME_SECONDS) + 2
    max_segment = min(round(config.max_segment_seconds / FRAME_SECONDS), wall_steps - flush - 1)
    return flush, max_segment, min(round(config.reset_after_seconds / FRAME_SECONDS), max_segment)


class SttEngine:
    """Streaming transcription with bounded state: `step(block)` per 80 ms, `flush()` at the end."""

    def __init__(self, model: SttModel, config: SttConfig, *, wall_steps: int = WALL_STEPS):
        self.model = model
        self.config = config
        self.flush_frames, self.max_segment, self.reset_after = segment_limits(
            config, model.audio_delay_seconds, wall_steps)
        self.use_vad = config.vad and model.has_vad
        self.pauses = PauseTracker(config.pause_threshold, config.pause_smoothing, config.vad_warmup_steps)
        self._sampler = utils.Sampler(top_k=25, temp=0)  # greedy, as Kyutai's scripts
        cfg = model.config
        self._start_text = mx.full((1, 1), cfg.text_out_vocab_size, dtype=mx.int32)
        self._padding = [mx.full((1, 1), cfg.audio_padding_token, dtype=mx.int32)] * cfg.audio_codebooks
        self._silence = np.zeros((1, 1, BLOCK), np.float32)
        self._levels: deque[float] = deque(maxlen=QUIET_WINDOW)
        self._bytes = b""  # UTF-8 bytes from byte-fallback pieces, until a character is whole
        self.frames_in = 0  # audio blocks received
        self.frames_fed = 0  # audio frames whose codes reached the LM
        self.steps = 0  # LM steps, flush steps included
        self.resets = 0
        self._encoder = ThreadPoolExecutor(1, thread_name_prefix="mimi-encode")
        self._new_segment()

    def counters(self, step_errors: int = 0) -> SttCounters:
        """The engine's counters, for the main process."""
        return SttCounters(self.frames_in, self.frames_fed, self.steps, self.resets, self.max_segment, step_errors)

    def close(self) -> None:
        """Let the encoder thread go (the model stays loaded)."""
        self._encoder.shutdown(wait=False)

    def _new_segment(self) -> None:
        self._text_in = self._start_text
        self._audio_in = self._padding
        self._pending_real = False  # are the codes in _audio_in from a real frame?
        self.segment_frames = 0
        self.pauses.new_segment()
        self._reset_reason: ResetReason | None = None
        for layer in self.model.lm.transformer_cache:
            layer.reset()
        self._mimi: MimiEncoder | None = None  # built at the segment's first frame

    def step(self, block: np.ndarray) -> list[SpeechEvent]:
        """Transcribe one 1920-sample float32 block (24 kHz mono); return the events it produced."""
        if block.shape != (BLOCK,):
            raise ValueError(f"STT blocks are {BLOCK} samples at 24 kHz, got shape {block.shape}")
        level = float(np.sqrt(np.mean(np.square(block, dtype=np.float64))))
        events: list[SpeechEvent] = []
        reason = self._reset_reason or self._boundary(level)
        if reason:
            events += self._reset(reason)
        self._levels.append(level)
        self.frames_in += 1
        self.segment_frames += 1
        events += self._encode_and_step(np.ascontiguousarray(block, np.float32)[None, None, :], real=True)
        return events

    def flush(self) -> list[SpeechEvent]:
        """End of input: feed silence so the last words come out, then start afresh."""
        events = self._drain()
        if self.pauses.speech_seen:
            self.pauses.speech_seen = False
            events.append(PhraseEnd(self.frames_in - 1, self.frames_in * FRAME_SECONDS, 1.0, "end"))
        self._new_segment()
        return events

    def _boundary(self, level: float) -> ResetReason | None:
        """Decide, before feeding a block, whether the segment must end here."""
        if self.segment_frames >= self.max_segment:
            return "limit"
        if self.segment_frames < self.reset_after:
            return None
        if self.use_vad and self.segment_frames < self.max_segment - FINAL_STRETCH:
            return None  # wait for the pause head
        return "quiet" if level <= np.quantile(self._levels, QUIET_QUANTILE) else None

    def _reset(self, reason: ResetReason) -> list[SpeechEvent]:
        closed = self.segment_frames
        events = self._drain()
        self._new_segment()
        self.resets += 1
        log.debug("STT state reset at frame %d after %d frames (%s)", self.frames_in, closed, reason)
        return [*events, SegmentReset(self.frames_in, closed, reason)]

    def _drain(self) -> list[SpeechEvent]:
        events: list[SpeechEvent] = []
        for _ in range(self.flush_frames):
            events += self._encode_and_step(self._silence, real=False)
        return events

    def _encode_and_step(self, pcm: np.ndarray, *, real: bool) -> list[SpeechEvent]:
        """Mimi encodes this frame while the LM steps on the previous one (the step never needs the new
        codes), so the codec costs no time beside the LM: the same order of operations as Kyutai's loop,
        run on two threads. rustymimi releases the GIL in encode_step and gives one frame per block."""
        if self._mimi is None:
            self._mimi = self.model.new_mimi()
        encoding = self._encoder.submit(self._mimi.encode_step, pcm)
        events = self._lm_step()
        codes = encoding.result()
        frames = 0 if codes is None else codes.shape[-1]
        if frames != 1:
            raise RuntimeError(f"the Mimi codec returned {frames} frames for one 80 ms block; the engine needs "
                               "exactly one (rustymimi 0.4.1 does)")
        frame = mx.array(np.asarray(codes[0, :, 0], dtype=np.int32)).reshape(-1, 1, 1)
        self._audio_in = [frame[i] for i in range(frame.shape[0])]
        self._pending_real = real
        return events
    def _piece_text(self, token: int) -> str:
        """The piece as text: "▁" becomes a space; byte pieces are gathered into UTF-8 characters."""
        tokenizer = self.model.tokenizer
        if not tokenizer.is_byte(token):
            self._bytes = b""
            return tokenizer.id_to_piece(token).replace("▁", " ")
        self._bytes += bytes([int(tokenizer.id_to_piece(token)[3:5], 16)])
        try:
            text = self._bytes.decode("utf-8")
        except UnicodeDecodeError:
            if len(self._bytes) < 4:
                return ""  # a multi-byte character is still arriving
            text = ""
        self._bytes = b""
        return "".join(ch for ch in text if ch.isprintable())

    def _lm_step(self) -> list[SpeechEvent]:
        """One LM step: feed the previous text token and the previous frame's codes."""
        lm = self.model.lm
        text, out = lm_sample(lm, self._text_in, self._audio_in, self._sampler)
        pause = mx.softmax(lm.extra_heads[PAUSE_HEAD](out), axis=-1)[0, 0, 0] if self.use_vad else None
        mx.eval([text] if pause is None else [text, pause])
        if self._pending_real:
            self.frames_fed += 1
        self._text_in = text.reshape(1, 1).astype(mx.int32)
        self.steps += 1
        token = int(text.item())
        step = self.frames_in - 1
        events: list[SpeechEvent] = []
        if token not in NO_TEXT_TOKENS:
            piece = self._piece_text(token)
            t = max(0.0, self.frames_in * FRAME_SECONDS - self.model.audio_delay_seconds)
            events.append(Word(piece, token, step, round(t, 3)))
        if pause is not None and self.pauses.update(float(pause.item()), bool(events)):
            events.append(PhraseEnd(step, round(self.frames_in * FRAME_SECONDS, 3), round(self.pauses.smoothed, 3)))
            if self.segment_frames >= self.reset_after:
                self._reset_reason = "pause"
        return events


def lm_sample(lm: models.Lm, text: mx.array, audio: list[mx.array],
              sampler: utils.Sampler) -> tuple[mx.array, mx.array]:
    """The LM's next text token and transformer output for one step (lazy arrays).

    `Lm._sample` is what moshi_mlx's own `LmGen.step` calls; it is private, so this is the one
    place that calls it, for moshi-mlx 0.3.0 (pinned). With dep_q = 0 there is no depformer, so
    the audio sampler is unused.
    """
    text_token, _, out = lm._sample(text, audio, sampler, sampler)
    return text_token, out
