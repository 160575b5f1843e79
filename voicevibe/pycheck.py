"""Is this Python one VoiceVibe can run on? Standard library only.

scripts/setup.sh runs this file with each candidate interpreter before anything is installed
(`python3.12 voicevibe/pycheck.py`: exit 0 and a note, or exit 1 and the reasons); `voicevibe
doctor` imports it. The checks are pure functions of the facts, so tests fake the platform.
"""

from __future__ import annotations

import os
import platform
import posixpath
import sys
from dataclasses import dataclass

# moshi-mlx 0.3.0 pins sentencepiece==0.2.0, which has wheels for cp310-cp312 only on macOS; its source
# build fails on 3.13 (CMake 4, no nproc). mlx 0.26 has no cp314 wheel either.
PYTHON_MIN, PYTHON_MAX = (3, 10), (3, 12)
# mlx 0.26.x (moshi-mlx's pin) is built for macOS 13.5 (wheel tag macosx_13_0) and up; later mlx needs 14.0.
MIN_MACOS = (13, 5)
# Tk 8.6.12 and older on macOS 14 leave some windows deaf to clicks; 8.6.13 fixed it (python.org's current
# 3.11 and 3.12 installers ship 8.6.13 or later).
MIN_MAC_TK = (8, 6, 13)
# macOS asks before an app reads these (Files & Folders); the .app's Python would be the one asking.
PROTECTED_FOLDERS = (("Desktop", "Desktop"), ("Documents", "Documents"), ("Downloads", "Downloads"),
                     ("Library/Mobile Documents", "iCloud Drive"))
SUGGESTED_PLACE = "~/VoiceVibe"
PYTHON_ORG = "https://www.python.org/downloads/macos/"
INSTALL_HINT = (f"install Python 3.12 from python.org ({PYTHON_ORG}, the macOS 64-bit universal2 installer: "
                "it ships Tk 8.6), then run `make run` again")


@dataclass(frozen=True)
class Facts:
    """What the checks look at; `current()` reads them from this interpreter."""

    version: tuple[int, int, int]
    platform: str  # sys.platform
    machine: str  # platform.machine(): arm64 on Apple Silicon, x86_64 under Rosetta or on Intel
    tk_version: str | None  # the Tk tkinter was built with ("8.6", "9.0"), None when tkinter is missing
    mac_version: str = ""  # platform.mac_ver()[0] ("14.5"), "" elsewhere
    tk_patchlevel: str = ""  # Tk's full version ("8.6.13"), "" when it cannot be told

    @classmethod
    def current(cls) -> Facts:
        """The facts of the running interpreter (Tk is asked without opening a window)."""
        major, minor, micro = sys.version_info[:3]
        version = tk_version()
        return cls((major, minor, micro), sys.platform, platform.machine(), version,
                   platform.mac_ver()[0] if sys.platform == "darwin" else "",
                   tk_patchlevel(version) if version else "")


def tk_version() -> str | None:
    """The Tk version tkinter was built with (no display needed); None without tkinter."""
    try:
        import tkinter
    except ImportError:
        return None
    return str(tkinter.TkVersion)


def tk_patchlevel(version: str) -> str:
    """Tk's full version ("8.6.13") without loading Tk: loading it needs a display, and on macOS it would put a
    Python icon in the Dock. Tcl reads every package index on its path when asked for a package it lacks; Tk's
    index then says which Tk it is (`package versions Tk`). Without one, Tcl's own patchlevel stands in:
    python.org's installers and Homebrew's tcl-tk build Tcl and Tk from the same release. "" when unknown."""
    try:
        import tkinter
    except ImportError:
        return ""
    try:
        tcl = tkinter.Tcl()
        tcl.eval("catch {package require voicevibe-no-such-package}")
        listed = [v for v in str(tcl.eval("package versions Tk")).split() if v.startswith(version + ".")]
        if listed:
            return max(listed, key=_version_tuple)
        level = str(tcl.call("info", "patchlevel"))
    except tkinter.TclError:  # no Tcl library to start an interpreter with
        return ""
    return level if level.startswith(version + ".") else ""


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".") if part.isdigit())


def _dotted(version: tuple[int, ...]) -> str:
    return ".".join(map(str, version))


Finding = tuple[str, str]  # (what is wrong, how to fix it); typing.Tuple, so an old Python can read this file


def python_problem(facts: Facts) -> Finding | None:
    """A Python outside 3.10-3.12."""
    if PYTHON_MIN <= facts.version[:2] <= PYTHON_MAX:
        return None
    return (f"Python {_dotted(facts.version)}: VoiceVibe needs Python 3.10-3.12 (moshi-mlx 0.3.0 pins sentencepiece "
            "0.2.0, which has no wheel for 3.13 on macOS and does not build there)",
            INSTALL_HINT if facts.platform == "darwin" else "install python3.12 (or 3.10/3.11) and run setup again")


