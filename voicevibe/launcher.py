"""Double-click launchers (`voicevibe install-launcher`) and keeping a Mac awake during a show.

macOS: `~/Desktop/VoiceVibe.app`. Its executable is a tiny C program (assets/mac_launcher.c,
compiled with `cc` at install time) that runs this venv's Python (absolute path) with
`-m voicevibe` (the window) as its child and stays alive meanwhile: macOS asks for the microphone
on behalf of that launcher, the bundle's own process, so the prompt names VoiceVibe. (Had it
exec'd Python, python.org's pythonw stub would turn the bundle's process into Python.app, which
has no microphone text; a shell-script executable gets no prompt, or one naming /bin/bash.) It
passes stop signals on to Python, exits with Python's status and logs to
~/Library/Logs/voicevibe/launcher.log (moved to launcher.log.1 at launch once over LOG_CAP_BYTES).
When the app fails, `run_from_bundle` shows the end of the log in a dialog (osascript); the C
program shows one only when Python cannot start or dies by a crash or SIGKILL. Without a compiler
the executable is a bash script, with a warning. The bundle is signed ad hoc when `codesign`
exists; its Info.plist carries the microphone and local-network usage texts and the oldest
macOS the pinned mlx runs on.
Linux: a `.desktop` entry in ~/.local/share/applications (and on ~/Desktop when it exists).
"""

from __future__ import annotations

import logging
import os
import plistlib
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
import traceback
from collections.abc import Callable
from importlib import resources
from pathlib import Path

from voicevibe import __version__, macos
from voicevibe.pycheck import MIN_MACOS

log = logging.getLogger(__name__)

APP_NAME = "VoiceVibe"
BUNDLE_ID = "org.voicevibe.app"
MIC_USAGE = ("VoiceVibe listens to the performer's microphone and turns the speech into images "
             "on stage. The audio stays on this Mac.")
LOCAL_NETWORK_USAGE = ("VoiceVibe sends the image prompts over your stage network to the computer that draws "
                       "the pictures on the big screen. Without this, the screen gets nothing.")
DESKTOP_FILE = "voicevibe.desktop"
OSASCRIPT = "/usr/bin/osascript"
LOG_ENV, DIALOG_ENV = "VOICEVIBE_LAUNCHER_LOG", "VOICEVIBE_DIALOG"  # set by the compiled launcher
DIALOG_LOG_LINES = 6
LOG_CAP_BYTES = 1024 * 1024  # past this at launch, launcher.log becomes launcher.log.1 (one previous file kept)
COMPILE_SECONDS = 120
SIGN_SECONDS = 120
NO_COMPILER = ("VoiceVibe.app runs a shell script ({why}): macOS may not ask for the microphone for it, and "
               "the show would hear silence. Install the Xcode command line tools (xcode-select --install), "
               "then run `voicevibe install-launcher` again")

MAC_SCRIPT = """#!/bin/bash
# VoiceVibe launcher, written by `voicevibe install-launcher`. Runs the installed app and keeps
# a log; if the app fails, shows the end of the log in a dialog.
LOG_DIR="$HOME/Library/Logs/voicevibe"
mkdir -p "$LOG_DIR"
LOG="$LOG_DIR/launcher.log"
if [ -f "$LOG" ] && [ "$(wc -c < "$LOG")" -gt {log_cap} ]; then
  mv -f "$LOG" "$LOG.1"
fi
echo "=== $(date '+%Y-%m-%d %H:%M:%S') starting VoiceVibe" >> "$LOG"
{command} >> "$LOG" 2>&1
rc=$?
echo "=== $(date '+%Y-%m-%d %H:%M:%S') VoiceVibe exited with code $rc" >> "$LOG"
if [ "$rc" -ne 0 ]; then
  detail=$(tail -n 6 "$LOG" | tr '"\\\\' "'/")
  /usr/bin/osascript -e "display dialog \\"VoiceVibe could not start or stopped with an error (code $rc).

$detail

Full log: $LOG\\" with title \\"VoiceVibe\\" buttons {{\\"OK\\"}} default button 1 with icon stop" >/dev/null 2>&1
fi
exit "$rc"
"""


def app_command(python: str | None = None) -> list[str]:
    """The command a launcher runs: this venv's Python (absolute path) running the window."""
    return [str(Path(python or sys.executable).absolute()), "-m", "voicevibe"]


