"""DSP tests on synthetic signals: AGC, gate, meters, finiteness, block-size invariance, reference."""

from __future__ import annotations

import dataclasses
import math
import threading
import time

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from voicevibe import dsp
from voicevibe.config import BLOCK, SAMPLE_RATE, ConfigError, DspConfig
from voicevibe.dsp import Dsp, DspState, process
from voicevibe.events import Levels

FS = SAMPLE_RATE
HOP = 48  # 2 ms: the DSP's control step at 24 kHz
DEFAULT = DspConfig()
QUICK = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def sine(amp: float, seconds: float, freq: float = 220.0) -> np.ndarray:
    """A sine burst of peak `amp` (float32)."""
    t = np.arange(round(seconds * FS)) / FS
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def silence(seconds: float) -> np.ndarray:
    return np.zeros(round(seconds * FS), dtype=np.float32)


def noise(amp: float, seconds: float, seed: int = 0) -> np.ndarray:
    """Uniform noise with peak close to `amp` (float32)."""
    return np.random.default_rng(seed).uniform(-amp, amp, round(seconds * FS)).astype(np.float32)


def run(x: np.ndarray, params: DspConfig = DEFAULT, sizes: int | list[int] = BLOCK,
        state: DspState | None = None) -> tuple[np.ndarray, DspState, list[Levels]]:
    """Process `x` block by block (a fixed size, or a list of sizes covering x)."""
    state = DspState.initial() if state is None else state
    if isinstance(sizes, int):
        sizes = [sizes] * (len(x) // sizes) + ([len(x) % sizes] if len(x) % sizes else [])
    assert sum(sizes) == len(x)
    outs, levels, pos = [], [], 0
    for size in sizes:
        out, state, lv = process(x[pos:pos + size], params, state)
        assert out.shape == (size,) and out.dtype == np.float32
        outs.append(out)
        levels.append(lv)
        pos += size
    return np.concatenate(outs) if outs else np.zeros(0, np.float32), state, levels


def gain_ratio(x: np.ndarray, y: np.ndarray, floor: float = 0.005) -> np.ndarray:
    """Applied gain out/in per sample, NaN where the input is too small to tell."""
    x64, y64 = x.astype(np.float64), y.astype(np.float64)
    mask = np.abs(x64) >= floor
    return np.where(mask, y64 / np.where(mask, x64, 1.0), np.nan)


def max_gain_step(x: np.ndarray, y: np.ndarray) -> float:
    """Largest sample-to-sample change of the applied gain: a click shows up here."""
    return float(np.nanmax(np.abs(np.diff(gain_ratio(x, y)))))


def assert_states_close(a: DspState, b: DspState, tol: float = 1e-9) -> None:
    for f in dataclasses.fields(DspState):
        va, vb = getattr(a, f.name), getattr(b, f.name)
        if isinstance(va, float):
            assert va == pytest.approx(vb, rel=tol, abs=tol), f.name
        else:
            assert va == vb, f.name


def mixed_signal(seed: int) -> np.ndarray:
    """Silence, speech-level and quiet sines, noise under the gate, a loud burst, full-scale noise."""
    rng = np.random.default_rng(seed)
    return np.concatenate([
        silence(0.05), sine(0.1, 0.3, 180.0), noise(0.01, 0.35, seed), sine(0.8, 0.12, 300.0),
        sine(0.03, 0.15), silence(0.03), rng.uniform(-1, 1, 2000).astype(np.float32),
        sine(0.2, 0.1, 90.0)])


# --- shape, dtype, finiteness ---------------------------------------------------------------

@pytest.mark.parametrize("n", [0, 1, 2, 47, 48, 49, BLOCK, 5000])
def test_output_has_the_input_length_and_float32(n: int) -> None:
    out, state, levels = process(sine(0.5, n / FS), DEFAULT, DspState.initial())
    assert out.shape == (n,) and out.dtype == np.float32
    assert state.hop_pos == n % HOP


def test_empty_block_changes_nothing() -> None:
    _, state, _ = run(sine(0.3, 0.1), sizes=1000)
    out, after, levels = process(np.zeros(0, np.float32), DEFAULT, state)
    assert out.size == 0 and after == state
    assert (levels.peak_in, levels.rms_in, levels.peak_out, levels.rms_out) == (0, 0, 0, 0)


def test_rejects_multichannel_blocks() -> None:
    with pytest.raises(ValueError, match="1-D"):
        process(np.zeros((BLOCK, 2), np.float32), DEFAULT, DspState.initial())


def test_non_finite_and_huge_input_gives_finite_bounded_output() -> None:
    bad = sine(0.5, BLOCK / FS)
    bad[::5] = np.nan
    bad[1::7] = np.inf
    bad[2::11] = -np.inf
    bad[3::13] = 1e30
    bad[4::17] = -np.finfo(np.float32).max
    x = np.concatenate([sine(0.2, 0.3), bad, sine(0.2, 2.0)])
    out, state, levels = run(x, dataclasses.replace(DEFAULT, gain_db=24.0, agc_max_gain=64.0))
    assert np.isfinite(out).all() and np.abs(out).max() <= 1.0
    for lv in levels:
        assert all(math.isfinite(v) for v in (lv.peak_in, lv.rms_in, lv.peak_out, lv.rms_out, lv.gain))
    assert all(math.isfinite(getattr(state, f.name)) for f in dataclasses.fields(DspState)
               if isinstance(getattr(state, f.name), float))
    assert levels[-1].peak_out > 0.7  # the AGC recovers from the garbage at its release speed


@QUICK
@given(hnp.arrays(np.float32, st.integers(0, 300),
                  elements=st.floats(width=32, allow_nan=True, allow_infinity=True)))
def test_any_float32_input_gives_finite_output_in_range(x: np.ndarray) -> None:
    state = run(sine(0.3, 0.2))[1]  # gate open, AGC working
    out, state, levels = process(x, DEFAULT, state)
    assert out.shape == x.shape and out.dtype == np.float32
    assert np.isfinite(out).all() and np.all(np.abs(out) <= 1.0)
    assert math.isfinite(levels.peak_in) and math.isfinite(levels.rms_in)


@QUICK
@given(seed=st.integers(0, 2**32 - 1), gain_db=st.floats(-24, 24), max_gain=st.floats(1, 64),
       attack_ms=st.floats(1, 1000), release_ms=st.floats(10, 10000))
def test_output_never_exceeds_full_scale(seed: int, gain_db: float, max_gain: float,
                                         attack_ms: float, release_ms: float) -> None:
    params = dataclasses.replace(DEFAULT, gain_db=gain_db, agc_max_gain=max_gain,
                                 agc_attack_ms=attack_ms, agc_release_ms=release_ms)
    rng = np.random.default_rng(seed)
    x = np.concatenate([sine(0.05, 0.5), np.sign(sine(1.0, 0.1, 97.0)),
                        rng.uniform(-1, 1, 3000).astype(np.float32), sine(0.02, 0.2)])
    out = run(x, params, sizes=777)[0]
    assert np.abs(out).max() <= 1.0


# --- AGC ------------------------------------------------------------------------------------

def test_agc_brings_a_quiet_sine_to_the_target_peak() -> None:
    params = dataclasses.replace(DEFAULT, agc_max_gain=16.0)
    out, _, levels = run(sine(0.1, 4.8), params)
    peaks = np.abs(out).reshape(-1, BLOCK).max(axis=1)
    reached = int(np.argmax(peaks >= 0.9))
    assert 0 < reached * BLOCK / FS <= 3.5  # slow recovery (800 ms time constant), but bounded
    assert 0.93 <= peaks[-1] <= 0.951
    assert max(lv.gain for lv in levels) <= 0.951 / 0.1


def test_agc_never_exceeds_its_max_gain() -> None:
    out, _, levels = run(sine(0.02, 4.0, 440.0), dataclasses.replace(DEFAULT, gate_threshold=0.01))
    assert max(lv.gain for lv in levels) <= DEFAULT.agc_max_gain
    assert levels[-1].gain > 0.95 * DEFAULT.agc_max_gain
    assert np.abs(out).max() <= 0.02 * DEFAULT.agc_max_gain + 1e-6


def test_gain_changes_are_ramps_not_steps() -> None:
    # Gate fade-in, AGC recovery, a small rise handled by the AGC alone, a gate fade-out.
    params = dataclasses.replace(DEFAULT, agc_max_gain=16.0)
    x = np.concatenate([silence(0.2), sine(0.1, 3.0), sine(0.104, 0.5), sine(0.015, 0.6)])
    out = run(x, params)[0]
    ratio = gain_ratio(x, out)
    assert np.nanmax(ratio) > 8  # the AGC did work, and the gate closed at the end:
    assert np.all(out[-round(0.1 * FS):] == 0)
    # A fade over 10 ms moves the gain by 1/240 of its value per sample; a step would be >= 1.
    assert max_gain_step(x, out) <= np.nanmax(ratio) / 200


def test_a_loud_burst_is_reduced_fast_and_recovers_slowly() -> None:
    x = np.concatenate([sine(0.1, 2.0), sine(0.8, 0.3), sine(0.1, 2.0)])
    out, _, levels = run(x, sizes=240)  # 10 ms meter readings
    onset, end = 200, 230  # in 10 ms blocks
    assert np.abs(out).max() <= 1.0
    assert levels[onset - 1].gain > 5
    assert levels[onset + 5].gain <= 1.1 * 0.95 / 0.8  # within 60 ms
    assert levels[end + 9].gain < 1.6  # 100 ms after the burst: still low (no pumping)
    assert levels[end + 199].gain > 5  # 2 s after: recovered


def test_agc_is_frozen_while_the_gate_is_closed() -> None:
    x = np.concatenate([sine(0.1, 1.6), noise(0.005, 3.2), sine(0.1, 0.32)])  # 20, 40, 4 blocks
    out, _, levels = run(x)
    assert levels[19].gain < 0.9 * DEFAULT.agc_max_gain  # still recovering when the sine stopped
    during = [lv.gain for lv in levels[20:60]]  # hold, then closed: no noise boost
    assert max(during) == pytest.approx(min(during), rel=1e-12)
    assert during[0] == pytest.approx(levels[19].gain, rel=1e-3)
    assert not levels[59].gate_open and levels[60].gate_open
    back = np.abs(out[60 * BLOCK:60 * BLOCK + 240]).max()  # first 10 ms of the sine's return
    assert back <= 0.1 * levels[19].gain * 1.001


def test_agc_off_gives_plain_pre_gain() -> None:
    params = dataclasses.replace(DEFAULT, agc=False, gate=False, gain_db=6.0)
    x = sine(0.1, 0.5)
    out, _, levels = run(x, params)
    faded_in = 2 * round(params.gate_fade_ms * FS / 1000)  # the stream starts with a fade-in
    np.testing.assert_allclose(out[faded_in:], x[faded_in:] * 10 ** (6 / 20), rtol=1e-6, atol=1e-7)
    assert levels[-1].gain == pytest.approx(10 ** (6 / 20))


# --- gate -----------------------------------------------------------------------------------

def test_gate_starts_closed_and_silences_noise_exactly() -> None:
    out, _, levels = run(noise(0.03, 1.0))  # under the 0.04 threshold
    assert np.all(out == 0) and not any(lv.gate_open for lv in levels)


@pytest.mark.parametrize("hold_ms", [0.0, 100.0, 300.0])
def test_gate_closes_after_hold_then_fades_to_exact_zeros(hold_ms: float) -> None:
    params = dataclasses.replace(DEFAULT, gate_hold_ms=hold_ms, agc=False)
    end = round(0.5 * FS)  # on the hop grid
    x = np.concatenate([sine(0.2, 0.5), noise(0.01, 1.0, seed=3)])
    out = run(x, params)[0]
    ratio = gain_ratio(x, out, floor=0.002)
    hold, fade = round(hold_ms * FS / 1000), round(params.gate_fade_ms * FS / 1000)
    fading = end + int(np.argmax(np.nan_to_num(ratio[end:], nan=1.0) < 1.0 - 1e-9))
    assert hold <= fading - end <= hold + HOP  # one hop to notice the level fell
    assert np.all(out[fading + fade:] == 0)
    assert np.any(out[fading + fade - HOP:fading + fade] != 0)  # the fade takes its full time
    steps = np.abs(np.diff(ratio[fading - 1:fading + fade]))
    assert np.nanmax(steps) <= 1.5 / fade  # a ramp, not a click


def test_gate_passes_speech_level_sine() -> None:
    x = sine(0.1, 1.0)
    out, _, levels = run(x, dataclasses.replace(DEFAULT, agc=False))
    settled = round(0.02 * FS)
    np.testing.assert_allclose(out[settled:], x[settled:], rtol=1e-6, atol=1e-7)
    assert all(lv.gate_open for lv in levels)


def test_gate_hysteresis_keeps_the_state_between_thresholds() -> None:
    params = dataclasses.replace(DEFAULT, agc=False)  # close threshold: 0.04 / 2 = 0.02
    between = sine(0.03, 2.0)
    was_open = run(np.concatenate([sine(0.1, 0.3), between]), params)
    assert all(lv.gate_open for lv in was_open[2])
    np.testing.assert_allclose(was_open[0][-len(between):], between, rtol=1e-6, atol=1e-7)
    was_closed = run(np.concatenate([silence(0.3), between]), params)
    assert not any(lv.gate_open for lv in was_closed[2])
    assert np.all(was_closed[0] == 0)
    under = run(np.concatenate([sine(0.1, 0.3), sine(0.019, 1.0)]), params)
    assert not under[2][-1].gate_open and np.all(under[0][-BLOCK:] == 0)


def test_gate_off_lets_everything_through() -> None:
    x = noise(0.01, 0.5)
    out, _, levels = run(x, dataclasses.replace(DEFAULT, gate=False, agc=False))
    faded_in = 2 * round(DEFAULT.gate_fade_ms * FS / 1000)  # the stream starts with a fade-in
    np.testing.assert_allclose(out[faded_in:], x[faded_in:], rtol=1e-6, atol=1e-7)
    assert all(lv.gate_open for lv in levels)


# --- meters ---------------------------------------------------------------------------------

def test_levels_measure_raw_input_and_output() -> None:
    x = np.concatenate([sine(0.1, 1.0), sine(0.5, 0.08, 250.0)])  # 20 whole periods
    _, _, levels = run(x, dataclasses.replace(DEFAULT, agc=False, gain_db=-6.0))
    last = levels[-1]
    assert last.peak_in == pytest.approx(0.5, rel=1e-3)
    assert last.rms_in == pytest.approx(0.5 / math.sqrt(2), rel=1e-3)
    assert last.peak_out == pytest.approx(0.5 * 10 ** (-6 / 20), rel=1e-3)
    assert last.rms_out == pytest.approx(last.rms_in * 10 ** (-6 / 20), rel=1e-3)


def test_weak_signal_after_weak_seconds_and_cleared_by_a_loud_block() -> None:
    quiet = sine(0.03, 4.0)  # under weak_peak = 0.05
    _, state, levels = run(quiet)
    flags = [lv.weak_signal for lv in levels]
    first = math.ceil(DEFAULT.weak_seconds * FS / BLOCK) - 1  # block whose end completes 3 s
    assert not any(flags[:first]) and all(flags[first:])
    out, state, lv = process(sine(0.5, BLOCK / FS), DEFAULT, state)
    assert not lv.weak_signal
    _, _, levels = run(quiet, state=state)
    assert not levels[first - 1].weak_signal and levels[first].weak_signal


# --- block-size invariance and the reference ------------------------------------------------

@pytest.mark.parametrize("size", [BLOCK, 480, 7, 1])
def test_block_size_does_not_change_the_output(size: int) -> None:
    x = mixed_signal(1)[:round(0.4 * FS)] if size == 1 else mixed_signal(1)
    whole, whole_state, _ = run(x, sizes=len(x))
    out, state, _ = run(x, sizes=size)
    np.testing.assert_allclose(out, whole, rtol=0, atol=1e-6)
    assert_states_close(state, whole_state)


@QUICK
@given(seed=st.integers(0, 2**32 - 1), cuts=st.lists(st.integers(1, 2500), min_size=1, max_size=60))
def test_random_block_sizes_do_not_change_the_output(seed: int, cuts: list[int]) -> None:
    x = mixed_signal(seed)
    sizes, total = [], 0
    for c in cuts:
        if total + c >= len(x):
            break
        sizes.append(c)
        total += c
    sizes.append(len(x) - total)
    # Start mid-glide: the pre-gain moves from -12 to +12 dB and the AGC is switched off.
    start = run(sine(0.2, 0.1), dataclasses.replace(DEFAULT, gain_db=-12.0))[1]
    params = dataclasses.replace(DEFAULT, gain_db=12.0, agc=seed % 2 == 0)
    whole, whole_state, _ = run(x, params, sizes=len(x), state=start)
    out, state, _ = run(x, params, sizes=sizes, state=start)
    np.testing.assert_allclose(out, whole, rtol=0, atol=1e-6)
    assert_states_close(state, whole_state)


def reference(x: np.ndarray, p: DspConfig) -> np.ndarray:
    """The documented law, sample by sample in plain Python (no glide: gain_db fixed from the start)."""
    ms = FS / 1000
    pregain = 10 ** (p.gain_db / 20)
    attack = 1 - math.exp(-HOP / (p.agc_attack_ms * ms))
    release = 1 - math.exp(-HOP / (p.agc_release_ms * ms))
    detector_keep = math.exp(-HOP / (30 * ms))
    close = p.gate_threshold * 10 ** (-p.gate_hysteresis_db / 20)
    hold = round(p.gate_hold_ms * ms)
    fade_step = HOP / max(HOP, round(p.gate_fade_ms * ms))
    limiter_keep = math.exp(-1 / (50 * ms))
    is_open, quiet, env, agc_ln, gate = False, 0, 0.0, 0.0, 0.0
    g_from = g_to = 0.0  # AGC x gate gain ramp of the current hop
    peak = last_peak = 0.0
    limiter = 1.0
    out = np.zeros(len(x))
    for i, sample in enumerate(x.astype(np.float64)):
        if i % HOP == 0:  # a hop boundary: decide from the hop that just ended
            last_peak, peak = peak, 0.0
            if last_peak >= p.gate_threshold:
                is_open, quiet = True, 0
            elif is_open and last_peak < close:
                quiet += HOP
                if quiet >= hold:
                    is_open, quiet = False, 0
            elif is_open:
                quiet = 0
            env = max(last_peak, env * detector_keep)
            if not p.agc:
                agc_ln -= agc_ln * attack
            elif not p.gate or (is_open and last_peak >= close):
                wanted = math.log(p.agc_max_gain) if env == 0 else min(
                    math.log(p.agc_max_gain),
                    max(math.log(1 / 64), math.log(p.agc_target_peak) - math.log(env)))
                agc_ln += (wanted - agc_ln) * (attack if wanted < agc_ln else release)
            if is_open or not p.gate:
                gate = min(1.0, gate + fade_step)
            else:
                gate = max(0.0, gate - fade_step)
                gate = 0.0 if gate < 1e-12 else gate
            g_from, g_to = g_to, math.exp(agc_ln) * gate
        t = (i % HOP + 1) / HOP
        v = min(1.0, max(-1.0, sample)) * pregain
        peak = max(peak, abs(v))
        y = v * (g_from + (g_to - g_from) * t)
        limiter = max(1.0, abs(y), limiter * limiter_keep)
        out[i] = y / limiter
    return out


@pytest.mark.parametrize("changes", [
    {}, {"agc": False}, {"gate": False, "gain_db": 12.0}, {"gate_hold_ms": 20.0, "gate_fade_ms": 0.0},
    {"agc_attack_ms": 1.0, "agc_release_ms": 10.0, "agc_max_gain": 64.0},
])
def test_matches_the_per_sample_reference(changes: dict) -> None:
    params = dataclasses.replace(DEFAULT, **changes)
    x = mixed_signal(7)[:round(0.6 * FS)]
    x = np.concatenate([x, sine(0.9, 0.05, 500.0), noise(0.01, 0.1)])  # also exercises the limiter
    out = run(x, params, sizes=1000)[0]
    np.testing.assert_allclose(out, reference(x, params), rtol=0, atol=1e-6)


# --- the live holder ------------------------------------------------------------------------

def test_dsp_update_validates_and_leaves_params_unchanged_on_error() -> None:
    live = Dsp(DEFAULT)
    assert live.update(gain_db=6.0, gate=False) == dataclasses.replace(DEFAULT, gain_db=6.0, gate=False)
    before = live.params
    for bad in ({"gate_threshold": 2.0}, {"gain_db": float("nan")}, {"agc": "yes"}, {"nope": 1}):
        with pytest.raises(ConfigError):
            live.update(**bad)
        assert live.params == before


def test_dsp_update_takes_effect_at_the_next_block() -> None:
    live = Dsp(dataclasses.replace(DEFAULT, agc=False))
    hum = noise(0.01, BLOCK / FS)
    out, levels = live.process(hum)
    assert np.all(out == 0) and not levels.gate_open
    live.update(gate=False)
    out, levels = live.process(hum)
    assert levels.gate_open and out[0] != 0  # the fade-in starts on the first sample
    assert abs(out[0]) < abs(hum[0])  # ... as a fade, not a jump
    np.testing.assert_allclose(out[-BLOCK // 2:], hum[-BLOCK // 2:], rtol=1e-6)


def test_pre_gain_slider_moves_glide() -> None:
    live = Dsp(dataclasses.replace(DEFAULT, agc=False, gate=False))
    x = sine(0.05, 0.4)
    first, _ = live.process(x[:BLOCK])
    live.update(gain_db=24.0)
    rest = np.concatenate([live.process(x[i:i + BLOCK])[0] for i in range(BLOCK, len(x), BLOCK)])
    out = np.concatenate([first, rest])
    assert max_gain_step(x, out) < 0.05  # a step would be 15
    assert np.nanmax(gain_ratio(x, out)[-BLOCK:]) == pytest.approx(10 ** (24 / 20), rel=1e-6)


def test_dsp_reset_forgets_history() -> None:
    live = Dsp(DEFAULT)
    for _ in range(20):
        live.process(sine(0.1, BLOCK / FS))
    live.reset()
    out, levels = live.process(noise(0.03, BLOCK / FS))
    assert np.all(out == 0) and levels.gain == 1.0 and not levels.gate_open


def test_dsp_updates_from_another_thread_while_processing() -> None:
    live = Dsp(DEFAULT)
    errors: list[BaseException] = []
    rejected = 0
    done = threading.Event()
    last_good: list[DspConfig] = []

    def slider() -> None:
        nonlocal rejected
        rng = np.random.default_rng(0)
        try:
            while not done.is_set():
                last_good.append(live.update(gain_db=float(rng.uniform(-24, 24)),
                                             gate_threshold=float(rng.uniform(0, 0.1)),
                                             agc=bool(rng.integers(2))))
                try:
                    live.update(gain_db=99.0)
                except ConfigError:
                    rejected += 1
        except BaseException as e:  # noqa: BLE001 - reported to the main thread below
            errors.append(e)

    thread = threading.Thread(target=slider)
    thread.start()
    try:
        x = np.concatenate([sine(0.3, 1.0), noise(0.02, 1.0)])
        for i in range(0, len(x), BLOCK):
            out, levels = live.process(x[i:i + BLOCK])
            assert out.shape == (BLOCK,) and np.isfinite(out).all() and np.abs(out).max() <= 1.0
            time.sleep(0)
    finally:
        done.set()
        thread.join(timeout=5)
    assert not thread.is_alive() and not errors
    assert rejected > 0 and live.params == last_good[-1]


def test_module_constants_match_the_tests_assumptions() -> None:
    assert round(dsp.HOP_SECONDS * FS) == HOP and BLOCK % HOP == 0
