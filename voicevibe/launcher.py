"""Double-click launchers (`voicevibe install-launcher`) and keeping a Mac awake during a show.

macOS: `~/Desktop/VoiceVibe.app`, a bundle whose executable is a bash script that runs this
venv's Python (absolute path) with `-m voicevibe` (the window), logs to
~/Library/Logs/voicevibe/launcher.log and shows an error dialog (osascript) when the app fails.
Its Info.plist carries the microphone-usage description macOS asks for.
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
from pathlib import Path

from . import __version__

log = logging.getLogger(__name__)

APP_NAME = "VoiceVibe"
BUNDLE_ID = "org.voicevibe.app"
MIC_USAGE = ("VoiceVibe listens to the performer's microphone and turns the speech into images "
             "on stage. The audio stays on this Mac.")
DESKTOP_FILE = "voicevibe.desktop"

MAC_SCRIPT = """#!/bin/bash
# VoiceVibe launcher, written by `voicevibe install-launcher`. Runs the installed app and keeps
# a log; if the app fails, shows the end of the log in a dialog.
LOG_DIR="$HOME/Library/Logs/voicevibe"
mkdir -p "$LOG_DIR"
LOG="$LOG_DIR/launcher.log"
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
    """The .app bundle's Info.plist, with the microphone-usage description."""
    return {
        "CFBundleName": APP_NAME,
        "CFBundleDisplayName": APP_NAME,
        "CFBundleIdentifier": BUNDLE_ID,
        "CFBundleExecutable": APP_NAME,
        "CFBundlePackageType": "APPL",
        "CFBundleVersion": version,
        "CFBundleShortVersionString": version,
        "CFBundleInfoDictionaryVersion": "6.0",
        "LSMinimumSystemVersion": "11.0",
        "NSHighResolutionCapable": True,
        "NSMicrophoneUsageDescription": MIC_USAGE,
    }


def write_mac_app(folder: Path, command: list[str]) -> Path:
    """Write VoiceVibe.app into `folder` (replacing an older one); returns the bundle path."""
    bundle = folder / f"{APP_NAME}.app"
    if bundle.exists():
        shutil.rmtree(bundle)
    macos = bundle / "Contents" / "MacOS"
    macos.mkdir(parents=True)
    with open(bundle / "Contents" / "Info.plist", "wb") as fh:
        plistlib.dump(info_plist(), fh)
    script = macos / APP_NAME
    script.write_text(MAC_SCRIPT.format(command=shlex.join(command)), encoding="utf-8")
    script.chmod(script.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
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


def install_launcher(*, platform: str = sys.platform, home: Path | None = None,
                     python: str | None = None) -> list[Path]:
    """Write the platform's launcher(s); returns what was written."""
    home = home or Path.home()
    command = app_command(python)
    if platform == "darwin":
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


def keep_awake(pid: int, *, platform: str = sys.platform) -> subprocess.Popen | None:
    """On macOS, `caffeinate -dimsu -w pid`: no display, idle or system sleep while the app runs."""
    if platform != "darwin":
        return None
    caffeinate = shutil.which("caffeinate")
    if caffeinate is None:
        log.warning("caffeinate not found: the Mac may sleep during the show (turn sleep off by hand)")
        return None
    return subprocess.Popen([caffeinate, "-dimsu", "-w", str(pid)])