def info_plist(version: str = __version__) -> dict[str, object]:
    """The .app bundle's Info.plist, with the microphone and local-network usage descriptions."""
    return {
        "CFBundleName": APP_NAME,
        "CFBundleDisplayName": APP_NAME,
        "CFBundleIdentifier": BUNDLE_ID,
        "CFBundleExecutable": APP_NAME,
        "CFBundlePackageType": "APPL",
        "CFBundleVersion": version,
        "CFBundleShortVersionString": version,
        "CFBundleInfoDictionaryVersion": "6.0",
        "LSMinimumSystemVersion": ".".join(map(str, MIN_MACOS)),  # what mlx 0.26 (moshi-mlx's pin) needs
        "NSHighResolutionCapable": True,
        # Asked for on behalf of the responsible process, the launcher (assets/mac_launcher.c): this bundle.
        "NSMicrophoneUsageDescription": MIC_USAGE,
        # macOS 15 asks before an app sends to its local network: the OSC prompts go to a render PC on the LAN.
        "NSLocalNetworkUsageDescription": LOCAL_NETWORK_USAGE,
    }


def c_string(text: str) -> str:
    """A C string literal for `text` (anything but plain ASCII as octal escapes)."""
    plain = (ch if ch.isascii() and ch.isprintable() and ch not in '"\\?' else
             "".join(f"\\{byte:03o}" for byte in ch.encode()) for ch in text)
    return '"' + "".join(plain) + '"'


def launcher_source(python: str, dialog: str = OSASCRIPT) -> str:
    """The C launcher's source for this venv's Python."""
    template = resources.files("voicevibe").joinpath("assets/mac_launcher.c").read_text(encoding="utf-8")
    return (f"#define VOICEVIBE_PYTHON {c_string(python)}\n"
            f"#define VOICEVIBE_DIALOG {c_string(dialog)}\n"
            f"#define VOICEVIBE_LOG_CAP {LOG_CAP_BYTES}\n"
            f"#define VOICEVIBE_DIALOG_LINES {DIALOG_LOG_LINES}\n" + template)


def compile_launcher(python: str, out: Path, *, dialog: str = OSASCRIPT, compiler: str = "cc") -> str | None:
    """Compile the launcher into `out`; None when done, else why not (no compiler, or its error)."""
    found = shutil.which(compiler)
    if found is None:
        return f"no C compiler `{compiler}`"
    with tempfile.TemporaryDirectory(prefix="voicevibe-launcher-") as tmp:
        source = Path(tmp) / "launcher.c"
        source.write_text(launcher_source(python, dialog), encoding="utf-8")
        try:
            done = subprocess.run([found, "-O2", "-Wall", "-o", str(out), str(source)], capture_output=True,
                                  text=True, timeout=COMPILE_SECONDS)
        except (OSError, subprocess.TimeoutExpired) as e:
            return f"`{compiler}` failed: {e}"
    if done.returncode != 0:  # a Mac without the command line tools has a cc that only offers to install them
        return f"`{compiler}` failed: {(done.stderr or done.stdout).strip()[-300:]}"
    return None


def sign_ad_hoc(bundle: Path) -> str | None:
    """`codesign --force --deep --sign -` the bundle when codesign exists; None when signed, else why not."""
    codesign = shutil.which("codesign")
    if codesign is None:
        return "no codesign"
    # macOS: cc's output is unsigned, or on Apple Silicon linker-signed for the executable alone; signing the
    # bundle seals its Info.plist (the usage texts) in. TCC keys a grant to the signature: a re-sign asks again.
    try:
        done = subprocess.run([codesign, "--force", "--deep", "--sign", "-", str(bundle)], capture_output=True,
                              text=True, timeout=SIGN_SECONDS)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"codesign failed: {e}"
    return None if done.returncode == 0 else f"codesign failed: {done.stderr.strip()[-300:]}"


