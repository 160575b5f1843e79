"""Is this Python one VoiceVibe can run on? Standard library only.

scripts/setup.sh runs this file with each candidate interpreter before anything is installed
(`python3.12 voicevibe/pycheck.py`: exit 0 and a note, or exit 1 and the reasons); `voicevibe
doctor` imports it. The checks are pure functions of the facts, so tests fake the platform.
"""

from __future__ import annotations

import platform
import sys
from dataclasses import dataclass

# moshi-mlx 0.3.0 pins sentencepiece==0.2.0, which has wheels for cp310-cp312 only on macOS; its source
# build fails on 3.13 (CMake 4, no nproc). mlx 0.26 has no cp314 wheel either.
PYTHON_MIN, PYTHON_MAX = (3, 10), (3, 12)
# mlx 0.26.x (moshi-mlx's pin) is built for macOS 13.5 (wheel tag macosx_13_0) and up; later mlx needs 14.0.
MIN_MACOS = (13, 5)
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

    @classmethod
    def current(cls) -> Facts:
        """The facts of the running interpreter (Tk is asked without opening a window)."""
        major, minor, micro = sys.version_info[:3]
        return cls((major, minor, micro), sys.platform, platform.machine(), tk_version(),
                   platform.mac_ver()[0] if sys.platform == "darwin" else "")


def tk_version() -> str | None:
    """The Tk version tkinter was built with (no display needed); None without tkinter."""
    try:
        import tkinter
    except ImportError:
        return None
    return str(tkinter.TkVersion)


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
    """No tkinter: no window."""
    if facts.tk_version is not None:
        return None
    fix = INSTALL_HINT if facts.platform == "darwin" else "apt install python3-tk (or your distribution's Tk package)"
    return f"Python {_dotted(facts.version)} has no Tk (tkinter), which the window needs", fix


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
    tk = f"Tk {facts.tk_version}" if facts.tk_version else "no Tk"
    mac = f", macOS {facts.mac_version}" if facts.mac_version else ""
    return f"Python {_dotted(facts.version)}, {tk}, {facts.machine}{mac}"


def main() -> int:
    """Exit 0 when this Python will do (notes on stderr), 1 with the reasons."""
    facts = Facts.current()
    found = problems(facts)
    for line in found or notes(facts):
        print(("  - " if found else "note: ") + line, file=sys.stderr)
    if not found:
        print(describe(facts))
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
