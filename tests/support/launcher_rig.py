"""The compiled Mac launcher run for real here: built with cc, in front of a stand-in Python and osascript.

The stand-in "venv python" is a script that execs a small compiled program, as CPython's pythonw stub
execs Python.app/Contents/MacOS/Python on a framework build. Everything the stand-ins record goes under
the HOME the launcher is started with: app.txt (who it is: pid, parent, process group, arguments, the
env the launcher hands over), signals.txt (each stop signal it got, and its parent then) and dialogs.txt
(each osascript call).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from voicevibe import launcher

DEADLINE_S = 60.0  # the machine may be loaded: generous, and never the only synchronisation
DIALOG_MARK = "=== dialog\n"

STANDIN_APP_C = r"""
/* Stands in for Python behind the launcher. STANDIN_DO says what to do: "exit N" (a line on stdout and
 * one on stderr, then exit N), "wait" (until a stop signal: record it, then die by it as Python does),
 * "abort" (a crash). First it writes $HOME/app.txt, atomically, once its signal handlers are set. */
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

static int signals_fd = -1;

static void record_signal(int sig) {
    char line[64];  /* snprintf is safe enough here: main() only ever waits in pause() */
    int n = snprintf(line, sizeof line, "%s ppid=%d\n",
                     sig == SIGTERM ? "TERM" : sig == SIGINT ? "INT" : sig == SIGHUP ? "HUP" : "OTHER", (int)getppid());
    write(signals_fd, line, (size_t)n);
    signal(sig, SIG_DFL);
    raise(sig);
}

int main(int argc, char **argv) {
    const char *home = getenv("HOME"), *todo = getenv("STANDIN_DO");
    char path[4096], partial[4200];
    snprintf(path, sizeof path, "%s/signals.txt", home);
    signals_fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
    struct sigaction recording = {0};
    recording.sa_handler = record_signal;
    sigaction(SIGTERM, &recording, NULL);
    sigaction(SIGINT, &recording, NULL);
    sigaction(SIGHUP, &recording, NULL);

    snprintf(path, sizeof path, "%s/app.txt", home);
    snprintf(partial, sizeof partial, "%s.partial", path);
    FILE *record = fopen(partial, "w");
    fprintf(record, "pid=%d\nppid=%d\npgid=%d\nargs=", (int)getpid(), (int)getppid(), (int)getpgrp());
    for (int i = 1; i < argc; i++)
        fprintf(record, i > 1 ? " %s" : "%s", argv[i]);
    fprintf(record, "\nlog=%s\ndialog=%s\n", getenv("VOICEVIBE_LAUNCHER_LOG"), getenv("VOICEVIBE_DIALOG"));
    fclose(record);
    rename(partial, path);

    if (todo && strncmp(todo, "exit ", 5) == 0) {
        printf("from the app\n");
        fprintf(stderr, "an error line from the app\n");
        return atoi(todo + 5);
    }
    if (todo && strcmp(todo, "abort") == 0) {
        struct rlimit no_core = {0, 0};
        setrlimit(RLIMIT_CORE, &no_core);
        printf("the app is about to crash\n");
        fflush(stdout);
        abort();
    }
    for (;;)
        pause();
}
"""


@dataclass(frozen=True)
class Rig:
    """The compiled launcher and the stand-ins it runs."""

    launcher: Path
    python: Path  # the pythonw-like script the launcher starts
    osascript: Path


def build_rig(folder: Path) -> Rig:
    """Compile the stand-in app and the launcher (pointed at the stand-ins) into `folder`."""
    app = folder / "Python.framework" / "Resources" / "Python.app" / "Contents" / "MacOS" / "Python"
    app.parent.mkdir(parents=True)
    source = folder / "standin_app.c"
    source.write_text(STANDIN_APP_C)
    subprocess.run(["cc", "-O2", "-Wall", "-o", str(app), str(source)], check=True, timeout=launcher.COMPILE_SECONDS)
    python = script(folder / "venv" / "bin" / "python", f'exec "{app}" "$@"  # as pythonw execs Python.app')
    osascript = script(folder / "bin" / "osascript", f'printf "%s%s\\n" "{DIALOG_MARK}" "$2" >> "$HOME/dialogs.txt"')
    executable = folder / "VoiceVibe"
    why = launcher.compile_launcher(str(python), executable, dialog=str(osascript))
    assert why is None, why
    return Rig(executable, python, osascript)


def script(path: Path, body: str) -> Path:
    """An executable shell script at `path`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n" + body + "\n")
    path.chmod(0o755)
    return path


def wait_for_file(path: Path, deadline_s: float = DEADLINE_S) -> str:
    """The text of `path` once it exists (written whole: the stand-in renames it into place)."""
    give_up = time.monotonic() + deadline_s
    while not path.exists():
        assert time.monotonic() < give_up, f"{path.name} never appeared"
        time.sleep(0.02)
    return path.read_text()


def app_record(home: Path) -> dict[str, str]:
    """What the stand-in app wrote about itself, once it has."""
    return dict(line.split("=", 1) for line in wait_for_file(home / "app.txt").splitlines())


def dialogs(home: Path) -> list[str]:
    """The text of each dialog shown, in order."""
    path = home / "dialogs.txt"
    return path.read_text().split(DIALOG_MARK)[1:] if path.exists() else []


def launcher_log(home: Path) -> Path:
    return home / "Library" / "Logs" / "voicevibe" / "launcher.log"


@contextmanager
def launched(rig: Rig, home: Path, todo: str, *, via: tuple[str, ...] = ()) -> Iterator[subprocess.Popen]:
    """The launcher running (exec'd by `via` when given) with HOME=`home` and the stand-in told `todo`;
    nothing is left running after."""
    proc = subprocess.Popen([*via, str(rig.launcher)], env={**os.environ, "HOME": str(home), "STANDIN_DO": todo})
    try:
        yield proc
    finally:
        if proc.poll() is None:  # not reaped yet, so the app's pid is still its own
            record = home / "app.txt"
            if record.exists():
                with suppress(ProcessLookupError):  # it may have ended on its own meanwhile
                    os.kill(int(app_record(home)["pid"]), signal.SIGKILL)
            try:
                proc.wait(DEADLINE_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
