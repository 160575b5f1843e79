"""How long the test suite takes: fresh-clone runs of `make test`, and a report of where the time goes.

    .venv/bin/python bench/suite.py run [--runs 3] [--out DIR]      # fresh clones of HEAD, one after another
    .venv/bin/python bench/suite.py report --before X.xml [--before-wall S] RUN.json ... > bench/RESULTS-suite.md

`run` clones this repository's HEAD into a temporary folder, runs the README's test command there
(`make test`, which sets up its own .venv; the llama-cpp-python wheel comes from the cache) with a
JUnit XML report, and writes RUN.json (commit, wall time of `make test`, pytest's own time, counts)
beside the XML in --out. `report` reads a "before" JUnit XML and the runs, and prints the slowest
tests and each test file's time, before and after.
"""

from __future__ import annotations

import argparse
import collections
import json
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SLOWEST = 25


def run_once(out: Path, index: int) -> Path:
    """One fresh clone of HEAD, `make test` in it; the run's JSON summary."""
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                            check=True).stdout.strip()
    stem = out / f"run-{commit}-{index}"
    with tempfile.TemporaryDirectory(prefix="voicevibe-suite-") as tmp:
        clone = Path(tmp) / "voicevibe"
        subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
        start = time.monotonic()
        with open(f"{stem}.log", "w", encoding="utf-8") as log:
            done = subprocess.run(["make", "test", f"PYTEST_ARGS=--junitxml={stem}.xml"], cwd=clone,
                                  stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        wall = time.monotonic() - start
    tail = Path(f"{stem}.log").read_text(encoding="utf-8").splitlines()[-1:]
    summary = {"commit": commit, "index": index, "exit": done.returncode, "make_test_seconds": round(wall, 1),
               "when": datetime.now(timezone.utc).isoformat(timespec="seconds"),
               "load_after": Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else [],
               "summary_line": tail[0] if tail else "", **counts(Path(f"{stem}.xml"))}
    Path(f"{stem}.json").write_text(json.dumps(summary, indent=1), encoding="utf-8")
    return Path(f"{stem}.json")


def counts(xml: Path) -> dict[str, object]:
    """Tests, failures, errors, skips and pytest's own wall time from a JUnit XML report."""
    if not xml.exists():
        return {"tests": 0, "failures": 0, "errors": 0, "skipped": 0, "pytest_seconds": None}
    suite = ET.parse(xml).getroot()
    suite = suite if suite.tag == "testsuite" else suite.find("testsuite")
    return {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")} | {
        "pytest_seconds": float(suite.get("time", 0))}


def durations(xml: Path) -> dict[str, float]:
    """Each test's time (setup, call and teardown) by node id."""
    out = {}
    for case in ET.parse(xml).getroot().iter("testcase"):
        module = case.get("classname", "").replace(".", "/")
        out[f"{module}.py::{case.get('name')}"] = float(case.get("time", 0))
    return out


def by_file(times: dict[str, float]) -> dict[str, float]:
    """The summed test time of each test file."""
    files: collections.Counter[str] = collections.Counter()
    for node, seconds in times.items():
        files[node.split("::")[0]] += seconds
    return dict(files)


def minutes(seconds: float | None) -> str:
    return "-" if seconds is None else f"{int(seconds // 60)}:{seconds % 60:04.1f}"


def report(before: Path, before_wall: float | None, runs: list[Path]) -> str:
    """The markdown report."""
    summaries = [json.loads(p.read_text(encoding="utf-8")) for p in runs]
    old = durations(before)
    new = durations(runs[0].with_suffix(".xml"))
    base = counts(before)
    lines = ["# The test suite's time", "",
             "`bench/suite.py` (`run`: fresh clones of HEAD, `make test` with a JUnit report; `report`: this file).",
             "Machine: 2 cores, no GPU. *Test time* sums each test's setup, call and teardown, so with two test",
             "processes it exceeds the run's wall time.", "",
             "## Runs", "",
             "| run | commit | tests | failed | pytest wall | `make test` wall (fresh clone) |",
             "|---|---|---|---|---|---|",
             f"| before (one process) | 1a3e8ae | {base['tests']} | {base['failures'] + base['errors']} | "
             f"{minutes(base['pytest_seconds'])} | {minutes(before_wall)} |"]
    for s in summaries:
        lines.append(f"| after, run {s['index']} | {s['commit']} | {s['tests']} | {s['failures'] + s['errors']} | "
                     f"{minutes(s['pytest_seconds'])} | {minutes(s['make_test_seconds'])} |")
    lines += ["", f"## The {SLOWEST} slowest tests", "", "Before:", "", "| seconds | test |", "|---|---|"]
    lines += [f"| {t:.1f} | `{n}` |" for n, t in sorted(old.items(), key=lambda x: -x[1])[:SLOWEST]]
    lines += ["", f"After (run {summaries[0]['index']}):", "", "| seconds | test |", "|---|---|"]
    lines += [f"| {t:.1f} | `{n}` |" for n, t in sorted(new.items(), key=lambda x: -x[1])[:SLOWEST]]
    old_files, new_files = by_file(old), by_file(new)
    lines += ["", "## Each test file's test time", "", "| file | before (s) | after (s) |", "|---|---|---|"]
    for name in sorted(set(old_files) | set(new_files), key=lambda f: -old_files.get(f, new_files.get(f, 0))):
        lines.append(f"| `{name}` | {old_files.get(name, 0):.1f} | {new_files.get(name, 0):.1f} |")
    lines += ["", f"Sum of test times: before {sum(old.values()):.0f} s, after {sum(new.values()):.0f} s.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """`run` or `report`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run")
    run.add_argument("--runs", type=int, default=3)
    run.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "voicevibe-suite-runs")
    rep = sub.add_parser("report")
    rep.add_argument("--before", type=Path, required=True, help="the JUnit XML of the run before")
    rep.add_argument("--before-wall", type=float, help="that run's `make test` wall time, seconds")
    rep.add_argument("runs", type=Path, nargs="+", help="RUN.json files from `run`")
    args = parser.parse_args(argv)
    if args.command == "run":
        args.out.mkdir(parents=True, exist_ok=True)
        for i in range(1, args.runs + 1):
            path = run_once(args.out, i)
            print(path, json.loads(path.read_text())["summary_line"], flush=True)
        return 0
    print(report(args.before, args.before_wall, args.runs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
