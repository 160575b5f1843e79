"""The double-click launchers: the macOS .app (its compiled launcher built and run here with cc; the bundle is
validated, never opened by macOS here) and the Linux .desktop entry (run under Xvfb)."""

from __future__ import annotations

import os
import plistlib
import subprocess
import sys
from pathlib import Path

import pytest

from support.platforms import DESKTOP, XVFB, linux_only
from support.xvfb import xvfb
from voicevibe import cli, launcher, macos
from voicevibe.launcher import MIC_USAGE, exec_command, install_launcher, keep_awake

WINDOW_TIMEOUT_S = 60


def fake_tool(folder: Path, name: str, body: str) -> Path:
    """A stand-in command (osascript, codesign, a failing python...) as an executable script."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("#!/bin/bash\n" + body + "\n")
    path.chmod(0o755)
    return path


def test_mac_app_bundle_is_valid(tmp_path: Path) -> None:
    """The bundle: Info.plist with the microphone text and the oldest macOS mlx 0.26 runs on, and a compiled
    executable (built here with the system's cc, run below on this machine)."""
    [bundle] = install_launcher(platform="darwin", home=tmp_path, python="/opt/venv/bin/python")
    assert bundle == tmp_path / "Desktop" / "VoiceVibe.app"
    with open(bundle / "Contents" / "Info.plist", "rb") as fh:
        info = plistlib.load(fh)
    assert info["NSMicrophoneUsageDescription"] == MIC_USAGE
    assert info["CFBundlePackageType"] == "APPL"
    assert info["LSMinimumSystemVersion"] == "13.5"
    executable = bundle / "Contents" / "MacOS" / info["CFBundleExecutable"]
    assert os.access(executable, os.X_OK)
    assert not executable.read_bytes().startswith(b"#!"), "the executable must be a compiled program, not a script"
    assert b"/opt/venv/bin/python" in executable.read_bytes()


def test_compiled_launcher_runs_python_in_its_own_process_and_logs(tmp_path: Path) -> None:
    """The launcher execs the venv's Python (same process: the bundle's identity asks for the microphone),
    with `-m voicevibe`, its output in launcher.log and the log's path handed to the app."""
    record = tmp_path / "record.txt"
    python = fake_tool(tmp_path / "venv" / "bin", "python",
                       f'echo "pid=$$ args=$* log=$VOICEVIBE_LAUNCHER_LOG" > {record}\necho "from the app"\nexit 3')
    [bundle] = install_launcher(platform="darwin", home=tmp_path, python=str(python))
    proc = subprocess.Popen([str(bundle / "Contents" / "MacOS" / "VoiceVibe")],
                            env={**os.environ, "HOME": str(tmp_path)})
    assert proc.wait(30) == 3  # Python's own exit code: nothing stood between
    log_path = tmp_path / "Library" / "Logs" / "voicevibe" / "launcher.log"
    assert record.read_text().split() == [f"pid={proc.pid}", "args=-m", "voicevibe", f"log={log_path}"]
    log = log_path.read_text()
    assert f"starting VoiceVibe: {python} -m voicevibe" in log and "from the app" in log


def test_compiled_launcher_without_python_says_so_in_a_dialog(tmp_path: Path) -> None:
    shown = tmp_path / "dialog.txt"
    dialog = fake_tool(tmp_path / "bin", "osascript", f'printf "%s" "$2" > {shown}')
    executable = tmp_path / "VoiceVibe"
    assert launcher.compile_launcher(str(tmp_path / "gone" / "python"), executable, dialog=str(dialog)) is None
    done = subprocess.run([str(executable)], env={**os.environ, "HOME": str(tmp_path)}, timeout=30)
    assert done.returncode == 127
    text = shown.read_text()
    assert "VoiceVibe cannot start" in text and "No such file or directory" in text and "make run" in text


@linux_only("the app fails for want of a display only where there can be none (a Mac opens the window)")
def test_a_failing_app_started_by_the_bundle_shows_the_log_in_a_dialog(tmp_path: Path) -> None:
    """The real app through the compiled launcher, failing for want of a display: its error is in the dialog."""
    shown = tmp_path / "dialog.txt"
    dialog = fake_tool(tmp_path / "bin", "osascript", f'printf "%s" "$2" > {shown}')
    executable = tmp_path / "VoiceVibe"
    assert launcher.compile_launcher(sys.executable, executable, dialog=str(dialog)) is None
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    done = subprocess.run([str(executable)], env={**env, "HOME": str(tmp_path)}, timeout=WINDOW_TIMEOUT_S)
    assert done.returncode == 2
    text = shown.read_text()
    assert "code 2" in text and "no display" in text and "launcher.log" in text
    assert "VoiceVibe exited with code 2" in (tmp_path / "Library/Logs/voicevibe/launcher.log").read_text()


def test_run_from_bundle_shows_a_crash_and_passes_success_through(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture) -> None:
    shown = tmp_path / "dialog.txt"
    dialog = fake_tool(tmp_path / "bin", "osascript", f'printf "%s" "$2" > {shown}')
    log_path = tmp_path / "launcher.log"
    log_path.write_text("line one\nvoicevibe: error: it \"broke\"\n")
    assert launcher.run_from_bundle(lambda: 0) == 0  # not started by the bundle: nothing else happens
    monkeypatch.setenv(launcher.LOG_ENV, str(log_path))
    monkeypatch.setenv(launcher.DIALOG_ENV, str(dialog))
    assert launcher.run_from_bundle(lambda: 0) == 0 and not shown.exists()

    def crash() -> int:
        raise RuntimeError("boom")

    assert launcher.run_from_bundle(crash) == 1
    assert "RuntimeError: boom" in capsys.readouterr().err
    text = shown.read_text()
    assert "code 1" in text and "it 'broke'" in text and str(log_path) in text


def test_without_a_compiler_the_bundle_runs_a_script_with_a_warning(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                    caplog: pytest.LogCaptureFixture) -> None:
    """No cc (a Mac without the command line tools): the old script, and a warning that says what to do."""
    monkeypatch.setattr(launcher.shutil, "which", lambda name: None)  # neither cc nor codesign
    [bundle] = install_launcher(platform="darwin", home=tmp_path, python="/opt/venv/bin/python")
    assert "xcode-select --install" in caplog.text and "microphone" in caplog.text
    script = bundle / "Contents" / "MacOS" / "VoiceVibe"
    assert script.read_text().startswith("#!/bin/bash") and os.access(script, os.X_OK)
    subprocess.run(["bash", "-n", str(script)], check=True)


def test_the_bundle_is_signed_ad_hoc_when_codesign_exists(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    record = tmp_path / "codesign.txt"
    fake_tool(tmp_path / "bin", "codesign", f'echo "$@" > {record}')
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:{os.environ['PATH']}")
    [bundle] = install_launcher(platform="darwin", home=tmp_path, python="/opt/venv/bin/python")
    assert record.read_text().split() == ["--force", "--deep", "--sign", "-", str(bundle)]


def test_mac_script_launcher_shows_the_log_when_the_app_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fallback script with a failing 'python' and a fake osascript: the dialog gets the log's tail."""
    monkeypatch.setattr(launcher, "compile_launcher", lambda *a, **k: "no C compiler `cc`")
    bin_dir = tmp_path / "bin"
    failing = fake_tool(bin_dir, "python", "echo 'voicevibe: error: no \"microphone\" here' >&2\nexit 2")
    [bundle] = install_launcher(platform="darwin", home=tmp_path, python=str(failing))
    script = (bundle / "Contents" / "MacOS" / "VoiceVibe").read_text()
    dialog = tmp_path / "dialog.txt"
    fake = fake_tool(bin_dir, "osascript", f"printf '%s' \"$2\" > {dialog}")
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
    monkeypatch.setattr(macos, "PLATFORM", "linux")  # the Linux branch, on any machine
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


@linux_only(DESKTOP)
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


@linux_only(XVFB + " (and a Mac always has a display)")
def test_no_display_points_to_the_headless_run() -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    done = subprocess.run([sys.executable, "-m", "voicevibe"], env=env, capture_output=True, text=True,
                          timeout=WINDOW_TIMEOUT_S)
    assert done.returncode == 2
    assert "no display" in done.stderr and "voicevibe run --no-gui" in done.stderr
