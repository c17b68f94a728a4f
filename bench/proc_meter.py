"""CPU and memory of a process tree, the Elasticsearch node and the machine, read from /proc.

A sampler thread walks the tree below this process (``/proc/<pid>/task/*/children``) every
``period`` seconds and keeps, per process, its last CPU seconds (utime + stime of
``/proc/<pid>/stat``) and its peak resident set (``VmHWM``: the kernel's own high-water mark,
so no peak between two samples is missed), plus the largest sum of the tree's current RSS and
(every ``pss_every`` samples, from ``smaps_rollup``) PSS, where pages shared after a fork count
once. A process that ends loses at most its last period of CPU; the extraction workers and
the fork server are idle by then. The sampler's own CPU is kept apart, to be subtracted from
this process's.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

TICK = os.sysconf("SC_CLK_TCK")


@dataclass
class Seen:
    """One process of the tree as last sampled."""

    pid: int
    parent: int
    role: str
    first_cpu: float  # seconds, when first seen
    cpu: float = 0.0  # seconds, when last seen
    peak_kib: int = 0  # VmHWM


def cpu_seconds(pid: int) -> float | None:
    """A process's CPU seconds, user and system (utime + stime); None once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name may hold spaces and parentheses: the fields start after the last ")".
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def memory_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) in KiB; zeros once the process is gone."""
    values = {"VmRSS:": 0, "VmHWM:": 0}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            name, *rest = line.split()
            if name in values:
                values[name] = int(rest[0])
    except OSError:
        pass
    return values["VmRSS:"], values["VmHWM:"]


def pss_kib(pid: int) -> int:
    """Proportional set size in KiB (shared pages split among their sharers); 0 when gone."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def command(pid: int) -> str:
    """The process's command line, spaces between the arguments."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
    except OSError:
        return ""


def children(pid: int, *, every_thread: bool = True) -> set[int]:
    """The process's children: those its main thread started, or those any thread did."""
    found: set[int] = set()
    try:
        tasks = os.listdir(f"/proc/{pid}/task") if every_thread else [str(pid)]
    except OSError:
        return found
    for task in tasks:
        try:
            found |= {int(c) for c in Path(f"/proc/{pid}/task/{task}/children").read_text().split()}
        except OSError:
            continue
    return found


def busy_seconds() -> float:
    """CPU seconds the whole machine has spent busy since boot (all but idle and iowait)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / TICK


def node_pid(pid_file: Path) -> int | None:
    """The local Elasticsearch node: the pid its start script wrote, else the only such java."""
    try:
        pid = int(pid_file.read_text().strip())
        if "elasticsearch" in command(pid):
            return pid
    except (OSError, ValueError):
        pass
    found = [
        int(entry)
        for entry in os.listdir("/proc")
        if entry.isdigit() and "org.elasticsearch" in command(int(entry))
    ]
    return found[0] if len(found) == 1 else None


def _role(parent: Seen | None, pid: int) -> str:
    if parent is None:
        return "bench"
    if parent.role == "fork server":  # forked, not started: it has the fork server's command
        return "worker"
    line = command(pid)
    for marker, role in (
        ("spiders.run", "crawl"),
        ("multiprocessing.forkserver", "fork server"),
        ("multiprocessing.resource_tracker", "resource tracker"),
    ):
        if marker in line:
            return role
    return f"other ({line[:60]})"


@dataclass
class TreeSampler:
    """Samples this process's tree (less ``exclude``) and the node in a thread of its own."""

    exclude: set[int]
    node: int | None = None
    period: float = 0.5
    pss_every: int = 4  # PSS walks the page tables: the costliest read by far
    threads_every: int = 10  # children of every thread; in between, of the main thread only
    seen: dict[int, Seen] = field(default_factory=dict)
    peak_rss_kib: int = 0  # the largest sum of the tree's current RSS
    peak_pss_kib: int = 0
    node_peak_rss_kib: int = 0
    own_cpu: float = 0.0  # the sampler thread's CPU seconds
    samples: int = 0

    def __post_init__(self) -> None:
        self._kids: dict[int, set[int]] = {}  # pid -> the children seen of it
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tree-sampler", daemon=True)

    def start(self) -> None:
        """Sample now and every period, in the background."""
        self._thread.start()

    def stop(self) -> None:
        """One last sample, and the thread ends."""
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        started = time.thread_time()
        self.sample()
        while not self._stop.wait(self.period):
            self.sample()
        self.sample()
        self.own_cpu += time.thread_time() - started

    def sample(self) -> None:
        """Walk the tree once: CPU and peaks of every process, and the sums of RSS and PSS."""
        self.samples += 1
        with_pss = self.samples % self.pss_every == 1
        every_thread = self.samples % self.threads_every == 1
        rss_sum = pss_sum = 0
        stack: list[tuple[int, Seen | None]] = [(os.getpid(), None)]
        while stack:
            pid, parent = stack.pop()
            cpu = cpu_seconds(pid)
            if cpu is None:
                continue
            known = self.seen.get(pid)
            if known is None:
                # A process born after the first sample has used no CPU before it.
                first = cpu if self.samples == 1 else 0.0
                known = Seen(pid, parent.pid if parent else 0, _role(parent, pid), first)
                self.seen[pid] = known
                self._kids.setdefault(known.parent, set()).add(pid)
            rss, peak = memory_kib(pid)
            known.cpu, known.peak_kib = cpu, max(known.peak_kib, peak)
            rss_sum += rss
            pss_sum += pss_kib(pid) if with_pss else 0
            # Children found once are looked at again even when not listed by the main thread.
            found = children(pid, every_thread=every_thread) | self._kids.get(pid, set())
            stack.extend((child, known) for child in found - self.exclude)
        self.peak_rss_kib = max(self.peak_rss_kib, rss_sum)
        self.peak_pss_kib = max(self.peak_pss_kib, pss_sum)
        if self.node is not None:
            self.node_peak_rss_kib = max(self.node_peak_rss_kib, memory_kib(self.node)[0])

    def by_role(self) -> dict[str, tuple[int, float, int]]:
        """Per role: processes, CPU seconds since first seen, and the largest single VmHWM."""
        roles: dict[str, tuple[int, float, int]] = {}
        for seen in self.seen.values():
            count, cpu, peak = roles.get(seen.role, (0, 0.0, 0))
            roles[seen.role] = (
                count + 1,
                cpu + seen.cpu - seen.first_cpu,
                max(peak, seen.peak_kib),
            )
        return roles
