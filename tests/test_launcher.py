"""The double-click launchers: the macOS .app (its compiled launcher built and run here with cc; the bundle is
validated, never opened by macOS here) and the Linux .desktop entry (run under Xvfb)."""

from __future__ import annotations

import os
import plistlib
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from support.launcher_rig import DEADLINE_S, Rig, app_record, build_rig, dialogs, launched, launcher_log
from support.platforms import DESKTOP, XVFB, linux_only
from support.xvfb import xvfb
from voicevibe import cli, launcher, macos
from voicevibe.launcher import LOCAL_NETWORK_USAGE, LOG_CAP_BYTES, MIC_USAGE, exec_command, install_launcher, keep_awake

WINDOW_TIMEOUT_S = 60


def fake_tool(folder: Path, name: str, body: str) -> Path:
    """A stand-in command (osascript, codesign, a failing python...) as an executable script."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("#!/bin/bash\n" + body + "\n")
    path.chmod(0o755)
    return path


@pytest.fixture(scope="module")
def rig(tmp_path_factory: pytest.TempPathFactory) -> Rig:
    """The compiled launcher in front of a stand-in Python (pythonw-like script + compiled app) and osascript."""
    return build_rig(tmp_path_factory.mktemp("launcher-rig"))


def test_mac_app_bundle_is_valid(tmp_path: Path) -> None:
    """The bundle: Info.plist with the microphone and local-network texts and the oldest macOS mlx 0.26 runs on,
    and a compiled executable (built here with the system's cc, run below on this machine)."""
    [bundle] = install_launcher(platform="darwin", home=tmp_path, python="/opt/venv/bin/python")
    assert bundle == tmp_path / "Desktop" / "VoiceVibe.app"
    with open(bundle / "Contents" / "Info.plist", "rb") as fh:
        info = plistlib.load(fh)
    assert info["NSMicrophoneUsageDescription"] == MIC_USAGE
    assert info["NSLocalNetworkUsageDescription"] == LOCAL_NETWORK_USAGE
    assert info["CFBundlePackageType"] == "APPL"
    assert info["LSMinimumSystemVersion"] == "13.5"
    executable = bundle / "Contents" / "MacOS" / info["CFBundleExecutable"]
    assert os.access(executable, os.X_OK)
    assert not executable.read_bytes().startswith(b"#!"), "the executable must be a compiled program, not a script"
    assert b"/opt/venv/bin/python" in executable.read_bytes()


def test_compiled_launcher_runs_python_as_its_child_and_logs(tmp_path: Path) -> None:
    """The installed bundle's launcher runs the venv's Python as its child (the launcher stays the process macOS
    holds responsible for the microphone), with `-m voicevibe`, its output in launcher.log and the log's path
    handed to the app; Python's exit code is the launcher's."""
    record = tmp_path / "record.txt"
    python = fake_tool(tmp_path / "venv" / "bin", "python",
                       f'echo "ppid=$PPID pid=$$ args=$* log=$VOICEVIBE_LAUNCHER_LOG" > {record}\n'
                       'echo "from the app"\nexit 3')
    [bundle] = install_launcher(platform="darwin", home=tmp_path, python=str(python))
    proc = subprocess.Popen([str(bundle / "Contents" / "MacOS" / "VoiceVibe")],
                            env={**os.environ, "HOME": str(tmp_path)})
    assert proc.wait(DEADLINE_S) == 3
    log_path = launcher_log(tmp_path)
    ppid, pid, *rest = record.read_text().split()
    assert ppid == f"ppid={proc.pid}" and pid != f"pid={proc.pid}"
    assert rest == ["args=-m", "voicevibe", f"log={log_path}"]
    log = log_path.read_text()
    assert f"starting VoiceVibe: {python} -m voicevibe (launcher pid {proc.pid})" in log and "from the app" in log
    assert "VoiceVibe exited with code 3" in log


def test_launcher_stays_the_parent_while_python_runs(rig: Rig, tmp_path: Path) -> None:
    """Python, even once exec'd into another program (as pythonw execs Python.app), is the launcher's child in a
    process group of its own, and the launcher lives until it ends; the app gets the log's and osascript's paths."""
    with launched(rig, tmp_path, "wait") as proc:
        app = app_record(tmp_path)
        assert proc.poll() is None, "the launcher must stay alive while Python runs"
        assert int(app["ppid"]) == proc.pid and int(app["pid"]) != proc.pid
        assert int(app["pgid"]) == int(app["pid"])  # a terminal's Ctrl-C reaches it once, through the launcher
        assert app["args"] == "-m voicevibe"
        assert app["log"] == str(launcher_log(tmp_path)) and app["dialog"] == str(rig.osascript)
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(DEADLINE_S) == 128 + signal.SIGTERM
    assert (tmp_path / "signals.txt").read_text() == f"TERM ppid={proc.pid}\n"  # still its parent at the end


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP], ids=lambda sig: sig.name)
def test_a_stop_signal_to_the_launcher_reaches_python(rig: Rig, tmp_path: Path, sig: signal.Signals) -> None:
    """Logout's SIGTERM, a terminal's Ctrl-C or hang-up: passed on to Python, which dies by it (128+N), no dialog."""
    with launched(rig, tmp_path, "wait") as proc:
        app_record(tmp_path)  # Python runs, its handlers set
        os.kill(proc.pid, sig)
        assert proc.wait(DEADLINE_S) == 128 + sig
    assert (tmp_path / "signals.txt").read_text() == f"{sig.name[3:]} ppid={proc.pid}\n"
    assert f"VoiceVibe stopped by signal {int(sig)} " in launcher_log(tmp_path).read_text()
    assert dialogs(tmp_path) == []  # a stop request is no failure


