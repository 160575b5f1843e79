"""`voicevibe doctor`: a good setup passes (exit 0); each missing thing fails with its own fix line (exit 1).

The Mac's answers (arm64, Metal, the microphone) come through `Probe`; the models, the bundled GGUF, the
log folder and name resolution are real. The command itself runs against the real machine, and its
microphone check against the PulseAudio virtual microphone.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from support import pulse
from voicevibe import cli  # noqa: E402
from voicevibe.audio import AudioError, InputDevice  # noqa: E402
from voicevibe.config import Config  # noqa: E402
from voicevibe.config_files import load_config  # noqa: E402
from voicevibe.doctor import checks as doctor
from voicevibe.miccheck import LevelCheck  # noqa: E402
from voicevibe.pycheck import Facts  # noqa: E402

MAC_MIC = InputDevice(0, "MacBook Air Microphone", 1, 48_000.0, True)
COMMIT = "a" * 40


def cache_repo(cache: Path, repo: str, files: dict[str, bytes]) -> None:
    """A repo in the Hugging Face cache layout: blobs named by their hub ETag, a snapshot, refs/main."""
    root = cache / f"models--{repo.replace('/', '--')}"
    (root / "refs").mkdir(parents=True)
    (root / "refs" / "main").write_text(COMMIT)
    for name, data in files.items():
        etag = (hashlib.sha256(data).hexdigest() if len(data) > 100 else
                hashlib.sha1(f"blob {len(data)}\0".encode() + data).hexdigest())
        blob = root / "blobs" / etag
        blob.parent.mkdir(parents=True, exist_ok=True)
        blob.write_bytes(data)
        link = root / "snapshots" / COMMIT / name
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(blob)


def speech_files() -> dict[str, bytes]:
    config = {"moshi_name": "lm.safetensors", "mimi_name": "mimi.safetensors", "tokenizer_name": "tok.model"}
    return {"config.json": json.dumps(config).encode(), "lm.safetensors": b"L" * 5000, "mimi.safetensors": b"M" * 3000,
            "tok.model": b"T" * 50}


def config_for(tmp_path: Path, checkpoint: Path | str, **sections: dict) -> Config:
    layers = [{"stt": {"model": str(checkpoint)}, "brain": {"model": "bundled"},
               "osc": {"targets": "127.0.0.1:9000"}, "session": {"log_dir": str(tmp_path / "logs")}}, sections]
    return load_config(overrides=layers, include_defaults_files=False)


def mac_probe(config: Config, **changes: object) -> doctor.Probe:
    """An Apple Silicon Mac where everything answers well; `changes` replaces any answer."""
    probe = doctor.Probe(config, facts=Facts((3, 12, 4), "darwin", "arm64", "8.6", "14.5"), platform="darwin",
                         mlx_metal=lambda: True, llama_gpu=lambda: True, input_devices=lambda: [MAC_MIC],
                         listen=lambda spec, channel: LevelCheck("0 'MacBook Air Microphone'", 1.5, 0.02, False),
                         memory=lambda: (12_000_000_000, 16_000_000_000),
                         install_places=lambda: {"checkout": Path("/Users/ada/VoiceVibe")},
                         xcode_tools=lambda: "/Library/Developer/CommandLineTools")
    return dataclasses.replace(probe, **changes)


def run(probe: doctor.Probe, capsys: pytest.CaptureFixture) -> tuple[int, str]:
    code = doctor.main(probe.config, probe)
    return code, capsys.readouterr().out


def line(out: str, mark: str, name: str) -> str:
    """The table line of one row (with the fix line under it, if any)."""
    lines = out.splitlines()
    for i, text in enumerate(lines):
        if text.startswith(f"  {mark}  {name} "):
            following = lines[i + 1] if i + 1 < len(lines) and lines[i + 1].strip().startswith("fix:") else ""
            return text + "\n" + following
    raise AssertionError(f"no {mark} {name!r} row in:\n{out}")


def test_a_good_mac_setup_is_ready(tmp_path: Path, fast_checkpoint: Path, capsys: pytest.CaptureFixture) -> None:
    code, out = run(mac_probe(config_for(tmp_path, fast_checkpoint)), capsys)
    assert code == 0, out
    assert "FAIL" not in out and "The show can start." in out
    for name in ("Python", "Tk", "Apple Silicon", "macOS", "MLX Metal", "llama.cpp Metal", "microphone",
                 "speech model", "brain model", "OSC target", "memory", "log folder"):
        line(out, "ok  ", name)
    assert "a local folder: sizes only" in line(out, "ok  ", "speech model")
    assert "gemma-3-270m" in line(out, "ok  ", "brain model").lower() or ".gguf" in line(out, "ok  ", "brain model")


CASES = {
    "python 3.13": (dict(facts=Facts((3, 13, 1), "darwin", "arm64", "8.6", "14.5")), "Python",
                    "install Python 3.12 from python.org"),
    "intel python": (dict(facts=Facts((3, 12, 4), "darwin", "x86_64", "8.6", "14.5")), "Apple Silicon",
                     "install Python 3.12 from python.org"),
    "old macOS": (dict(facts=Facts((3, 12, 4), "darwin", "arm64", "8.6", "13.2")), "macOS", "Software Update"),
    "no Tk": (dict(facts=Facts((3, 12, 4), "darwin", "arm64", None, "14.5")), "Tk", "python.org"),
    "no Metal for MLX": (dict(mlx_metal=lambda: False), "MLX Metal", "M-series Mac"),
    "llama.cpp without Metal": (dict(llama_gpu=lambda: False), "llama.cpp Metal",
                                "pip uninstall -y llama-cpp-python"),
    "no microphone": (dict(input_devices=lambda: []), "microphone", "System Settings > Sound > Input"),
    "microphone denied": (dict(listen=lambda spec, channel: LevelCheck("0 'MacBook Air Microphone'", 1.5, 0.0, True)),
                          "microphone", "System Settings > Privacy & Security > Microphone"),
    "microphone busy": (dict(listen=lambda spec, channel: (_ for _ in ()).throw(AudioError("cannot open it"))),
                        "microphone", "pick another input"),
    "too little memory": (dict(memory=lambda: (500_000_000, 1_000_000_000)), "memory", "too small"),
}


@pytest.mark.parametrize("case", CASES)
def test_each_missing_thing_fails_with_its_fix(case: str, tmp_path: Path, fast_checkpoint: Path,
                                               capsys: pytest.CaptureFixture) -> None:
    changes, name, fix = CASES[case]
    code, out = run(mac_probe(config_for(tmp_path, fast_checkpoint), **changes), capsys)
    assert code == 1, out
    row = line(out, "FAIL", name)
    assert "fix: " in row and fix in row, row
    assert "The show cannot start: 1 problem(s)" in out


def test_missing_or_damaged_models_unresolvable_targets_and_an_unwritable_log_folder(
        tmp_path: Path, fast_checkpoint: Path, hub_cache: Path, capsys: pytest.CaptureFixture) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    config = config_for(tmp_path, "someone/stt-not-downloaded", osc={"targets": "no-such-host.invalid:9000"},
                        session={"log_dir": str(blocker / "logs")})
    code, out = run(mac_probe(config), capsys)
    assert code == 1
    assert "press Download in the window" in line(out, "FAIL", "speech model")
    assert "use the render PC's IP address" in line(out, "FAIL", "OSC target")
    assert "set session.log_dir to a writable folder" in line(out, "FAIL", "log folder")
    assert "The show cannot start: 3 problem(s)" in out

    files = speech_files()
    cache_repo(hub_cache, "someone/stt-cached", files)
    code, out = run(mac_probe(config_for(tmp_path, "someone/stt-cached")), capsys)
    assert code == 0 and "checksums ok" in line(out, "ok  ", "speech model")
    blob = next(p for p in (hub_cache / "models--someone--stt-cached" / "blobs").iterdir()
                if p.read_bytes() == files["lm.safetensors"])
    blob.write_bytes(b"L" * 4999 + b"X")  # one byte changed on disk
    code, out = run(mac_probe(config_for(tmp_path, "someone/stt-cached")), capsys)
    assert code == 1
    row = line(out, "FAIL", "speech model")
    assert "lm.safetensors (checksum mismatch)" in row and "delete the damaged file" in row


def test_warnings_do_not_stop_the_show(tmp_path: Path, fast_checkpoint: Path, hub_cache: Path,
                                       capsys: pytest.CaptureFixture) -> None:
    """A brain GGUF not downloaded (the bundled one stands in), little free memory, Tk 9: warnings, exit 0."""
    config = config_for(tmp_path, fast_checkpoint, brain={"model": "unsloth/gemma-3-1b-it-GGUF"})
    code, out = run(mac_probe(config, memory=lambda: (500_000_000, 16_000_000_000),
                              facts=Facts((3, 12, 4), "darwin", "arm64", "9.0", "14.5")), capsys)
    assert code == 0, out
    assert "bundled Gemma 3 270M stands in" in line(out, "warn", "brain model")
    assert "quit other apps" in line(out, "warn", "memory")
    assert "python.org" in line(out, "warn", "Tk")
    assert "The show can start." in out


def test_a_broken_check_is_a_failed_row_and_the_others_still_answer(tmp_path: Path, fast_checkpoint: Path) -> None:
    def check_server(probe: doctor.Probe) -> list[doctor.Row]:
        raise RuntimeError("no route")

    rows = doctor.run_checks(mac_probe(config_for(tmp_path, fast_checkpoint)), [*doctor.CHECKS, check_server])
    assert rows[-1].name == "server" and not rows[-1].ok and "RuntimeError: no route" in rows[-1].detail
    assert all(row.ok for row in rows[:-1]) and not doctor.ready(rows)


def test_the_command_on_this_machine(tmp_path: Path, fast_checkpoint: Path, speech_wav: Path,
                                     capsys: pytest.CaptureFixture) -> None:
    """`voicevibe doctor` for real: Linux answers (MLX and llama.cpp on the CPU), a rehearsal file as input."""
    args = ["doctor", "--model", str(fast_checkpoint), "--input", str(speech_wav), "--set", "brain.model=none",
            "--osc", "127.0.0.1:9000", "--set", f'session.log_dir="{tmp_path}"']
    assert cli.main(args) == 0
    out = capsys.readouterr().out
    assert "The show can start." in out and "audio.input is a recording" in out
    assert cli.main([*args[:-4], "--set", f'session.log_dir="{tmp_path}"', "--osc", "bad host:1"]) == 2  # bad usage
    assert "not host:port" in capsys.readouterr().err
    assert cli.main(["doctor", "--model", str(tmp_path / "none"), "--input", str(speech_wav)]) == 1
    assert "FAIL  speech model" in capsys.readouterr().out



def test_the_microphone_check_listens_to_a_real_input(virtual_mic: pulse.VirtualMic, tmp_path: Path,
                                                      fast_checkpoint: Path, capsys: pytest.CaptureFixture) -> None:
    """Nothing playing into the virtual mic: exact zeros, the row fails with the fix; it names the device."""
    code = cli.main(["doctor", "--model", str(fast_checkpoint), "--input", pulse.ALSA_DEVICE,
                     "--set", "brain.model=none", "--set", f'session.log_dir="{tmp_path}"'])
    out = capsys.readouterr().out
    assert code == 1
    row = line(out, "FAIL", "microphone")
    assert "'pulse' delivers exact zeros" in row and "fix: check that the input is not muted" in row
