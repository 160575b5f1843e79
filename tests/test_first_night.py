"""A Mac's first night, the parts decided before the app starts: a checkout in a folder macOS protects, a Tk
older than 8.6.13, missing Xcode command line tools. Pure functions with the platform faked, doctor's rows
with a fake `xcode-select` on PATH. (setup.sh's side is in test_setup.py.)"""

from __future__ import annotations

import os
import tkinter
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from voicevibe.config_files import load_config
from voicevibe.doctor import checks as doctor
from voicevibe.doctor.mac import check_install_folder, check_xcode_tools, xcode_tools
from voicevibe.pycheck import Facts, place_problem, protected_folder, tk_patchlevel, tk_problem

HOME = "/Users/ada"


@pytest.mark.parametrize(("path", "label"), [
    (f"{HOME}/Documents/voicevibe", "Documents"),
    (f"{HOME}/Desktop/voicevibe/.venv", "Desktop"),
    (f"{HOME}/Downloads/voicevibe-main", "Downloads"),
    (f"{HOME}/Library/Mobile Documents/com~apple~CloudDocs/voicevibe", "iCloud Drive"),
    (f"{HOME}/Documents", "Documents"),
    (f"{HOME}/VoiceVibe", None),
    (f"{HOME}/DocumentsOld/voicevibe", None),  # a sibling whose name starts the same is not protected
    (f"{HOME}/code/Documents/voicevibe", None),  # a Documents folder elsewhere is not the protected one
    ("/Users/bob/Documents/voicevibe", None),  # another user's home is not this one's
])
def test_protected_folders_by_path(path: str, label: str | None) -> None:
    assert protected_folder("darwin", path, HOME) == label
    assert protected_folder("linux", path, HOME) is None  # only macOS protects them


def test_a_checkout_in_documents_is_named_with_a_place_to_move_it_to() -> None:
    what, fix = place_problem("darwin", f"{HOME}/Documents/voicevibe", HOME)
    assert "is in Documents" in what and "Files & Folders prompt naming Python" in what
    assert "~/VoiceVibe" in fix and ".venv" in fix


@pytest.mark.parametrize(("platform", "level", "refused"), [
    ("darwin", "8.6.12", True), ("darwin", "8.6.13", False), ("darwin", "8.6.16", False),
    ("darwin", "9.0.1", False), ("darwin", "", False),  # unknown: not refused on a guess
    ("linux", "8.6.12", False),  # the click bug is macOS's
])
def test_tk_before_8_6_13_is_refused_on_macos(platform: str, level: str, refused: bool) -> None:
    facts = Facts((3, 12, 4), platform, "arm64", level[:3] or "8.6", "14.5", level)
    found = tk_problem(facts)
    assert (found is not None) == refused
    if found is not None:
        assert f"Tk {level}" in found[0] and "python.org" in found[1]


def test_tk_patchlevel_is_read_without_a_display(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DISPLAY", raising=False)
    level = tk_patchlevel("8.6")
    assert level.startswith("8.6.") and level.split(".")[2].isdigit()
    assert tk_patchlevel("9.9") == ""  # a level of another Tk than tkinter's is not taken
    assert Facts.current().tk_patchlevel == level


class TclWithoutTkIndex:
    """A Tcl interpreter whose package path has no Tk index: Tcl's own patchlevel must stand in."""

    def eval(self, script: str) -> str:
        return ""

    def call(self, *args: str) -> str:
        return "8.6.12"


def test_tk_patchlevel_falls_back_to_tcl_and_gives_up_without_tcl(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tkinter, "Tcl", TclWithoutTkIndex)
    assert tk_patchlevel("8.6") == "8.6.12"

    def no_tcl() -> None:
        raise tkinter.TclError("Can't find a usable init.tcl")

    monkeypatch.setattr(tkinter, "Tcl", no_tcl)
    assert tk_patchlevel("8.6") == ""


def test_doctor_fails_tk_8_6_12_on_a_mac(tmp_path: Path) -> None:
    config = load_config(overrides=[{"session": {"log_dir": str(tmp_path)}}], include_defaults_files=False)
    probe = doctor.Probe(config, facts=Facts((3, 12, 4), "darwin", "arm64", "8.6", "14.5", "8.6.12"),
                         platform="darwin")
    (tk,) = [row for row in doctor.run_checks(probe, [doctor.check_python]) if row.name == "Tk"]
    assert not tk.ok and tk.needed and "Tk 8.6.12" in tk.detail and "Tk 8.6.13 or later" in tk.fix


@dataclass
class MacFacts:
    """What the first-night checks read of doctor's Probe."""

    platform: str = "darwin"
    places: dict[str, Path] = field(default_factory=dict)

    def install_places(self) -> dict[str, Path]:
        return self.places

    def xcode_tools(self) -> str | None:
        return xcode_tools()  # the real lookup: the tests put a fake xcode-select on PATH


def test_doctor_warns_about_a_checkout_in_a_protected_folder_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", HOME)
    checkout = Path(f"{HOME}/Documents/voicevibe")
    (row,) = check_install_folder(MacFacts(places={"checkout": checkout, "virtualenv": checkout / ".venv"}))
    assert not row.ok and not row.needed  # a warning (the .venv inside it is the same move): a terminal show starts
    assert "the checkout" in row.detail and "~/VoiceVibe" in row.fix
    venv_elsewhere = {"checkout": Path(f"{HOME}/VoiceVibe"), "virtualenv": Path(f"{HOME}/Desktop/venvs/vv")}
    (row,) = check_install_folder(MacFacts(places=venv_elsewhere))
    assert "the virtualenv" in row.detail and "Desktop" in row.detail
    (fine,) = check_install_folder(MacFacts(places={"checkout": Path(f"{HOME}/VoiceVibe")}))
    assert fine.ok
    assert check_install_folder(MacFacts("linux", {"checkout": checkout})) == []


def fake_xcode_select(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, body: str) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    tool = bin_dir / "xcode-select"
    tool.write_text("#!/bin/sh\n" + body + "\n")
    tool.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")


def test_doctor_says_how_to_install_missing_xcode_tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fake_xcode_select(tmp_path, monkeypatch, 'echo "xcode-select: error: unable to get active developer directory" '
                      ">&2; exit 2")
    (row,) = check_xcode_tools(MacFacts())
    assert not row.ok and not row.needed and "not installed" in row.detail
    assert "xcode-select --install" in row.fix
    assert check_xcode_tools(MacFacts("linux")) == []


def test_doctor_finds_installed_xcode_tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tools = tmp_path / "CommandLineTools"
    tools.mkdir()
    fake_xcode_select(tmp_path, monkeypatch, f'echo "{tools}"')
    (row,) = check_xcode_tools(MacFacts())
    assert row.ok and str(tools) in row.detail
    fake_xcode_select(tmp_path, monkeypatch, f'echo "{tmp_path}/removed"')  # still selected, but deleted
    (row,) = check_xcode_tools(MacFacts())
    assert not row.ok