def test_a_stop_signal_sent_straight_to_python_shows_no_dialog(rig: Rig, tmp_path: Path) -> None:
    """At logout launchd sends SIGTERM to every process, Python included, maybe before the launcher passes it on:
    a stop request either way, not a failure."""
    with launched(rig, tmp_path, "wait") as proc:
        os.kill(int(app_record(tmp_path)["pid"]), signal.SIGTERM)
        assert proc.wait(DEADLINE_S) == 128 + signal.SIGTERM
    assert (tmp_path / "signals.txt").read_text() == f"TERM ppid={proc.pid}\n"
    assert dialogs(tmp_path) == []


def test_a_stop_signal_ignored_at_start_stays_ignored(rig: Rig, tmp_path: Path) -> None:
    """Started under nohup (SIGHUP ignored), a hang-up is not passed on; the SIGTERM sent after it is."""
    with launched(rig, tmp_path, "wait", via=("sh", "-c", 'trap "" HUP; exec "$0"')) as proc:
        app_record(tmp_path)
        os.kill(proc.pid, signal.SIGHUP)
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(DEADLINE_S) == 128 + signal.SIGTERM
    assert (tmp_path / "signals.txt").read_text() == f"TERM ppid={proc.pid}\n"


@pytest.mark.parametrize("code", [0, 1, 2, 3, 130, 255])
def test_pythons_exit_code_is_the_launchers(rig: Rig, tmp_path: Path, code: int) -> None:
    """Python's exit code comes back as the launcher's; the log has the start line, the app's output and the exit
    line, in that order; the launcher shows no dialog (a failing app shows its own, in run_from_bundle)."""
    with launched(rig, tmp_path, f"exit {code}") as proc:
        assert proc.wait(DEADLINE_S) == code
    first, *app_output, last = launcher_log(tmp_path).read_text().splitlines()
    assert first.endswith(f"starting VoiceVibe: {rig.python} -m voicevibe (launcher pid {proc.pid})")
    assert sorted(app_output) == ["an error line from the app", "from the app"]
    assert last.endswith(f"VoiceVibe exited with code {code}")
    assert dialogs(tmp_path) == []


