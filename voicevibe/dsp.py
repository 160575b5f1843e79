"""Input conditioning before the speech model: pre-gain, AGC, noise gate, safety limiter, meters.

Runs on the audio thread (never in the audio callback), one 80 ms block at a time. The core is
the pure function `process(block, params, state) -> (out, state, levels)`; `Dsp` wraps it for
live use with parameters a GUI thread may change at any time.

Control law. Gains are decided on a fixed grid of HOP samples counted from the start of the
stream, not from the start of a block, and the partial hop is carried in `DspState`; so any
block split gives the same output. At each hop boundary the peak of the hop just finished
(after pre-gain, before AGC) updates the gate and the AGC, and during the next hop every gain
moves linearly from its old value to its new one: gains are ramps, never steps. Decisions use
only past samples: nothing is delayed and no sample is dropped. A per-sample peak limiter
(instant attack, smooth release) then guarantees |out| <= 1 while the AGC is still catching
up with a sudden loud burst.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, TypedDict

import numpy as np

from voicevibe.config import SAMPLE_RATE, ConfigError, DspConfig
from voicevibe.events import Levels  # noqa: F401 - the meters this stage makes

HOP_SECONDS = 0.002  # control step: 48 samples at 24 kHz, 40 per 1920-sample block
DETECTOR_RELEASE_SECONDS = 0.030  # AGC level detector decay: bridges a 50 Hz voice's troughs (10 ms)
PREGAIN_GLIDE_SECONDS = 0.020  # a gain_db slider move glides over ~20 ms instead of stepping
LIMITER_RELEASE_SECONDS = 0.050  # the safety limiter lets go over ~50 ms after an over
FULL_SCALE = 1.0  # input is clipped here (as an ADC would), output never exceeds it
AGC_MIN_GAIN = 1.0 / 64.0  # -36 dB, below the x0.06 that +24 dB pre-gain at full scale needs for 0.95
SETTLED = 1e-12  # ln-gain distance at which a glide snaps onto its target


@dataclass(frozen=True)
class DspState:
    """What `process` carries from one block to the next; the default is silence before the start."""

    hop_pos: int = 0  # samples already processed in the current control hop
    hop_peak: float = 0.0  # peak |pre-gained input| of the current (hop_pos > 0) or last full hop
    pregain_ln: float | None = None  # ln pre-gain at the latest boundary; None: take gain_db as is
    pregain_from: float = 1.0  # each *_from/*_to pair is the current hop's linear ramp
    pregain_to: float = 1.0
    agc_ln: float = 0.0
    agc_from: float = 1.0
    agc_to: float = 1.0
    gate_from: float = 0.0
    gate_to: float = 0.0
    gate_open: bool = False
    quiet_samples: int = 0  # how long the open gate has seen peaks under the close threshold
    envelope: float = 0.0  # AGC level detector (peak, instant attack, DETECTOR_RELEASE_SECONDS decay)
    limiter: float = 1.0  # limiter envelope (>= 1; 1 = not limiting)
    weak_samples: int = 0  # samples since the raw input last reached weak_peak

    @classmethod
    def initial(cls) -> DspState:
        """The state before the first block: gate closed, unity AGC gain."""
        return cls()


@dataclass(frozen=True)
class _Law:
    """Per-hop constants derived from one DspConfig and sample rate."""

    hop: int
    pregain_ln: float
    pregain_keep: float  # share of the remaining pre-gain glide left after one hop
    agc: bool
    target_ln: float
    max_ln: float
    min_ln: float
    boost_below: float  # detector levels under this get the full max gain
    attack: float  # share of the gap to the wanted gain closed per hop when reducing
    release: float  # ... when recovering
    detector_keep: float
    gate: bool
    open_at: float
    close_below: float
    hold_samples: int
    fade_step: float  # gate gain change per hop
    limiter_log_decay: float  # ln of the limiter's per-sample decay
    weak_peak: float
    weak_samples: float


def _per_hop(seconds: float, hop: int, sample_rate: int) -> float:
    """Decay factor per hop of a one-pole smoother with this time constant."""
    return math.exp(-hop / (seconds * sample_rate))


@lru_cache(maxsize=32)
def _law(params: DspConfig, sample_rate: int) -> _Law:
    """Turn user-facing settings into per-hop coefficients (cached: params are frozen)."""
    if sample_rate <= 0:
        raise ValueError(f"sample_rate = {sample_rate!r}: must be a positive number of samples/s")
    hop = max(1, round(HOP_SECONDS * sample_rate))
    ms = sample_rate / 1000.0
    return _Law(
        hop=hop,
        pregain_ln=params.gain_db / 20.0 * math.log(10.0),
        pregain_keep=_per_hop(PREGAIN_GLIDE_SECONDS, hop, sample_rate),
        agc=params.agc,
        target_ln=math.log(params.agc_target_peak),
        max_ln=math.log(params.agc_max_gain),
        min_ln=math.log(AGC_MIN_GAIN),
        boost_below=params.agc_target_peak / params.agc_max_gain,
        attack=1.0 - _per_hop(params.agc_attack_ms / 1000.0, hop, sample_rate),
        release=1.0 - _per_hop(params.agc_release_ms / 1000.0, hop, sample_rate),
        detector_keep=_per_hop(DETECTOR_RELEASE_SECONDS, hop, sample_rate),
        gate=params.gate,
        open_at=params.gate_threshold,
        close_below=params.gate_threshold * 10.0 ** (-params.gate_hysteresis_db / 20.0),
        hold_samples=round(params.gate_hold_ms * ms),
        fade_step=hop / max(hop, round(params.gate_fade_ms * ms)),  # at least one hop: no steps
        limiter_log_decay=-1.0 / (LIMITER_RELEASE_SECONDS * sample_rate),
        weak_peak=params.weak_peak,
        weak_samples=params.weak_seconds * sample_rate,
    )


@lru_cache(maxsize=8)
def _fractions(hop: int) -> np.ndarray:
    """Ramp position of each sample in a hop: 1/hop ... 1 (the hop's last sample has the new gain)."""
    frac = (np.arange(1, hop + 1, dtype=np.float64) / hop)[None, :]
    frac.flags.writeable = False
    return frac


def _ramp(ctrl: np.ndarray, hop: int) -> np.ndarray:
    """Per-sample gains over whole hops, linear from each boundary value to the next."""
    start = ctrl[:-1, None]
    return (start + (ctrl[1:, None] - start) * _fractions(hop)).ravel()


def _limit(y: np.ndarray, level: float, log_decay: float) -> tuple[np.ndarray, float]:
    """Peak limiter e[n] = max(1, |y[n]|, e[n-1] * decay), out = y / e, solved without a loop."""
    mag = np.abs(y)
    if level <= FULL_SCALE and mag.max() <= FULL_SCALE:
        return y, FULL_SCALE
    # In logs the recursion is a running max: ln e[n] = max(0, ln level + (n+1) d,
    # n d + max_{k<=n} (ln|y[k]| - k d)), with d = ln decay < 0.
    ramp = np.arange(y.size, dtype=np.float64) * log_decay
    env = np.maximum.accumulate(np.log(np.maximum(mag, FULL_SCALE)) - ramp) + ramp
    np.maximum(env, ramp + (log_decay + math.log(level)), out=env)
    np.maximum(env, 0.0, out=env)
    env = np.exp(env)
    return y / env, float(env[-1])


def _lerp(start: float, end: float, hop_pos: int, hop: int) -> float:
    """A ramp's value at the last processed sample of the current hop."""
    return start + (end - start) * ((hop_pos or hop) / hop)


def _levels(state: DspState, law: _Law, peak_in: float, rms_in: float, peak_out: float,
            rms_out: float) -> Levels:
    """Meters for a block that left the DSP in `state`."""
    if state.pregain_ln is None:
        gain = math.exp(law.pregain_ln)
    else:
        gain = (_lerp(state.pregain_from, state.pregain_to, state.hop_pos, law.hop)
                * _lerp(state.agc_from, state.agc_to, state.hop_pos, law.hop))
    return Levels(peak_in=peak_in, rms_in=rms_in, peak_out=peak_out, rms_out=rms_out, gain=gain,
                  gate_open=state.gate_open or not law.gate,
                  weak_signal=state.weak_samples >= law.weak_samples)


def _pregain(state: DspState, law: _Law, hops: int) -> tuple[np.ndarray, float]:
    """Pre-gain at each hop boundary of this block (it glides toward gain_db), and its final ln."""
    start = state.hop_pos
    first_new = 1 if start else 0
    pg = np.empty(hops + 1)
    pg[0] = state.pregain_from if start else state.pregain_to
    if start:
        pg[1] = state.pregain_to
    pregain_ln = law.pregain_ln if state.pregain_ln is None else state.pregain_ln
    if pregain_ln == law.pregain_ln:
        pg[first_new + 1:] = state.pregain_to
        return pg, pregain_ln
    for j in range(first_new, hops):
        pregain_ln = law.pregain_ln + (pregain_ln - law.pregain_ln) * law.pregain_keep
        if abs(pregain_ln - law.pregain_ln) < SETTLED:
            pregain_ln = law.pregain_ln
        pg[j + 1] = math.exp(pregain_ln)
    return pg, pregain_ln


class _GateAgc(TypedDict):
    """The gate's and the AGC's part of the next DspState."""

    agc_ln: float
    agc_from: float
    agc_to: float
    gate_from: float
    gate_to: float
    gate_open: bool
    quiet_samples: int
    envelope: float


def _gate_and_agc(peaks: list[float], state: DspState,
                  law: _Law) -> tuple[np.ndarray, _GateAgc]:
    """AGC x gate gain at each hop boundary, decided from the peak of the hop before; new state."""
    start, hops = state.hop_pos, len(peaks)
    agc_then = state.agc_from if start else state.agc_to
    gate_then = state.gate_from if start else state.gate_to
    after = [state.agc_to * state.gate_to] * hops  # at the end of each hop
    is_open, quiet, envelope = state.gate_open, state.quiet_samples, state.envelope
    agc_ln, agc_gain, gate_gain = state.agc_ln, state.agc_to, state.gate_to
    agc_from, gate_from = agc_then, gate_then
    # Locals: this loop runs 40 times per block on the audio thread.
    agc_on, gate_on, open_at, close_below = law.agc, law.gate, law.open_at, law.close_below
    attack, release, boost_below = law.attack, law.release, law.boost_below
    max_ln, min_ln, target_ln = law.max_ln, law.min_ln, law.target_ln
    hold, keep, fade_step, hop = law.hold_samples, law.detector_keep, law.fade_step, law.hop
    log = math.log
    for j in range(1 if start else 0, hops):
        agc_from, gate_from = agc_gain, gate_gain
        peak = peaks[j - 1] if j else state.hop_peak
        if peak >= open_at:
            is_open, quiet = True, 0
        elif is_open:
            if peak >= close_below:
                quiet = 0
            else:
                quiet += hop
                if quiet >= hold:
                    is_open, quiet = False, 0
        envelope = peak if peak > envelope * keep else envelope * keep
        if not agc_on:  # glide back to unity, so switching the AGC off never clicks
            if agc_ln:
                agc_ln = 0.0 if abs(agc_ln) < SETTLED else agc_ln - agc_ln * attack
                agc_gain = math.exp(agc_ln)
        elif not gate_on or (is_open and peak >= close_below):  # else frozen: no noise boost
            wanted = max_ln if envelope <= boost_below else max(min_ln, target_ln - log(envelope))
            if wanted != agc_ln:
                agc_ln += (wanted - agc_ln) * (attack if wanted < agc_ln else release)
                agc_gain = math.exp(agc_ln)
        if is_open or not gate_on:
            if gate_gain < 1.0:
                gate_gain = min(1.0, gate_gain + fade_step)
        elif gate_gain > 0.0:  # snap: 1 - 5 * 0.2 is 5.6e-17, and gated must mean exact zeros
            gate_gain = 0.0 if gate_gain - fade_step < SETTLED else gate_gain - fade_step
        after[j] = agc_gain * gate_gain
    changes = _GateAgc(agc_ln=agc_ln, agc_from=agc_from, agc_to=agc_gain, gate_from=gate_from,
                   gate_to=gate_gain, gate_open=is_open, quiet_samples=quiet, envelope=envelope)
    return np.array([agc_then * gate_then, *after]), changes


def process(block: np.ndarray, params: DspConfig, state: DspState,
            sample_rate: int = SAMPLE_RATE) -> tuple[np.ndarray, DspState, Levels]:
    """Condition one block (any length): float32 out, same length, finite, within [-1, 1]."""
    raw = np.asarray(block)
    if raw.ndim != 1:
        raise ValueError(f"dsp.process: expected a 1-D block of mono samples, got shape {raw.shape}")
    law = _law(params, sample_rate)
    n = raw.size
    if n == 0:
        return np.zeros(0, dtype=np.float32), state, _levels(state, law, 0.0, 0.0, 0.0, 0.0)
    x = raw.astype(np.float64)
    finite = np.isfinite(x)
    if not finite.all():
        x[~finite] = 0.0
    mag = np.abs(x)
    peak_in = float(mag.max())
    rms_in = math.sqrt(float(np.dot(x, x)) / n)
    if peak_in >= law.weak_peak:
        weak_samples = int(np.argmax(mag[::-1] >= law.weak_peak))
    else:
        weak_samples = state.weak_samples + n
    np.clip(x, -FULL_SCALE, FULL_SCALE, out=x)

    if state.pregain_ln is None:
        now = math.exp(law.pregain_ln)
        state = dataclasses.replace(state, pregain_ln=law.pregain_ln, pregain_from=now, pregain_to=now)
    hop, start = law.hop, state.hop_pos
    hops = (start + n + hop - 1) // hop  # hops touched, the carried partial one included
    padded = np.zeros(hops * hop)  # the block laid on the stream's hop grid
    padded[start:start + n] = x
    pg, pregain_ln = _pregain(state, law, hops)
    padded *= _ramp(pg, hop)
    peaks = np.abs(padded).reshape(hops, hop).max(axis=1).tolist()
    if start:
        peaks[0] = max(peaks[0], state.hop_peak)
    gains, changes = _gate_and_agc(peaks, state, law)
    padded *= _ramp(gains, hop)
    y, limiter = _limit(padded[start:start + n], state.limiter, law.limiter_log_decay)
    np.clip(y, -FULL_SCALE, FULL_SCALE, out=y)

    new_state = DspState(hop_pos=(start + n) % hop, hop_peak=peaks[-1], pregain_ln=pregain_ln,
                         pregain_from=float(pg[-2]), pregain_to=float(pg[-1]), limiter=limiter,
                         weak_samples=weak_samples, **changes)
    levels = _levels(new_state, law, peak_in, rms_in, float(np.abs(y).max()),
                     math.sqrt(float(np.dot(y, y)) / n))
    return y.astype(np.float32), new_state, levels


class Dsp:
    """Live DSP for one input: thread-safe parameter changes, one params snapshot per block.

    `process` must be called from a single thread (the audio thread); `update`, `params` and
    `reset` may be called from any thread and take effect at the next block boundary.
    """

    def __init__(self, params: DspConfig, sample_rate: int = SAMPLE_RATE) -> None:
        self._lock = threading.Lock()
        self._params = params
        self._sample_rate = sample_rate
        self._state = DspState.initial()
        self._reset_pending = False
        _law(params, sample_rate)  # fail now, not on the first block, for a bad sample rate

    @property
    def params(self) -> DspConfig:
        """The settings the next block will use."""
        with self._lock:
            return self._params

    def update(self, **changes: Any) -> DspConfig:  # Any: each setting has its own type; DspConfig checks them
        """Change some settings atomically; raises ConfigError (params unchanged) on a bad one."""
        known = {f.name for f in dataclasses.fields(DspConfig)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise ConfigError(f"unknown dsp setting {', '.join(unknown)}; "
                              f"known: {', '.join(sorted(known))}")
        with self._lock:
            self._params = dataclasses.replace(self._params, **changes)
            return self._params

    def reset(self) -> None:
        """Forget all signal history (gate closed, unity AGC) from the next block on."""
        with self._lock:
            self._reset_pending = True

    def process(self, block: np.ndarray) -> tuple[np.ndarray, Levels]:
        """Condition one block with the current settings; see the module-level `process`."""
        with self._lock:
            params = self._params
            if self._reset_pending:
                self._state, self._reset_pending = DspState.initial(), False
        out, self._state, levels = process(block, params, self._state, self._sample_rate)
        return out, levels
