"""The benches' one way to write their results, and the record of the run that made them.

A full run writes bench/results/NAME (the figures the docs quote); a --quick run writes
bench/results/quick/NAME (ignored by git), so a quick run never replaces a full result. Every JSON
carries "run": the commit (and whether the tree differed from it), the host, the date, the exact
command line and whether the run was quick: a figure can always be traced to what produced it.
"""
from __future__ import annotations

import datetime
import json
import os
import platform
import shlex
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FULL_DIR = os.path.join(ROOT, "bench", "results")
QUICK_DIR = os.path.join(FULL_DIR, "quick")


class QuickRunIntoFullResults(ValueError):
    """A quick run asked to write where the full results live."""


def output_path(filename: str, quick: bool, out: str | None = None) -> str:
    """Where a bench writes FILENAME: OUT if given, else the full or the quick results folder."""
    path = os.path.abspath(out or os.path.join(QUICK_DIR if quick else FULL_DIR, filename))
    if quick and os.path.dirname(path) == FULL_DIR:
        raise QuickRunIntoFullResults(f"{path}: a --quick run does not write over the full results "
                                      f"(it writes to {os.path.relpath(QUICK_DIR, ROOT)}/)")
    return path


def write_results(path: str, data: dict, quick: bool) -> None:
    """DATA as JSON at PATH (from output_path), with the record of this run under "run"."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        json.dump({"run": run_record(quick), **data}, f, indent=1)


def run_record(quick: bool) -> dict:
    """The tree and the date as the run began (when the bench imported this module): files edited
    while a bench runs do not change what it ran."""
    commit, dirty = _STARTED_ON
    return {
        "commit": commit,
        "dirty": dirty,
        "host": {"cpu_model": _cpu_model(), "cores": os.cpu_count(), "machine": platform.machine(),
                 "python": platform.python_version()},
        "date": _STARTED_AT,
        "command": shlex.join(sys.orig_argv),
        "quick": bool(quick),
    }


def _git_state() -> tuple[str | None, bool | None]:
    """HEAD and whether the tracked files differ from it (bench/results/ itself left out: a run
    that rewrites a result must not mark the next run dirty). (None, None) outside a git checkout."""
    def git(*args):
        return subprocess.run(["git", "-C", ROOT, *args], capture_output=True, text=True, check=True).stdout
    try:
        commit = git("rev-parse", "HEAD").strip()
        changes = git("status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)bench/results")
    except (OSError, subprocess.CalledProcessError):
        return None, None
    return commit, bool(changes.strip())


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


_STARTED_ON = _git_state()
_STARTED_AT = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
