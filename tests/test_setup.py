"""scripts/setup.sh and the Makefile, run for real in a throwaway copy of the repo.

The copy's .venv is a stand-in: its `python` is this test's interpreter, its `pip` only records
that it was called (the real one would install for minutes), its `voicevibe` runs this checkout.
What is under test is the shell: which Python it picks (pycheck.py run by each candidate, some
made to look like Python 3.13 or an Intel Mac through a sitecustomize), and that a second
`make run` with pip pointed at an unreachable index starts the app without calling pip at all.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
UNREACHABLE_INDEX = "http://127.0.0.1:9/"  # the discard port: nothing answers
RUN_TIMEOUT_S = 300


def checkout(tmp_path: Path) -> Path:
    """The files setup.sh and the Makefile need, copied out of the repo."""
    copy = tmp_path / "voicevibe-copy"
    for rel in ("Makefile", "pyproject.toml", "scripts/setup.sh", "voicevibe/pycheck.py"):
        (copy / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / rel, copy / rel)
    return copy


def script(path: Path, body: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)
    return path


def stand_in_venv(copy: Path, pip_log: Path) -> None:
    """.venv/bin: python = this interpreter, pip = a recorder, voicevibe = this checkout's app."""
    bin_dir = copy / ".venv" / "bin"
    script(bin_dir / "python", f'exec "{sys.executable}" "$@"')
    script(bin_dir / "pip", f'echo "[pip] $*"\necho "$* index=${{PIP_INDEX_URL:-}}" >> "{pip_log}"')
    script(bin_dir / "voicevibe", f'PYTHONPATH="{REPO}" exec "{sys.executable}" -m voicevibe "$@"')


def make_run(copy: Path, app_args: str, **env: str) -> subprocess.CompletedProcess:
    """`make run` in the copy, on a PATH where sha1sum and shasum fail (not every Mac has sha1sum)."""
    no_sha = copy.parent / "no-sha-tools"
    for tool in ("sha1sum", "shasum"):
        script(no_sha / tool, f'echo "{tool} is not on this machine" >&2; exit 127')
    return subprocess.run(["make", "--no-print-directory", "run", f"ARGS={app_args}"], cwd=copy,
                          env={**os.environ, "PATH": f"{no_sha}:{os.environ['PATH']}", **env}, capture_output=True,
                          text=True, timeout=RUN_TIMEOUT_S, stdin=subprocess.DEVNULL)


def test_make_run_twice_the_second_touches_no_pip_and_starts_the_app(tmp_path: Path) -> None:
    copy = checkout(tmp_path)
    pip_log = tmp_path / "pip.log"
    stand_in_venv(copy, pip_log)
    (copy / "show.txt").write_text("a lighthouse in the storm\n")
    app = "run --no-gui --script show.txt --set brain.model=none --osc 127.0.0.1:9"

    first = make_run(copy, app)
    assert first.returncode == 0, first.stdout + first.stderr
    assert "[pip] install -q -e ." in first.stdout  # the first setup installs
    assert (copy / ".venv" / ".voicevibe-setup").read_text().endswith(" app\n")
    assert "models download" not in first.stdout + first.stderr  # make run no longer fetches models
    assert "is not on this machine" not in first.stderr

    calls = pip_log.read_text().count("\n")
    second = make_run(copy, app, PIP_INDEX_URL=UNREACHABLE_INDEX)
    assert second.returncode == 0, second.stdout + second.stderr
    assert "[pip]" not in second.stdout and pip_log.read_text().count("\n") == calls  # no pip call at all
    assert "setup: up to date" in second.stdout
    assert "  => " in second.stdout and "lighthouse" in second.stdout  # the app ran the show

    with open(copy / "pyproject.toml", "a") as fh:  # a changed package list installs again
        fh.write("\n# changed\n")
    third = make_run(copy, app, PIP_INDEX_URL=UNREACHABLE_INDEX)
    assert "[pip] install -q -e ." in third.stdout and f"index={UNREACHABLE_INDEX}" in pip_log.read_text()


def test_a_test_install_also_covers_the_app_but_not_the_other_way(tmp_path: Path) -> None:
    copy = checkout(tmp_path)
    pip_log = tmp_path / "pip.log"
    stand_in_venv(copy, pip_log)

    def setup(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["bash", "scripts/setup.sh", *args], cwd=copy, capture_output=True, text=True,
                              timeout=RUN_TIMEOUT_S, env={**os.environ, "PIP_INDEX_URL": UNREACHABLE_INDEX})

    assert "[pip] install -q -e ." in setup().stdout
    assert "[pip] install -q -e .[test]" in setup("--test").stdout  # the app install lacked the test tools
    assert "up to date" in setup().stdout and "up to date" in setup("--test").stdout


# ---- which Python ------------------------------------------------------------------------------

FAKE_SITE = """\
import platform, sys, tkinter
sys.version_info = {version!r}
sys.platform = {platform!r}
platform.machine = lambda: {machine!r}
platform.mac_ver = lambda: ({mac!r}, ("", "", ""), "")
tkinter.TkVersion = {tk!r}
"""