def write_mac_app(folder: Path, command: list[str]) -> Path:
    """Write VoiceVibe.app into `folder` (replacing an older one); returns the bundle path."""
    bundle = folder / f"{APP_NAME}.app"
    if bundle.exists():
        shutil.rmtree(bundle)
    contents = bundle / "Contents" / "MacOS"
    contents.mkdir(parents=True)
    with open(bundle / "Contents" / "Info.plist", "wb") as fh:
        plistlib.dump(info_plist(), fh)
    executable = contents / APP_NAME
    why = compile_launcher(command[0], executable)
    if why is not None:
        log.warning(NO_COMPILER.format(why=why))
        executable.write_text(MAC_SCRIPT.format(command=shlex.join(command), log_cap=LOG_CAP_BYTES),
                              encoding="utf-8")
    executable.chmod(executable.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    unsigned = sign_ad_hoc(bundle)
    if unsigned is not None:
        log.info("VoiceVibe.app is not signed (%s)", unsigned)
    return bundle


def desktop_entry(command: list[str]) -> str:
    """A freedesktop.org .desktop entry that runs `command`."""
    exec_line = " ".join('"' + part.replace("\\", "\\\\").replace('"', '\\"') + '"' for part in command)
    return "\n".join([
        "[Desktop Entry]",
        "Type=Application",
        f"Name={APP_NAME}",
        "Comment=Live voice to visuals: the performance window",
        f"Exec={exec_line}",
        "Icon=audio-input-microphone",
        "Terminal=false",
        "Categories=AudioVideo;Audio;",
        "",
    ])


def write_linux_entries(command: list[str], home: Path) -> list[Path]:
    """The .desktop entry in the applications menu, and on the Desktop when there is one."""
    data_home = Path(os.environ.get("XDG_DATA_HOME") or home / ".local" / "share")
    targets = [data_home / "applications" / DESKTOP_FILE]
    if (home / "Desktop").is_dir():
        targets.append(home / "Desktop" / DESKTOP_FILE)
    text = desktop_entry(command)
    for path in targets:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
        path.chmod(0o755)  # desktops only launch executable entries from ~/Desktop
    return targets


def install_launcher(*, platform: str | None = None, home: Path | None = None,
                     python: str | None = None) -> list[Path]:
    """Write the platform's launcher(s); returns what was written."""
    home = home or Path.home()
    command = app_command(python)
    if (platform or macos.PLATFORM) == "darwin":
        desktop = home / "Desktop"
        desktop.mkdir(parents=True, exist_ok=True)
        return [write_mac_app(desktop, command)]
    return write_linux_entries(command, home)


def exec_command(entry: Path) -> list[str]:
    """The command line of a .desktop entry's Exec key (quoted as the spec says)."""
    for line in entry.read_text(encoding="utf-8").splitlines():
        if line.startswith("Exec="):
            return shlex.split(line[len("Exec="):])
    raise ValueError(f"{entry}: no Exec line")


def keep_awake(pid: int, *, platform: str | None = None) -> subprocess.Popen | None:
    """On macOS, `caffeinate -dimsu -w pid`: no display, idle or system sleep while the app runs."""
    if (platform or macos.PLATFORM) != "darwin":
        return None
    caffeinate = shutil.which("caffeinate")
    if caffeinate is None:
        log.warning("caffeinate not found: the Mac may sleep during the show (turn sleep off by hand)")
        return None
    return subprocess.Popen([caffeinate, "-dimsu", "-w", str(pid)])


def failure_dialog(code: int, log_path: Path, dialog: str = OSASCRIPT) -> list[str]:
    """The osascript command that shows the end of the launcher log after the app failed."""
    try:
        tail = log_path.read_text(encoding="utf-8", errors="replace").splitlines()[-DIALOG_LOG_LINES:]
    except OSError as e:
        tail = [f"(cannot read the log: {e.strerror})"]
    detail = "\n".join(tail).replace('"', "'").replace("\\", "/")
    text = (f"VoiceVibe could not start or stopped with an error (code {code}).\n\n{detail}\n\n"
            f"Full log: {log_path}").replace('"', "'")
    return [dialog, "-e", f'display dialog "{text}" with title "{APP_NAME}" buttons {{"OK"}} default button 1 '
            "with icon stop"]


def run_from_bundle(main: Callable[[], int]) -> int:
    """Run the app; when the .app's launcher started it (LOG_ENV set) and it fails, show the log in a dialog."""
    log_path = os.environ.get(LOG_ENV)
    if not log_path:
        return main()
    try:
        code = main()
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    except Exception:  # the top of the app started from the Dock: the dialog is the only place it shows
        traceback.print_exc()
        code = 1
    sys.stdout.flush()
    sys.stderr.flush()
    print(f"=== VoiceVibe exited with code {code}", file=sys.stderr, flush=True)
    if code not in (0, 130):  # 130: interrupted on purpose
        dialog = os.environ.get(DIALOG_ENV) or OSASCRIPT
        try:
            subprocess.run(failure_dialog(code, Path(log_path), dialog), timeout=None, check=False)
        except OSError as e:
            print(f"cannot show the error dialog: {e}", file=sys.stderr)
    return code