@pytest.mark.parametrize("todo, sig", [("abort", signal.SIGABRT), ("wait", signal.SIGKILL)], ids=["crash", "killed"])
def test_python_dying_by_a_crash_or_sigkill_gets_one_dialog(rig: Rig, tmp_path: Path, todo: str,
                                                            sig: signal.Signals) -> None:
    """Python cannot show a dialog when it crashes or is killed (Force Quit, out of memory): the launcher shows
    exactly one, with the log's end, and exits 128+N."""
    with launched(rig, tmp_path, todo) as proc:
        app = app_record(tmp_path)
        if sig == signal.SIGKILL:
            os.kill(int(app["pid"]), signal.SIGKILL)
        assert proc.wait(DEADLINE_S) == 128 + sig
    [shown] = dialogs(tmp_path)
    assert f"signal {int(sig)}," in shown and f"code {128 + sig})" in shown
    assert f"VoiceVibe stopped by signal {int(sig)} " in shown and f"Full log: {launcher_log(tmp_path)}" in shown
    assert ("the app is about to crash" in shown) == (todo == "abort")  # the log's end, the app's last words


def test_compiled_launcher_without_python_says_so_in_one_dialog(rig: Rig, tmp_path: Path) -> None:
    executable = tmp_path / "VoiceVibe"
    assert launcher.compile_launcher(str(tmp_path / "gone" / "python"), executable, dialog=str(rig.osascript)) is None
    done = subprocess.run([str(executable)], env={**os.environ, "HOME": str(tmp_path)}, timeout=DEADLINE_S)
    assert done.returncode == 127
    [text] = dialogs(tmp_path)
    assert "VoiceVibe cannot start" in text and "No such file or directory" in text and "make run" in text
    assert launcher_log(tmp_path).read_text().splitlines()[-1].endswith("VoiceVibe exited with code 127")


@pytest.mark.parametrize("kind", ["compiled", "script"])
def test_the_launcher_log_keeps_one_previous_file_past_its_cap(rig: Rig, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch, kind: str) -> None:
    """At launch, a launcher.log over LOG_CAP_BYTES becomes launcher.log.1 (replacing the older one); one at the
    cap is appended to. The same rule in the compiled launcher and in the script used without a compiler."""
    if kind == "compiled":
        command = [str(rig.launcher)]
    else:
        monkeypatch.setattr(launcher, "compile_launcher", lambda *a, **k: "no C compiler `cc`")
        [bundle] = install_launcher(platform="darwin", home=tmp_path / "installed", python=str(rig.python))
        command = ["bash", str(bundle / "Contents" / "MacOS" / "VoiceVibe")]
    log = launcher_log(tmp_path)
    previous = log.with_name("launcher.log.1")
    log.parent.mkdir(parents=True)
    previous.write_text("the show before last\n")
    at_cap = "the last show\n" + "x" * (LOG_CAP_BYTES - len("the last show\n") - 1) + "\n"
    log.write_text(at_cap)
    env = {**os.environ, "HOME": str(tmp_path), "STANDIN_DO": "exit 0"}

    assert subprocess.run(command, env=env, timeout=DEADLINE_S).returncode == 0
    grown = log.read_text()
    assert grown.startswith(at_cap) and "starting VoiceVibe" in grown[len(at_cap):]
    assert previous.read_text() == "the show before last\n"

    assert subprocess.run(command, env=env, timeout=DEADLINE_S).returncode == 0
    assert previous.read_text() == grown
    fresh = log.read_text()
    assert "the last show" not in fresh and fresh.count("starting VoiceVibe") == 1 and "from the app" in fresh


@linux_only("the app fails for want of a display only where there can be none (a Mac opens the window)")
def test_a_failing_app_started_by_the_bundle_shows_the_log_in_one_dialog(rig: Rig, tmp_path: Path) -> None:
    """The real app through the compiled launcher, failing for want of a display: its error is in the dialog, which
    the app shows (run_from_bundle) and the launcher does not show again."""
    executable = tmp_path / "VoiceVibe"
    assert launcher.compile_launcher(sys.executable, executable, dialog=str(rig.osascript)) is None
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    done = subprocess.run([str(executable)], env={**env, "HOME": str(tmp_path)}, timeout=WINDOW_TIMEOUT_S)
    assert done.returncode == 2
    [text] = dialogs(tmp_path)
    assert "code 2" in text and "no display" in text and "launcher.log" in text
    assert "VoiceVibe exited with code 2" in launcher_log(tmp_path).read_text()


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