def fake_python(folder: Path, name: str, *, version: tuple = (3, 12, 4, "final", 0), platform: str = "linux",
                machine: str = "x86_64", mac: str = "", tk: float = 8.6) -> Path:
    """A real interpreter that reports other facts to pycheck.py (through a sitecustomize)."""
    site = folder / f"site-{name}"
    site.mkdir(parents=True)
    (site / "sitecustomize.py").write_text(FAKE_SITE.format(version=version, platform=platform, machine=machine,
                                                            mac=mac, tk=tk))
    return script(folder / name, f'PYTHONPATH="{site}" exec "{sys.executable}" "$@"')


def which_python(copy: Path, bin_dir: Path, **env: str) -> subprocess.CompletedProcess:
    """setup.sh --which-python with `bin_dir` first on PATH; `uname` says Linux, so that on a real Mac the
    installed python.org Pythons do not join the candidates (the fakes report the platform themselves)."""
    script(bin_dir / "uname", "echo Linux")
    return subprocess.run(["bash", "scripts/setup.sh", "--which-python"], cwd=copy, capture_output=True, text=True,
                          timeout=60, env={**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", **env})


def test_python_3_13_is_passed_over_for_a_supported_one(tmp_path: Path) -> None:
    copy = checkout(tmp_path)
    bin_dir = tmp_path / "bin"
    too_new = fake_python(bin_dir, "python3.13", version=(3, 13, 1, "final", 0))
    fake_python(bin_dir, "python3.12")
    done = which_python(copy, bin_dir, PYTHON=str(too_new))
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "python3.12"
    assert "using python3.12: Python 3.12.4, Tk 8.6" in done.stderr


def test_no_usable_python_names_each_candidate_and_the_fix(tmp_path: Path) -> None:
    """An Intel (or Rosetta) Python on a Mac, a Python 3.13 and one without Tk: each refused with its reason."""
    copy = checkout(tmp_path)
    bin_dir = tmp_path / "bin"
    fake_python(bin_dir, "python3.12", platform="darwin", machine="x86_64", mac="14.5")
    fake_python(bin_dir, "python3.11", platform="darwin", machine="arm64", mac="13.2")
    fake_python(bin_dir, "python3.10", version=(3, 13, 0, "final", 0))
    script(bin_dir / "python3", f'exec "{sys.executable}" -c "import sys; sys.exit(\'no tkinter here\')"')
    done = which_python(copy, bin_dir)
    assert done.returncode == 2
    err = done.stderr
    assert "python3.12:" in err and "runs as x86_64: MLX needs Apple Silicon and a native arm64 Python" in err
    assert "python3.11:" in err and "macOS 13.2: MLX 0.26 needs macOS 13.5 or newer" in err
    assert "python3.10:" in err and "Python 3.13.0: VoiceVibe needs Python 3.10-3.12" in err
    assert "python3:" in err and "no tkinter here" in err
    assert "Install python3.12" in err


def test_tk_9_on_a_mac_is_accepted_with_advice(tmp_path: Path) -> None:
    copy = checkout(tmp_path)
    bin_dir = tmp_path / "bin"
    fake_python(bin_dir, "python3.12", platform="darwin", machine="arm64", mac="14.5", tk=9.0)
    done = which_python(copy, bin_dir)
    assert done.returncode == 0 and done.stdout.strip() == "python3.12"
    assert "Tk 9.0" in done.stderr and "python.org's Python 3.12 ships Tk 8.6" in done.stderr


def test_a_venv_made_with_an_unsupported_python_is_named_with_the_fix(tmp_path: Path) -> None:
    copy = checkout(tmp_path)
    fake_python(copy / ".venv" / "bin", "python", version=(3, 13, 1, "final", 0))
    done = subprocess.run(["bash", "scripts/setup.sh"], cwd=copy, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert ".venv was made with a Python VoiceVibe cannot use" in done.stderr and "rm -rf .venv" in done.stderr


def mac_path(tmp_path: Path, *present: str) -> Path:
    """A PATH for a pretend Mac: `uname` says Darwin; only the basic tools and `present` exist."""
    bin_dir = tmp_path / "mac-bin"
    bin_dir.mkdir()
    for tool in ("bash", "sh", "dirname", "cat", "rm", "mkdir", "ls", "env"):
        (bin_dir / tool).symlink_to(shutil.which(tool))
    script(bin_dir / "uname", "echo Darwin")
    for tool in present:
        script(bin_dir / tool, "exit 0")
    return bin_dir


@pytest.mark.parametrize("with_brew", [True, False])
def test_make_test_on_a_mac_installs_the_missing_test_tools_with_homebrew(tmp_path: Path, with_brew: bool) -> None:
    copy = checkout(tmp_path)
    stand_in_venv(copy, tmp_path / "pip.log")
    bin_dir = mac_path(tmp_path, "sox")  # a Mac that has sox already
    brew_log = tmp_path / "brew.log"
    if with_brew:
        script(bin_dir / "brew", f'echo "brew $*" >> "{brew_log}"')
    done = subprocess.run(["bash", "scripts/setup.sh", "--test"], cwd=copy, capture_output=True, text=True,
                          timeout=RUN_TIMEOUT_S, env={"PATH": str(bin_dir), "HOME": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    if with_brew:
        assert brew_log.read_text() == "brew install espeak-ng ffmpeg liblo\n"
        assert "installing with Homebrew: espeak-ng ffmpeg liblo" in done.stdout
    else:
        assert "the tests need espeak-ng ffmpeg liblo; install Homebrew" in done.stderr
    assert "apt-get" not in done.stdout + done.stderr


# ---- a Mac's first night: Tk's patchlevel, a checkout in a protected folder, the Xcode tools -----------------

FAKE_TCL = """
class _FakeTcl:
    def eval(self, script):
        return {patch!r} if script == "package versions Tk" else ""
    def call(self, *args):
        return {patch!r}
tkinter.Tcl = _FakeTcl
"""


def with_tk_patchlevel(python: Path, patch: str) -> Path:
    """A fake_python whose Tk reports this patchlevel."""
    site = python.parent / f"site-{python.name}" / "sitecustomize.py"
    site.write_text(site.read_text() + FAKE_TCL.format(patch=patch))
    return python


def test_a_mac_python_with_tk_8_6_12_is_passed_over_for_one_with_8_6_13(tmp_path: Path) -> None:
    copy = checkout(tmp_path)
    bin_dir = tmp_path / "bin"
    with_tk_patchlevel(fake_python(bin_dir, "python3.12", platform="darwin", machine="arm64", mac="14.5"), "8.6.12")
    with_tk_patchlevel(fake_python(bin_dir, "python3.11", platform="darwin", machine="arm64", mac="14.5"), "8.6.13")
    done = which_python(copy, bin_dir)
    assert done.returncode == 0 and done.stdout.strip() == "python3.11", done.stderr
    assert "using python3.11: Python 3.12.4, Tk 8.6.13, arm64, macOS 14.5" in done.stderr
    (bin_dir / "python3.11").unlink()
    for other in ("python3.11", "python3.10", "python3"):  # this machine's own Pythons are not candidates here
        script(bin_dir / other, "echo 'not this one'; exit 1")
    done = which_python(copy, bin_dir)
    assert done.returncode == 2
    assert "python3.12: " in done.stderr and "Tk 8.6.12: on macOS 14 and later" in done.stderr


@pytest.mark.parametrize("folder", ["Documents", "VoiceVibe"])
def test_setup_warns_about_a_checkout_in_a_protected_folder(tmp_path: Path, folder: str) -> None:
    home = tmp_path / "home"
    copy = checkout(home / folder)
    stand_in_venv(copy, tmp_path / "pip.log")
    (copy / ".venv" / "bin" / "python").unlink()
    fake_python(copy / ".venv" / "bin", "python", platform="darwin", machine="arm64", mac="14.5")
    done = subprocess.run(["bash", "scripts/setup.sh"], cwd=copy, capture_output=True, text=True, timeout=RUN_TIMEOUT_S,
                          env={**os.environ, "HOME": str(home), "PIP_INDEX_URL": UNREACHABLE_INDEX})
    assert done.returncode == 0, done.stderr
    warned = f"warning: {copy} is in Documents: macOS asks before an app reads Documents"
    if folder == "Documents":
        assert warned in done.stderr and "such as ~/VoiceVibe" in done.stderr
        assert done.stderr.count("warning:") == 1  # the .venv inside the checkout is not a second warning
    else:
        assert "warning:" not in done.stderr


@pytest.mark.parametrize("xcode", [False, True])
def test_a_mac_without_the_xcode_tools_stops_before_building_llama_cpp(tmp_path: Path, xcode: bool) -> None:
    copy = checkout(tmp_path)
    pip_log = tmp_path / "pip.log"
    stand_in_venv(copy, pip_log)
    old_llama = tmp_path / "old-llama"  # the venv's llama-cpp-python is not the pinned one: a build is due
    old_llama.mkdir()
    (old_llama / "llama_cpp.py").write_text("__version__ = '0.3.1'\n")
    script(copy / ".venv" / "bin" / "python", f'PYTHONPATH="{old_llama}" exec "{sys.executable}" "$@"')
    bin_dir = mac_path(tmp_path, "printf")
    tools = tmp_path / "CommandLineTools"
    tools.mkdir()
    script(bin_dir / "xcode-select", f'echo "{tools}"' if xcode else
           'echo "xcode-select: error: unable to get active developer directory" >&2; exit 2')
    done = subprocess.run(["bash", "scripts/setup.sh"], cwd=copy, capture_output=True, text=True,
                          timeout=RUN_TIMEOUT_S, env={"PATH": str(bin_dir), "HOME": str(tmp_path)})
    if xcode:
        assert "building llama-cpp-python 0.3.36" in done.stdout, done.stderr
        assert "wheel -q --no-cache-dir --no-deps" in pip_log.read_text()
    else:
        assert done.returncode == 2
        assert "the Xcode command line tools are missing" in done.stderr and "xcode-select --install" in done.stderr
        assert "wheel" not in pip_log.read_text() and "building" not in done.stdout  # stopped before the build
