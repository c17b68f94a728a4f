"""py-spy over a benchmark run, every process of it, summed up per article.

py-spy (not in the lock: ``pip install --target .local/py-spy py-spy``) samples this process
and all its descendants 100 times a second, pausing each for a moment to read its stack. It
leaves out threads it sees sleeping, but counts a thread waiting for a core (and some blocking
reads) as running: so frames that wait are left out here, and each process's samples are
scaled to the CPU the benchmark measured for it. The summary attributes each sample twice: to
the function running (self time), and to the call our code made (the deepest frame in
pipeline/ or spiders/, and the library function it called), which is what a change in our
code can cut.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
RATE = 100  # samples a second
_PROCESS = re.compile(r'process (\d+):"[^"]*";')
_FRAME = re.compile(r"^(.*) \((.*?)(?::\d+)?\)$")
_OURS = re.compile(r"\((?:pipeline|spiders)/")  # py-spy names files by their package path
_SAMPLER = "(proc_meter.py"  # the benchmark's own sampler thread
_WAITS = frozenset(
    {"select", "poll", "unix_poll", "readinto", "recv", "recv_into", "_recv", "_recv_bytes"}
    | {"_wait", "wait", "sleep", "acquire", "join", "_wait_for_tstate_lock", "accept", "get"}
)


@dataclass
class Profiler:
    """A running ``py-spy record`` attached to this process and its children."""

    process: subprocess.Popen[bytes]
    output: Path

    @property
    def pid(self) -> int:
        """py-spy's own pid, to leave out of the measured tree."""
        return self.process.pid

    @classmethod
    def start(cls, folder: Path) -> Profiler:
        """Attach py-spy; SystemExit saying how to install it when it is missing."""
        local = REPO / ".local" / "py-spy" / "bin" / "py-spy"
        binary = str(local) if local.exists() else shutil.which("py-spy")
        if binary is None:
            raise SystemExit(
                "bench_real: --profile needs py-spy: "
                ".venv/bin/pip install --target .local/py-spy py-spy"
            )
        folder.mkdir(parents=True, exist_ok=True)
        output = folder / "profile.txt"
        # Blocking (py-spy's default): a process is paused for each sample, some microseconds,
        # since stacks read while it runs come out cut short.
        command = [binary, "record", "--pid", str(os.getpid()), "--subprocesses"]
        command += ["--rate", str(RATE), "--format", "raw", "-o", str(output)]
        with (folder / "py-spy.log").open("wb") as log:
            process = subprocess.Popen(command, stdout=log, stderr=log)
        return cls(process, output)

    def stop(self, roles: dict[int, str]) -> dict[str, Any]:
        """Stop sampling; the samples summed by role, by function, and by call from our code."""
        self.process.send_signal(signal.SIGINT)
        self.process.wait(timeout=60)
        return summarise(self.output.read_text(encoding="utf-8", errors="replace"), roles)

    @staticmethod
    def print_summary(summary: dict[str, Any], cpu: dict[str, float], articles: int) -> None:
        """The costliest calls and functions, in ms of CPU per article.

        A role's samples are scaled to its measured CPU (``cpu``, seconds): on a busy machine
        py-spy also counts a thread waiting for a core, so samples give shares, not seconds.
        """
        kept: Counter[str] = summary["roles"]
        waits: Counter[str] = summary["waits"]
        scale = {r: cpu.get(r, 0.0) * 1000 / max(articles, 1) / n for r, n in kept.items() if n}
        print(
            f"\nprofile (py-spy, {RATE}/s, {sum(kept.values())} samples, {sum(waits.values())} "
            "more in waits left out); each process's samples scaled to its measured CPU"
        )
        for title, key in (("calls our code makes", "calls"), ("functions (self)", "self")):
            table: Counter[tuple[str, str]] = summary[key]
            costs = sorted(
                ((n * scale.get(role, 0.0), role, name) for (role, name), n in table.items()),
                reverse=True,
            )
            print(f"  top {title}, ms per article:")
            for ms, role, name in costs[:15]:
                print(f"    {ms:7.2f}  {role:<12} {name}")


def _short(frame: str) -> str:
    """``function (file)`` with the file shortened to its package path, line numbers dropped."""
    match = _FRAME.match(frame)
    if match is None:
        return frame
    function, path = match.groups()
    for marker in ("site-packages/", f"{REPO}/", "/lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{function} ({path})"


def _waiting(frame: str) -> bool:
    """A frame that blocks (poll, read, wait, sleep, lock): py-spy may count it as running."""
    function = frame.split(" (", 1)[0].rsplit(".", 1)[-1]
    return function in _WAITS


def summarise(raw: str, roles: dict[int, str]) -> dict[str, Any]:
    """Samples by role, by leaf function, and by (deepest frame of ours -> what it called)."""
    by_role: Counter[str] = Counter()
    waits: Counter[str] = Counter()
    self_time: Counter[tuple[str, str]] = Counter()
    calls: Counter[tuple[str, str]] = Counter()
    for line in raw.splitlines():
        head, _, count = line.rpartition(" ")
        if not count.isdigit() or not head.startswith("process "):
            continue
        pids = _PROCESS.findall(head)
        role = roles.get(int(pids[-1]), "other") if pids else "other"
        frames = _PROCESS.sub("", head).split(";")
        samples = int(count)
        if _waiting(frames[-1]) or any(_SAMPLER in frame for frame in frames):
            waits[role] += samples
            continue
        by_role[role] += samples
        self_time[(role, _short(frames[-1]))] += samples
        ours = [i for i, frame in enumerate(frames) if _OURS.search(frame)]
        if ours:
            deepest = ours[-1]
            callee = _short(frames[deepest + 1]) if deepest + 1 < len(frames) else "(itself)"
            calls[(role, f"{_short(frames[deepest])} -> {callee}")] += samples
        else:
            calls[(role, f"(outside our code) {_short(frames[-1])}")] += samples
    return {"roles": by_role, "waits": waits, "self": self_time, "calls": calls}
