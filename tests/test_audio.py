"""Audio sources: re-blocking, file decoding/resampling/pacing, device choice, the mic callback path,
and a real PortAudio recording from a PulseAudio virtual microphone."""

from __future__ import annotations

import math
import shutil
import subprocess
import sys
import threading
import time
import tracemalloc
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import sounddevice as sd
import soundfile as sf
import soxr
from hypothesis import given, settings
from hypothesis import strategies as st

from voicevibe import audio
from voicevibe.audio import AudioError, FileSource, InputDevice, MicSource, Reblocker
from voicevibe.config import BLOCK, SAMPLE_RATE

sys.path.insert(0, str(Path(__file__).parent))
from support import pulse
from support.devices import fake_device, install_devices

# ---------------------------------------------------------------- helpers

def tone(freq: float, rate: int, seconds: float, amp: float = 0.5) -> np.ndarray:
    """A float32 sine."""
    t = np.arange(round(rate * seconds)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_frequency(x: np.ndarray, rate: int) -> float:
    """Dominant frequency, interpolated between FFT bins."""
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    k = int(np.argmax(spectrum[1:-1])) + 1
    a, b, c = np.log(spectrum[k - 1:k + 2] + 1e-12)
    return (k + 0.5 * (a - c) / (a - 2 * b + c)) * rate / len(x)


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def correlation(a: np.ndarray, b: np.ndarray) -> float:
    n = min(len(a), len(b))
    a, b = a[:n].astype(np.float64), b[:n].astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def expected_blocks(frames: int, rate: float) -> int:
    return math.ceil(frames * SAMPLE_RATE / rate / BLOCK)


def joined(blocks: Iterable[np.ndarray]) -> np.ndarray:
    """Concatenate blocks after checking each is one BLOCK of float32."""
    blocks = list(blocks)
    for b in blocks:
        assert b.dtype == np.float32 and b.shape == (BLOCK,)
    return np.concatenate(blocks) if blocks else np.zeros(0, np.float32)


def tool(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is needed for this test (apt install {name})"
    return path


# ---------------------------------------------------------------- Reblocker

@settings(max_examples=60, deadline=None)
@given(sizes=st.lists(st.integers(0, 5000), max_size=25), block=st.sampled_from([1, 7, 480, BLOCK]),
       seed=st.integers(0, 2**32 - 1))
def test_reblocker_reproduces_the_signal_whatever_the_chunking(sizes: list[int], block: int, seed: int) -> None:
    signal = np.random.default_rng(seed).standard_normal(sum(sizes)).astype(np.float32)
    reblocker = Reblocker(block)
    out, start = [], 0
    for size in sizes:
        out += reblocker.push(signal[start:start + size])
        start += size
        assert reblocker.pending < block
    tail = reblocker.flush()
    assert (tail is None) == (len(signal) % block == 0)
    if tail is not None:
        out.append(tail)
    assert all(b.shape == (block,) and b.dtype == np.float32 for b in out)
    assert len(out) == math.ceil(len(signal) / block)
    got = np.concatenate(out) if out else np.zeros(0, np.float32)
    np.testing.assert_array_equal(got[:len(signal)], signal)
    assert not got[len(signal):].any()
    assert reblocker.flush() is None and reblocker.pending == 0


def test_reblocker_blocks_do_not_alias_the_pushed_chunk() -> None:
    reblocker = Reblocker(4)
    chunk = np.arange(6, dtype=np.float32)
    [block] = reblocker.push(chunk)
    chunk[:] = -1
    np.testing.assert_array_equal(block, [0, 1, 2, 3])
    np.testing.assert_array_equal(reblocker.flush(), [4, 5, 0, 0])


# ---------------------------------------------------------------- FileSource: formats and content

@pytest.mark.parametrize("rate", [8000, 16000, 24000, 44100, 48000, 96000])
def test_wav_at_any_rate_becomes_24k_blocks_matching_a_reference_resample(tmp_path: Path, rate: int) -> None:
    path = tmp_path / f"tone{rate}.wav"
    sf.write(path, tone(440, rate, 1.37), rate)  # 16-bit PCM
    decoded, _ = sf.read(path, dtype="float32")
    source = FileSource(path, realtime=False)
    assert source.sample_rate == rate
    assert source.duration_seconds == pytest.approx(1.37, abs=1 / rate)

    out = joined(source.blocks())

    reference = soxr.resample(decoded, rate, SAMPLE_RATE, quality="HQ")
    assert len(out) // BLOCK == expected_blocks(len(decoded), rate)
    np.testing.assert_allclose(out[:len(reference)], reference, atol=1e-5)
    assert not out[len(reference):].any()  # zero padding only
    assert peak_frequency(out[:len(reference)], SAMPLE_RATE) == pytest.approx(440, abs=0.5)
    assert rms(out[2000:len(reference) - 2000]) == pytest.approx(0.5 / math.sqrt(2), rel=0.01)


def test_stereo_and_multichannel_are_mixed_down_to_mono(tmp_path: Path) -> None:
    rate = 44100
    left, right = tone(300, rate, 1.0, amp=0.6), tone(1000, rate, 1.0, amp=0.2)
    sf.write(tmp_path / "lr.wav", np.stack([left, right], axis=1), rate, subtype="FLOAT")
    sf.write(tmp_path / "cancel.wav", np.stack([left, -left, right, -right], axis=1), rate, subtype="FLOAT")

    mixed = joined(FileSource(tmp_path / "lr.wav", realtime=False).blocks())
    cancelled = joined(FileSource(tmp_path / "cancel.wav", realtime=False).blocks())

    reference = soxr.resample((left + right) / 2, rate, SAMPLE_RATE, quality="HQ")
    np.testing.assert_allclose(mixed[:len(reference)], reference, atol=1e-5)
    spectrum = np.abs(np.fft.rfft(mixed[:SAMPLE_RATE]))  # 1 s: bins are 1 Hz
    assert spectrum[300] / spectrum[1000] == pytest.approx(3.0, rel=0.05)  # both channels, in proportion
    assert np.abs(cancelled).max() < 1e-4  # channels averaged, not the first one taken


@pytest.fixture(scope="module")
def speech_wav(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A few seconds of espeak-ng speech (22.05 kHz mono)."""
    path = tmp_path_factory.mktemp("speech") / "speech.wav"
    subprocess.run([tool("espeak-ng"), "-w", str(path), "VoiceVibe turns spoken words into pictures on stage."],
                   check=True, capture_output=True)
    return path


def encode(kind: str, src: Path, dst_dir: Path) -> Path:
    """Make a flac (sox), ogg (soundfile) or mp3 (ffmpeg) of `src`, at 44.1 kHz stereo for the lossy ones."""
    data, rate = sf.read(src, dtype="float32")
    if kind == "flac":
        dst = dst_dir / "speech.flac"
        subprocess.run([tool("sox"), str(src), str(dst)], check=True, capture_output=True)
    elif kind == "ogg":
        dst = dst_dir / "speech.ogg"
        up = soxr.resample(data, rate, 44100)
        sf.write(dst, np.stack([up, up], axis=1), 44100, format="OGG", subtype="VORBIS")
    else:
        dst = dst_dir / "speech.mp3"
        subprocess.run([tool("ffmpeg"), "-hide_banner", "-loglevel", "error", "-y", "-i", str(src),
                        "-ar", "44100", "-ac", "2", "-codec:a", "libmp3lame", "-b:a", "192k", str(dst)],
                       check=True, capture_output=True)
    return dst


@pytest.mark.parametrize("kind", ["flac", "ogg", "mp3"])
def test_compressed_formats_decode_resample_and_keep_the_content(tmp_path: Path, speech_wav: Path,
                                                                  kind: str) -> None:
    path = encode(kind, speech_wav, tmp_path)
    decoded, rate = sf.read(path, dtype="float32", always_2d=True)
    mono = decoded.mean(axis=1, dtype=np.float32)

    out = joined(FileSource(path, realtime=False).blocks())

    assert len(out) // BLOCK == expected_blocks(len(decoded), rate)
    reference = soxr.resample(mono, rate, SAMPLE_RATE, quality="HQ")
    assert correlation(out, reference) > 0.9999
    # And the codec kept the speech itself: compare with the original wav, aligned.
    original, original_rate = sf.read(speech_wav, dtype="float32")
    original = soxr.resample(original, original_rate, SAMPLE_RATE)
    lag = round(best_lag(out, original))
    assert abs(lag) < 0.1 * SAMPLE_RATE  # encoder delay only
    assert correlation(out[max(lag, 0):], original[max(-lag, 0):]) > 0.95


def test_long_file_is_streamed_not_loaded_whole(tmp_path: Path) -> None:
    rate, minutes = 8000, 10
    path = tmp_path / "long.wav"
    minute = tone(440, rate, 60.0, amp=0.3)
    with sf.SoundFile(path, "w", rate, 1, subtype="PCM_16") as f:
        for _ in range(minutes):
            f.write(minute)
    whole_file_bytes = minutes * 60 * SAMPLE_RATE * 4  # 57.6 MB as 24 kHz float32
    source = FileSource(path, realtime=False)
    assert source.duration_seconds == pytest.approx(minutes * 60)
    count = 0
    tracemalloc.start()
    try:
        for block in source.blocks():  # noqa: B007 - the last block is checked below
            count += 1
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert count == expected_blocks(minutes * 60 * rate, rate)
    assert block.shape == (BLOCK,)
    assert peak < whole_file_bytes / 10, f"peak {peak / 1e6:.1f} MB: the file was not streamed"


# ---------------------------------------------------------------- FileSource: pacing

@pytest.mark.timing
def test_realtime_pacing_takes_real_time_and_fast_mode_does_not(tmp_path: Path) -> None:
    path = tmp_path / "one_second.wav"
    sf.write(path, tone(440, 16000, 1.0), 16000)
    n_blocks = expected_blocks(16000, 16000)  # 13

    start = time.monotonic()
    arrivals = [time.monotonic() - start for _ in FileSource(path, realtime=True).blocks()]
    paced = arrivals[-1]
    start = time.monotonic()
    assert len(list(FileSource(path, realtime=False).blocks())) == n_blocks
    fast = time.monotonic() - start

    assert len(arrivals) == n_blocks
    assert 0.9 < paced < 1.5  # 13 blocks x 80 ms = 1.04 s
    assert fast < paced / 5
    # Scheduled by index: block i is never early, and lateness does not accumulate.
    lateness = [t - (i + 1) * audio.BLOCK_SECONDS for i, t in enumerate(arrivals)]
    assert min(lateness) > -0.005 and lateness[-1] < 0.2


@pytest.mark.timing
def test_realtime_catches_up_after_a_slow_consumer_instead_of_drifting(tmp_path: Path) -> None:
    path = tmp_path / "one_second.wav"
    sf.write(path, tone(440, 24000, 1.0), 24000)
    start = time.monotonic()
    for i, _ in enumerate(FileSource(path, realtime=True).blocks()):
        if i == 2:
            time.sleep(0.4)  # the engine stalls for 5 blocks' worth
    assert time.monotonic() - start < 1.3  # 1.04 s of audio: the stall was absorbed, not added


@pytest.mark.timing
def test_a_consumer_slower_than_real_time_loses_blocks_not_time(tmp_path: Path) -> None:
    """Backpressure, as a microphone's bounded queue: blocks later than max_lag_seconds are dropped."""
    path = tmp_path / "two_seconds.wav"
    sf.write(path, tone(440, 24000, 2.0), 24000)
    total = expected_blocks(48000, 24000)  # 25
    source = FileSource(path, realtime=True, max_lag_seconds=0.2)
    lags = []
    start = time.monotonic()
    for i, _ in enumerate(source.blocks()):
        lags.append(time.monotonic() - start - (i + 1 + source.dropped_blocks) * audio.BLOCK_SECONDS)
        time.sleep(0.2)  # an STT 2.5 times slower than real time
    yielded = len(lags)
    assert source.dropped_blocks > 0 and yielded + source.dropped_blocks == total
    assert max(lags) < 0.2 + 0.2 + 0.1  # the lag never grows past the bound (+ one slow block, + slack)
    # Without the bound every block comes, and the lag grows with the file.
    unbounded = FileSource(path, realtime=True)
    assert sum(1 for _ in unbounded.blocks()) == total and unbounded.dropped_blocks == 0


@pytest.mark.timing
def test_stop_from_another_thread_ends_a_realtime_file(tmp_path: Path) -> None:
    path = tmp_path / "ten_seconds.wav"
    sf.write(path, tone(440, 16000, 10.0), 16000)
    source = FileSource(path, realtime=True)
    threading.Timer(0.3, source.stop).start()
    start = time.monotonic()
    count = sum(1 for _ in source.blocks())
    assert time.monotonic() - start < 1.0
    assert count < 10


# ---------------------------------------------------------------- FileSource: bad files

def make_bad_file(kind: str, tmp_path: Path) -> Path:
    if kind == "missing":
        return tmp_path / "nothing here.wav"
    if kind == "folder":
        (tmp_path / "folder.wav").mkdir()
        return tmp_path / "folder.wav"
    if kind == "empty":
        path = tmp_path / "empty.wav"
        path.write_bytes(b"")
        return path
    if kind == "zero_length":
        path = tmp_path / "zero.wav"
        sf.write(path, np.zeros(0, np.float32), 16000)
        assert path.stat().st_size > 0  # a valid header with no samples
        return path
    if kind == "text":
        path = tmp_path / "notes.wav"
        path.write_text("these are my stage notes, not audio\n" * 20)
        return path
    good = tmp_path / "good.flac" if kind.endswith("flac") else tmp_path / "good.mp3"
    sf.write(good, tone(440, 48000, 1.0), 48000)
    data = bytearray(good.read_bytes())
    path = tmp_path / f"{kind}{good.suffix}"
    if kind.startswith("truncated"):
        path.write_bytes(bytes(data[:len(data) // 3]))
    else:  # corrupt: flip bytes through the middle of the stream
        for i in range(len(data) // 4, 3 * len(data) // 4, 50):
            data[i] ^= 0xFF
        path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("kind", ["missing", "folder", "empty", "zero_length", "text", "truncated_flac",
                                  "corrupt_flac", "truncated_mp3", "corrupt_mp3"])
def test_unusable_files_fail_at_construction_naming_the_file(tmp_path: Path, kind: str) -> None:
    path = make_bad_file(kind, tmp_path)
    with pytest.raises(AudioError) as caught:
        FileSource(path, realtime=False)
    message = str(caught.value)
    assert path.name in message
    assert " — " in message  # says what to do


def test_text_file_error_says_it_is_not_audio(tmp_path: Path) -> None:
    with pytest.raises(AudioError, match=r"notes\.wav: not an audio file \(or corrupt\): .+"):
        FileSource(make_bad_file("text", tmp_path))


# ---------------------------------------------------------------- device listing and choice

STUDIO = [fake_device(0, "pulse", 32, 44100.0), fake_device(1, "default", 32, 44100.0),
          fake_device(2, "HDMI Output", 0), fake_device(3, "USB Audio Scarlett 2i2", 2),
          fake_device(4, "USB Audio Webcam", 1, 16000.0), fake_device(5, "Mic", 1), fake_device(6, "Mic 2", 1)]


def test_list_input_devices_keeps_inputs_and_marks_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    install_devices(monkeypatch, STUDIO, default=1)
    devices = audio.list_input_devices()
    assert [d.index for d in devices] == [0, 1, 3, 4, 5, 6]
    assert [d.index for d in devices if d.is_default] == [1]
    assert devices[2] == InputDevice(3, "USB Audio Scarlett 2i2", 2, 48000.0, False, "ALSA")
    assert devices[2].key == "USB Audio Scarlett 2i2, ALSA"


@pytest.mark.parametrize(("spec", "index"), [
    (None, 1), ("", 1), ("  ", 1), (3, 3), ("3", 3), ("scarlett", 3), ("SCARLETT 2I2", 3),
    ("webcam", 4), ("mic", 5), ("Mic 2", 6), ("pulse", 0),
])
def test_resolve_device(monkeypatch: pytest.MonkeyPatch, spec: str | int | None, index: int) -> None:
    install_devices(monkeypatch, STUDIO, default=1)
    assert audio.resolve_device(spec).index == index


@pytest.mark.parametrize(("spec", "problem"), [
    ("usb audio", "ambiguous"), ("Focusrite", "not found"), ("2", "no input device with index 2"),
    (99, "no input device with index 99"),
])
def test_resolve_device_errors_list_the_inputs_and_the_fix(monkeypatch: pytest.MonkeyPatch,
                                                           spec: str | int, problem: str) -> None:
    install_devices(monkeypatch, STUDIO, default=1)
    with pytest.raises(AudioError) as caught:
        audio.resolve_device(spec)
    message = str(caught.value)
    assert problem in message and "--input" in message
    assert "3 'USB Audio Scarlett 2i2'" in message
    if problem == "ambiguous":
        assert "4 'USB Audio Webcam'" in message and "'pulse'" not in message
    else:
        assert "0 'pulse'" in message and "HDMI" not in message


def test_without_a_default_input_the_first_input_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    install_devices(monkeypatch, STUDIO[2:], default=None)
    assert audio.resolve_device(None).index == 3


def test_no_devices_is_an_empty_list_and_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    install_devices(monkeypatch, [], default=None)
    assert audio.list_input_devices() == []
    with pytest.raises(AudioError, match="no audio inputs found"):
        audio.resolve_device(None)
    with pytest.raises(AudioError, match="no audio inputs found"):
        MicSource("scarlett")


class _NoPortAudio:
    """An import hook that fails like sounddevice does when libportaudio is missing."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name == "sounddevice":
            raise OSError("PortAudio library not found")


def test_missing_portaudio_is_an_audio_error_with_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "sounddevice")
    monkeypatch.setattr(sys, "meta_path", [_NoPortAudio(), *sys.meta_path])
    with pytest.raises(AudioError, match="PortAudio library not found.*apt install libportaudio2"):
        audio.list_input_devices()
    monkeypatch.setitem(sys.modules, "sounddevice", None)  # package itself absent
    with pytest.raises(AudioError, match="pip install sounddevice"):
        audio.resolve_device(None)


# ---------------------------------------------------------------- MicSource with a fake PortAudio

class Overflow:
    """A truthy status like sounddevice's CallbackFlags with input_overflow set."""

    def __bool__(self) -> bool:
        return True


class FakeInputStream:
    """Stands in for sd.InputStream: a thread calls the callback with `signal`, one block at a time.

    Like PortAudio, it reuses one buffer for every callback, so a callback that keeps `indata`
    without copying it would see the data change under it.
    """

    signal: np.ndarray = np.zeros((0, 1), np.float32)
    pace: float = 0.0
    statuses: set[int] = set()
    opened: list[FakeInputStream] = []

    def __init__(self, *, device: int, samplerate: float, blocksize: int, channels: int, dtype: str,
                 callback: Any) -> None:
        self.kwargs = {"device": device, "samplerate": samplerate, "blocksize": blocksize,
                       "channels": channels, "dtype": dtype}
        assert self.signal.shape[1] >= channels
        self.callback = callback
        self.closed = threading.Event()
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run)
        FakeInputStream.opened.append(self)

    def start(self) -> None:
        self.thread.start()

    def _run(self) -> None:
        n, channels = self.kwargs["blocksize"], self.kwargs["channels"]
        buffer = np.empty((n, channels), np.float32)
        for i, start in enumerate(range(0, len(self.signal) - n + 1, n)):
            if self.closed.is_set():
                break
            buffer[:] = self.signal[start:start + n, :channels]
            self.callback(buffer, n, None, Overflow() if i in self.statuses else None)
            buffer[:] = np.nan  # PortAudio reuses its buffer
            if self.pace:
                time.sleep(self.pace)
        self.done.set()

    def close(self) -> None:
        self.closed.set()
        if self.thread.is_alive():
            self.thread.join(timeout=5)


@pytest.fixture
def fake_mic(monkeypatch: pytest.MonkeyPatch):
    """Install fake devices and a fake InputStream; returns a function that sets the signal."""
    FakeInputStream.opened = []

    def configure(signal: np.ndarray, *, rate: float = 48000.0, accepts: Iterable[float] = (),
                  pace: float = 0.0, statuses: Iterable[int] = ()) -> None:
        channels = signal.shape[1]
        install_devices(monkeypatch, [fake_device(0, "Fake Interface", channels, rate)], default=0)
        accepted = set(accepts) | {rate}

        def check_input_settings(*, device: int, channels: int, dtype: str, samplerate: float) -> None:
            if samplerate not in accepted:
                raise sd.PortAudioError("Invalid sample rate [PaErrorCode -9997]")

        monkeypatch.setattr(sd, "check_input_settings", check_input_settings)
        monkeypatch.setattr(FakeInputStream, "signal", signal.astype(np.float32))
        monkeypatch.setattr(FakeInputStream, "pace", pace)
        monkeypatch.setattr(FakeInputStream, "statuses", set(statuses))
        monkeypatch.setattr(sd, "InputStream", FakeInputStream)

    return configure


def record_all(mic: MicSource) -> np.ndarray:
    """Wait until the fake has delivered everything, stop, and collect the blocks."""
    assert FakeInputStream.opened[-1].done.wait(10)
    mic.stop()
    return joined(mic.blocks())


@pytest.mark.parametrize("rate", [48000.0, 44100.0, 16000.0])
def test_mic_at_another_rate_is_resampled_to_24k_blocks(fake_mic: Any, rate: float) -> None:
    seconds = 1.6
    signal = tone(1000, int(rate), seconds)[:, None]
    fake_mic(signal, rate=rate)
    with MicSource(None, queue_seconds=5) as mic:
        assert mic.device_rate == rate
        assert FakeInputStream.opened[-1].kwargs["blocksize"] == round(rate * 0.08)
        out = record_all(mic)
    delivered = len(signal) - len(signal) % round(rate * 0.08)  # whole callbacks only
    assert len(out) // BLOCK == expected_blocks(delivered, rate)
    reference = soxr.resample(signal[:delivered, 0], rate, SAMPLE_RATE, quality="HQ")
    np.testing.assert_allclose(out[:len(reference)], reference, atol=1e-5)
    assert peak_frequency(out[:len(reference)], SAMPLE_RATE) == pytest.approx(1000, abs=0.5)
    assert mic.dropped_blocks == 0


def test_mic_that_takes_24k_is_opened_at_24k_and_passed_through(fake_mic: Any) -> None:
    signal = np.random.default_rng(1).uniform(-1, 1, (BLOCK * 10, 1)).astype(np.float32)
    fake_mic(signal, rate=48000.0, accepts=[SAMPLE_RATE])
    with MicSource(None) as mic:
        assert mic.device_rate == SAMPLE_RATE
        out = record_all(mic)
    np.testing.assert_array_equal(out, signal[:, 0])  # also proves each callback block was copied


def test_mic_channel_selection_on_a_four_channel_interface(fake_mic: Any) -> None:
    rate = 24000
    columns = [tone(f, rate, 12 * 0.08) for f in (200, 450, 700, 1300)]  # 12 whole callbacks
    fake_mic(np.stack(columns, axis=1), rate=rate)
    with MicSource("fake", channel=3) as mic:
        assert FakeInputStream.opened[-1].kwargs["channels"] == 3  # enough to include channel 3
        out = record_all(mic)
    np.testing.assert_array_equal(out[:len(columns[2])], columns[2])
    assert peak_frequency(out, rate) == pytest.approx(700, abs=0.5)


@pytest.mark.parametrize("channel", [0, 5])
def test_mic_channel_out_of_range_is_an_error(fake_mic: Any, channel: int) -> None:
    fake_mic(np.zeros((BLOCK, 4), np.float32), rate=24000)
    with pytest.raises(AudioError, match=r"'Fake Interface' has 4 input channel.*--channel 1\.\.4"):
        MicSource(None, channel=channel)


def test_full_queue_drops_and_counts_blocks_and_status_events(fake_mic: Any) -> None:
    fake_mic(tone(440, 24000, 20 * 0.08)[:, None], rate=24000, statuses=[0, 5, 6])
    with MicSource(None, queue_seconds=0.5) as mic:  # 0.5 s = 7 blocks of 80 ms
        out = record_all(mic)  # nobody consumed while the 20 blocks arrived
    assert mic.dropped_blocks == 20 - 7
    assert mic.status_events == 3
    assert len(out) == 7 * BLOCK
    np.testing.assert_array_equal(out, tone(440, 24000, 7 * 0.08))  # the oldest blocks were kept


def test_mic_falls_back_to_the_default_rate_and_errors_when_nothing_fits(fake_mic: Any,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    fake_mic(np.zeros((BLOCK, 1), np.float32), rate=44100.0)
    assert MicSource(None).device_rate == 44100.0

    def refuse(**kwargs: Any) -> None:
        raise sd.PortAudioError("Invalid sample rate")

    monkeypatch.setattr(sd, "check_input_settings", refuse)
    with pytest.raises(AudioError, match=r"'Fake Interface' accepts neither 24000 Hz nor its default 44100 Hz"):
        MicSource(None)


def test_stream_open_failure_names_the_device(fake_mic: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_mic(np.zeros((BLOCK, 1), np.float32), rate=24000)

    def busy(**kwargs: Any) -> None:
        raise sd.PortAudioError("Device unavailable [PaErrorCode -9985]")

    monkeypatch.setattr(sd, "InputStream", busy)
    mic = MicSource(None)
    with pytest.raises(AudioError, match=r"cannot open microphone 0 'Fake Interface': Device unavailable"):
        mic.start()
    with pytest.raises(AudioError, match="not started"):
        next(mic.blocks())


@pytest.mark.timing
def test_silent_stream_raises_no_audio_naming_the_device(fake_mic: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_mic(tone(440, 24000, 0.4)[:, None], rate=24000)  # 5 blocks, then the "cable is pulled"
    monkeypatch.setattr(audio, "NO_AUDIO_SECONDS", 0.3)
    got = []
    start = time.monotonic()
    with MicSource(None) as mic, pytest.raises(AudioError, match=r"no audio from 0 'Fake Interface' .*unplugged"):
        for block in mic.blocks():
            got.append(block)
    assert len(got) == 5
    assert time.monotonic() - start < 2.0


@pytest.mark.timing
def test_stop_from_another_thread_ends_blocks_and_is_idempotent(fake_mic: Any) -> None:
    fake_mic(tone(440, 24000, 30.0)[:, None], rate=24000, pace=0.08)
    with MicSource(None) as mic:
        threading.Timer(0.4, mic.stop).start()
        start = time.monotonic()
        count = sum(1 for _ in mic.blocks())
        assert time.monotonic() - start < 1.5
        assert 2 <= count <= 12
        mic.stop()
    mic.stop()
    assert FakeInputStream.opened[-1].closed.is_set()


# ---------------------------------------------------------------- real PortAudio: PulseAudio virtual mic

def best_lag(recorded: np.ndarray, reference: np.ndarray) -> float:
    """Offset of `reference` inside `recorded` at the cross-correlation peak, to a fraction of a sample."""
    n = 1 << (len(recorded) + len(reference)).bit_length()
    xcorr = np.fft.irfft(np.fft.rfft(recorded, n) * np.conj(np.fft.rfft(reference, n)), n)
    k = int(np.argmax(xcorr))
    before, peak, after = xcorr[k - 1], xcorr[k], xcorr[(k + 1) % n]
    fraction = 0.5 * (before - after) / (before - 2 * peak + after)
    return (k if k < n // 2 else k - n) + fraction


def delayed(x: np.ndarray, delay: float) -> np.ndarray:
    """`x` delayed by a fraction of a sample (band-limited, via the FFT)."""
    n = 2 * len(x)
    phase = np.exp(-2j * np.pi * np.fft.rfftfreq(n) * delay)
    return np.fft.irfft(np.fft.rfft(x, n) * phase, n)[:len(x)].astype(np.float32)



@pytest.fixture(scope="module")
def speech_and_chirp(speech_wav: Path) -> Path:
    """espeak-ng speech, a pause, then a 1 s chirp 200 Hz -> 6 kHz, at 22.05 kHz."""
    speech, rate = sf.read(speech_wav, dtype="float32")
    t = np.arange(rate) / rate
    f0, f1 = 200.0, 6000.0
    chirp = 0.5 * np.sin(2 * np.pi * f0 * (np.power(f1 / f0, t) - 1) / np.log(f1 / f0))
    path = speech_wav.with_name("played.wav")
    sf.write(path, np.concatenate([speech, np.zeros(rate // 5), chirp]).astype(np.float32), rate)
    return path


STREAM_SETTLE_BLOCKS = 10


def test_real_portaudio_records_the_virtual_microphone(virtual_mic: pulse.VirtualMic, speech_and_chirp: Path) -> None:
    played, rate = sf.read(speech_and_chirp, dtype="float32")
    names = [d.name for d in audio.list_input_devices()]
    assert pulse.ALSA_DEVICE in names, f"PortAudio does not list the ALSA 'pulse' device: {names}"

    blocks, arrival = [], []
    player: subprocess.Popen[bytes] | None = None
    ended_at: int | None = None
    deadline = time.monotonic() + 20
    with MicSource(pulse.ALSA_DEVICE) as mic:
        for block in mic.blocks():
            blocks.append(block)
            arrival.append(time.monotonic())
            if player is None and len(blocks) == 3:  # the stream runs: play into the sink
                player = virtual_mic.play(speech_and_chirp)
            if player is not None and ended_at is None and player.poll() is not None:
                ended_at = len(blocks)
            if ended_at is not None and len(blocks) >= ended_at + 8:
                break  # 640 ms of tail after paplay returned
            assert time.monotonic() < deadline, "recording did not finish in 20 s"
    assert player is not None and player.returncode == 0, player and player.stderr.read().decode()

    recorded = joined(blocks)
    reference = soxr.resample(played, rate, SAMPLE_RATE, quality="HQ")
    lag = best_lag(recorded, reference)
    start = math.floor(lag)
    assert 0 <= start and start + len(reference) <= len(recorded), f"played audio not fully recorded (lag {lag})"
    # Pulse's resamplers leave a sub-sample offset; at 6 kHz half a sample would cost 30% correlation.
    reference = delayed(reference, lag - start)
    segment = recorded[start:start + len(reference)]
    similarity = correlation(segment, reference)
    gain = float(segment @ reference / (reference @ reference))
    speech_part = slice(0, round(len(reference) * (len(played) - rate) / len(played)))
    assert similarity > 0.9, f"recording differs from what was played: correlation {similarity:.3f}"
    assert correlation(segment[speech_part], reference[speech_part]) > 0.9
    assert 0.8 < gain < 1.25
    assert np.abs(recorded[:max(start - BLOCK, 1)]).max() < 1e-3  # silence before the file played

    # Real-time pace: the samples delivered match the wall clock (a null sink is paced).
    settled = STREAM_SETTLE_BLOCKS  # PortAudio delivers its first buffers in a burst
    delivered_rate = (len(blocks) - 1 - settled) * BLOCK / (arrival[-1] - arrival[settled])
    assert delivered_rate == pytest.approx(SAMPLE_RATE, rel=0.05)
    assert mic.dropped_blocks == 0


def test_rescan_finds_the_same_devices_again_through_real_portaudio(virtual_mic: pulse.VirtualMic) -> None:
    """The adapter over sounddevice's private re-initialisation works on the pinned version."""
    before = [(d.index, d.name) for d in audio.list_input_devices()]
    audio.rescan_devices()
    assert [(d.index, d.name) for d in audio.list_input_devices()] == before and before