def machine_problem(facts: Facts) -> Finding | None:
    """On macOS, a Python that does not run as arm64."""
    if facts.platform != "darwin" or facts.machine == "arm64":
        return None
    return (f"this Python runs as {facts.machine}: MLX needs Apple Silicon and a native arm64 Python (an Intel "
            "Homebrew Python in /usr/local, or one under Rosetta, finds no mlx wheel)", INSTALL_HINT)


def macos_problem(facts: Facts) -> Finding | None:
    """A macOS older than the pinned mlx supports."""
    if facts.platform != "darwin" or not facts.mac_version or _version_tuple(facts.mac_version) >= MIN_MACOS:
        return None
    return (f"macOS {facts.mac_version}: MLX 0.26 needs macOS {_dotted(MIN_MACOS)} or newer (14 recommended)",
            "update macOS in System Settings > General > Software Update")


def tk_problem(facts: Facts) -> Finding | None:
    """No tkinter: no window; on macOS, a Tk older than 8.6.13 (by patchlevel)."""
    if facts.tk_version is None:
        fix = (INSTALL_HINT if facts.platform == "darwin" else
               "apt install python3-tk (or your distribution's Tk package)")
        return f"Python {_dotted(facts.version)} has no Tk (tkinter), which the window needs", fix
    level = _version_tuple(facts.tk_patchlevel)
    if facts.platform == "darwin" and len(level) == 3 and level < MIN_MAC_TK:
        return (f"Tk {facts.tk_patchlevel}: on macOS 14 and later, Tk before {_dotted(MIN_MAC_TK)} leaves some "
                "windows deaf to clicks", f"install the current Python 3.12 from python.org ({PYTHON_ORG}: it ships "
                f"Tk {_dotted(MIN_MAC_TK)} or later), then run `make run` again")
    return None


def protected_folder(platform: str, path: str, home: str) -> str | None:
    """On macOS, the privacy-protected user folder `path` lies in ("Documents", "iCloud Drive"...); None when it
    lies in none, or on another system."""
    if platform != "darwin":
        return None
    path, home = posixpath.normpath(path), posixpath.normpath(home)
    for folder, label in PROTECTED_FOLDERS:
        root = posixpath.join(home, folder)
        if path == root or path.startswith(root + "/"):
            return label
    return None


def place_problem(platform: str, path: str, home: str) -> Finding | None:
    """A checkout or virtualenv inside a protected folder: the .app's first launch asks for that folder on behalf
    of Python, and "Don't Allow" breaks VoiceVibe's imports."""
    label = protected_folder(platform, path, home)
    if label is None:
        return None
    return (f"{path} is in {label}: macOS asks before an app reads {label}, so the .app's first launch shows a "
            "Files & Folders prompt naming Python, and \"Don't Allow\" stops VoiceVibe from starting",
            f"move the VoiceVibe folder out of {label} to a folder of its own such as {SUGGESTED_PLACE} "
            f"(`mv <the folder> {SUGGESTED_PLACE}`), remove its .venv there (it remembers the old place) and run "
            "`make run` again")


def problems(facts: Facts) -> list[str]:
    """Why VoiceVibe cannot run on this Python (empty: it can), each with the fix."""
    found = (check(facts) for check in (python_problem, machine_problem, macos_problem, tk_problem))
    return [f"{what}; {fix}" for what, fix in (f for f in found if f is not None)]


def notes(facts: Facts) -> list[str]:
    """Advice that does not stop VoiceVibe (Tk 9 on macOS)."""
    if facts.platform == "darwin" and facts.tk_version and _version_tuple(facts.tk_version)[:1] >= (9,):
        return [f"Tk {facts.tk_version} (Homebrew's python-tk links Tk 9): VoiceVibe makes trackpad scrolling "
                "work, but a mouse wheel scrolls its panels in big jumps; python.org's Python 3.12 ships Tk 8.6, "
                f"which is recommended ({PYTHON_ORG})"]
    return []


def describe(facts: Facts) -> str:
    """One line: Python, Tk and the machine."""
    tk = f"Tk {facts.tk_patchlevel or facts.tk_version}" if facts.tk_version else "no Tk"
    mac = f", macOS {facts.mac_version}" if facts.mac_version else ""
    return f"Python {_dotted(facts.version)}, {tk}, {facts.machine}{mac}"


def main(argv: list[str] | None = None) -> int:
    """Exit 0 when this Python will do (notes on stderr), 1 with the reasons. `--place DIR...`: warn (stderr) about
    each folder in a protected one; exit 0 either way."""
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["--place"]:
        warned: list[str] = []
        for path in map(os.path.realpath, args[1:]):
            place = place_problem(sys.platform, path, os.path.expanduser("~"))
            if place is not None and not any(path.startswith(w + os.sep) for w in warned):  # a .venv inside: once
                warned.append(path)
                print(f"warning: {place[0]}\n  fix: {place[1]}", file=sys.stderr)
        return 0
    facts = Facts.current()
    found = problems(facts)
    for line in found or notes(facts):
        print(("  - " if found else "note: ") + line, file=sys.stderr)
    if not found:
        print(describe(facts))
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
