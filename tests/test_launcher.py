"""The double-click launchers: the macOS .app (validated, not run here) and the Linux .desktop entry (run)."""

from __future__ import annotations

import os
import plistlib
import subprocess
import sys
from pathlib import Path

import pytest
from xvfb import xvfb

from voicevibe import cli
from voicevibe.launcher import MIC_USAGE, exec_command, install_launcher, keep_awake

WINDOW_TIMEOUT_S = 60


def test_mac_app_bundle_is_valid(tmp_path: Path) -> None:
    [bundle] = install_launcher(platform="darwin", home=tmp_path, python="/opt/venv/bin/python")
    assert bundle == tmp_path / "Desktop" / "VoiceVibe.app"
    with open(bundle / "Contents" / "Info.plist", "rb") as fh:
        info = plistlib.load(fh)
    assert info["NSMicrophoneUsageDescription"] == MIC_USAGE
    assert info["CFBundlePackageType"] == "APPL"
    script = bundle / "Contents" / "MacOS" / info["CFBundleExecutable"]
    assert os.access(script, os.X_OK)
    text = script.read_text()
    assert "/opt/venv/bin/python -m voicevibe >>" in text
    assert 'LOG_DIR="$HOME/Library/Logs/voicevibe"' in text and "launcher.log" in text and "osascript" in text
    subprocess.run(["bash", "-n", str(script)], check=True)


def test_mac_launcher_shows_the_log_when_the_app_fails(tmp_path: Path) -> None:
    """Run the bundle's script with a failing 'python' and a fake osascript: the dialog gets the log's tail."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    failing = bin_dir / "python"
    failing.write_text("#!/bin/bash\necho 'voicevibe: error: no \"microphone\" here' >&2\nexit 2\n")
    failing.chmod(0o755)
    [bundle] = install_launcher(platform="darwin", home=tmp_path, python=str(failing))
    script = (bundle / "Contents" / "MacOS" / "VoiceVibe").read_text()
    dialog = tmp_path / "dialog.txt"
    fake = bin_dir / "osascript"
    fake.write_text(f"#!/bin/bash\nprintf '%s' \"$2\" > {dialog}\n")
    fake.chmod(0o755)
    runnable = tmp_path / "launcher.sh"
    runnable.write_text(script.replace("/usr/bin/osascript", str(fake)))
    done = subprocess.run(["bash", str(runnable)], env={**os.environ, "HOME": str(tmp_path)})
    assert done.returncode == 2
    log = (tmp_path / "Library" / "Logs" / "voicevibe" / "launcher.log").read_text()
    assert "no \"microphone\" here" in log and "exited with code 2" in log
    shown = dialog.read_text()
    assert "code 2" in shown and "no 'microphone' here" in shown and "launcher.log" in shown


def test_keep_awake_runs_caffeinate_on_macos(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    record = tmp_path / "args.txt"
    fake = tmp_path / "caffeinate"
    fake.write_text(f"#!/bin/bash\necho \"$@\" > {record}\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    assert keep_awake(1234, platform="linux") is None
    proc = keep_awake(1234, platform="darwin")
    assert proc is not None and proc.wait(10) == 0
    assert record.read_text().split() == ["-dimsu", "-w", "1234"]


def test_install_launcher_command_writes_linux_entries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    (tmp_path / "Desktop").mkdir()
    assert cli.main(["install-launcher"]) == 0
    menu = tmp_path / "data" / "applications" / "voicevibe.desktop"
    desktop = tmp_path / "Desktop" / "voicevibe.desktop"
    assert f"wrote {menu}" in capsys.readouterr().out
    assert menu.read_text() == desktop.read_text()
    assert os.access(desktop, os.X_OK)
    assert exec_command(menu) == [str(Path(sys.executable).absolute()), "-m", "voicevibe"]


def test_desktop_entry_opens_the_window(tmp_path: Path) -> None:
    """The .desktop Exec command opens a window named VoiceVibe on an X display; it closes cleanly."""
    [entry] = install_launcher(platform="linux", home=tmp_path)
    command = exec_command(entry) + ["--quit-after", "6"]
    with xvfb() as display:
        env = {**os.environ, "DISPLAY": display}
        proc = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
        try:
            found = subprocess.run(["xdotool", "search", "--sync", "--onlyvisible", "--name", "^VoiceVibe$"],
                                   env=env, capture_output=True, text=True, timeout=WINDOW_TIMEOUT_S)
            assert found.stdout.strip(), "no VoiceVibe window appeared"
            _, err = proc.communicate(timeout=WINDOW_TIMEOUT_S)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert proc.returncode == 0, err


def test_no_display_points_to_the_headless_run() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    done = subprocess.run([sys.executable, "-m", "voicevibe"], env=env, capture_output=True, text=True,
                          timeout=WINDOW_TIMEOUT_S)
    assert done.returncode == 2
    assert "no display" in done.stderr and "voicevibe run --no-gui" in done.stderr
