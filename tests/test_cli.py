"""The `voicevibe` command as a user runs it: output, JSON events, exit codes, messages."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import soundfile

from voicevibe import cli
from voicevibe.audio import FileSource
from voicevibe.config import REPO_CONFIG
from voicevibe.hub import locate_stt
from voicevibe.speech.engine import NO_TEXT_TOKENS, SttEngine, load_model
from voicevibe.testing.reference import reference_tokens


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_transcribe_prints_text_and_exits_0(capsys, fast_checkpoint, speech_wav):
    code, out, err = run(capsys, "transcribe", str(speech_wav), "--model", str(fast_checkpoint))
    assert code == 0, err
    assert len(out.split()) > 3  # random weights: noise, but words


def test_transcribe_json_no_dsp_matches_the_reference_loop(capsys, tiny_checkpoint_mlx, speech_wav):
    code, out, err = run(capsys, "transcribe", str(speech_wav), "--model", str(tiny_checkpoint_mlx),
                         "--json", "--no-dsp", "--set", "stt.dtype=\"f32\"")
    assert code == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    words = [e for e in events if e["type"] == "word"]
    assert words and all({"type", "text", "token", "step", "t"} <= set(e) for e in words)
    assert all(isinstance(e["t"], float) and e["t"] >= 0 for e in words)
    blocks = list(FileSource(speech_wav, realtime=False).blocks())
    files = locate_stt(str(tiny_checkpoint_mlx))
    engine = SttEngine(load_model(files, "f32", warmup=False), cli.load_config().stt)
    tokens = reference_tokens(files, blocks, flush_frames=engine.flush_frames)
    assert [e["token"] for e in words] == [t for t in tokens if t not in NO_TEXT_TOKENS]
    assert [e["step"] for e in words] == sorted(e["step"] for e in words)


def test_bad_inputs_exit_2_with_a_message_naming_them(capsys, tmp_path, fast_checkpoint):
    junk = tmp_path / "notes.wav"
    junk.write_text("this is not audio")
    code, out, err = run(capsys, "transcribe", str(junk), "--model", str(fast_checkpoint))
    assert code == 2 and "notes.wav" in err and "Traceback" not in err
    code, _, err = run(capsys, "transcribe", str(tmp_path / "missing.flac"), "--model", str(fast_checkpoint))
    assert code == 2 and "missing.flac" in err
    ok_wav = tmp_path / "ok.wav"
    soundfile.write(ok_wav, np.zeros(24000, np.float32), 24000)
    code, _, err = run(capsys, "transcribe", str(ok_wav), "--model", str(tmp_path / "no-model-here"))
    assert code == 2 and "no-model-here" in err and "no such folder" in err
    bad = tmp_path / "bad.toml"
    bad.write_text("[dsp]\ngain_db = 40\n")
    code, _, err = run(capsys, "transcribe", str(ok_wav), "--config", str(bad))
    assert code == 2 and "bad.toml" in err and "gain_db = 40" in err and "-24.0 to 24.0" in err
    code, _, err = run(capsys, "transcribe", str(ok_wav), "--set", "dsp.gain=3")
    assert code == 2 and "unknown key [dsp] gain" in err


def test_devices_says_clearly_when_there_are_none(capsys, monkeypatch):
    monkeypatch.setattr(cli, "list_input_devices", lambda: [])
    code, out, _ = run(capsys, "devices")
    assert code == 0 and "no audio input devices found" in out


def test_config_defaults_is_the_repo_config(capsys):
    code, out, _ = run(capsys, "config", "--defaults")
    assert code == 0 and out == REPO_CONFIG.read_text(encoding="utf-8") + "\n"


def test_console_script_usage_error_exits_2():
    result = subprocess.run([sys.executable, "-m", "voicevibe", "transcribe"], capture_output=True, text=True)
    assert result.returncode == 2 and "audio" in result.stderr
    result = subprocess.run([sys.executable, "-m", "voicevibe", "--version"], capture_output=True, text=True)
    assert result.returncode == 0 and result.stdout.startswith("voicevibe ")


def test_run_rehearses_a_file_through_the_live_path(capsys, fast_checkpoint, speech_wav):
    """`voicevibe --no-gui --input FILE --fast`: the pipeline loads the model, runs DSP + STT + brain, exits 0."""
    code, out, err = run(capsys, "--no-gui", "--input", str(speech_wav), "--fast", "--model", str(fast_checkpoint),
                         "--set", "brain.model=none", "--osc", "127.0.0.1:9")
    assert code == 0, err
    assert "speech model ready" in err and "listening to file" in err and "with pause detection" in err
    assert "=> " in out and "[fallback" in out  # the brain's prompts are shown with their source
    assert len(out.split()) > 3
    assert "latency per stage" in err and "session log: " in err


def test_run_with_a_missing_model_says_what_to_download(capsys, speech_wav, tmp_path, monkeypatch):
    import huggingface_hub.constants as hc

    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    code, _, err = run(capsys, "run", "--no-gui", "--input", str(speech_wav), "--set", "brain.model=none")
    assert code == 2
    assert "voicevibe models download" in err and "tokenizer_en_fr_audio_8000.model" in err


def test_run_a_script_without_audio(capsys, tmp_path):
    script = tmp_path / "show.txt"
    script.write_text("# act one\nun chat noir dans la tempête\n\nthe harbour at dawn\n", encoding="utf-8")
    code, out, err = run(capsys, "run", "--no-gui", "--script", str(script), "--set", "brain.model=none",
                         "--osc", "127.0.0.1:9")
    assert code == 0, err
    assert out.count("=> ") == 2 and "cat" in out and "harbour" in out
    assert "listening" not in err  # no audio stage


def test_run_with_a_bad_script_exits_2_naming_it(capsys, tmp_path):
    code, _, err = run(capsys, "run", "--no-gui", "--script", str(tmp_path / "nope.txt"))
    assert code == 2 and "nope.txt: script file not found" in err
    binary = tmp_path / "noise.txt"
    binary.write_bytes(b"\xff\xfe\x00\x81" * 10)
    code, _, err = run(capsys, "run", "--no-gui", "--script", str(binary))
    assert code == 2 and "noise.txt: not a UTF-8 text file" in err
    code, _, err = run(capsys, "run", "--script", str(binary))  # the window has its own script mode
    assert code == 2 and "add --no-gui" in err
