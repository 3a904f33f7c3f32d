"""The machine a run measures on: other processes' CPU use, pinned pgbench clients, a summary."""

from __future__ import annotations

import datetime as dt
import os
import platform
import re
import resource
import shutil
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from .server import REPO_ROOT

CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def progress(msg: str) -> None:
    print(f"  .. {msg}", file=__import__("sys").stderr, flush=True)


def _proc_times(pid_dir: str) -> tuple[int, int, int] | None:
    """(ppid, own cpu ticks, waited-for children's cpu ticks) of one /proc/<pid>/stat."""
    try:
        with open(f"/proc/{pid_dir}/stat") as f:
            data = f.read()
    except OSError:
        return None
    fields = data[data.rfind(")") + 2 :].split()  # after "pid (comm) "
    # fields[1] = ppid; [11], [12] = utime, stime; [13], [14] = cutime, cstime
    return int(fields[1]), int(fields[11]) + int(fields[12]), int(fields[13]) + int(fields[14])


class CpuMeter:
    """Machine-wide busy CPU time versus the CPU time of our own processes.

    Ours: this Python process and the programs it waited for (pgbench), and the postmaster with
    every backend it started (live ones from /proc, exited ones through the postmaster's
    children times). Foreign = machine busy - ours: other sessions' tests on a shared machine.
    """

    def __init__(self, postmaster: int) -> None:
        self.postmaster = postmaster
        self.available = os.path.exists("/proc/stat")

    def children(self) -> set[int]:
        """The postmaster's child processes now."""
        out = set()
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                t = _proc_times(entry)
                if t is not None and t[0] == self.postmaster:
                    out.add(int(entry))
        return out

    def settle(self, before: set[int], timeout: float = 3.0) -> None:
        """Wait until the backends started since `before` are gone and reaped: only then is their
        CPU time in the postmaster's children times (a dying one would be missed)."""
        deadline = time.monotonic() + timeout
        while self.children() - before and time.monotonic() < deadline:
            time.sleep(0.01)

    def snapshot(self) -> tuple[float, float, float]:
        """(wall seconds, machine busy cpu-seconds, our cpu-seconds)."""
        wall = time.monotonic()
        if not self.available:
            return wall, 0.0, 0.0
        with open("/proc/stat") as f:
            vals = [int(x) for x in f.readline().split()[1:9]]
        busy = sum(vals) - vals[3] - vals[4]  # minus idle and iowait
        ours = 0
        for entry in os.listdir("/proc"):
            if not entry.isdigit():
                continue
            t = _proc_times(entry)
            if t is None:
                continue
            if int(entry) == self.postmaster:
                ours += t[1] + t[2]
            elif t[0] == self.postmaster:
                ours += t[1]
        self_ru = resource.getrusage(resource.RUSAGE_SELF)
        child_ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        mine = self_ru.ru_utime + self_ru.ru_stime + child_ru.ru_utime + child_ru.ru_stime
        return wall, busy / CLK_TCK, ours / CLK_TCK + mine

    @staticmethod
    def foreign_share(a: tuple[float, float, float], b: tuple[float, float, float]) -> float:
        """Share of the machine's CPUs (0..1) used by other processes between two snapshots."""
        wall = b[0] - a[0]
        if wall <= 0:
            return 0.0
        foreign = (b[1] - a[1]) - (b[2] - a[2])
        return max(0.0, foreign / (wall * (os.cpu_count() or 1)))


@dataclass
class Quiet:
    """Measure while the machine is otherwise idle, as far as we can tell.

    Before: wait (up to max_wait s) until other processes use less than `limit` of the CPUs over
    half a second. After: if they used more during the measurement, discard it and measure again
    (up to `retries` times; the last one is kept and its share recorded).
    """

    meter: CpuMeter
    limit: float = 0.1
    retries: int = 3
    max_wait: float = 120.0
    retried: int = 0
    shares: list[float] = field(default_factory=list)

    def run(
        self, prepare: Callable[[], None], measure: Callable[[], dict[str, Any]], what: str
    ) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for attempt in range(self.retries + 1):
            prepare()
            waited = 0.0
            while waited < self.max_wait:
                a = self.meter.snapshot()
                time.sleep(0.5)
                if CpuMeter.foreign_share(a, self.meter.snapshot()) <= self.limit:
                    break
                waited += 0.5
            children = self.meter.children()
            a = self.meter.snapshot()
            result = measure()
            self.meter.settle(children)
            b = self.meter.snapshot()
            share = CpuMeter.foreign_share(a, b)
            result["foreign_cpu"] = round(share, 3)
            # CPU seconds of this run's own processes (client, pgbench, server): on a machine
            # shared with others this is the cost that their load does not inflate.
            result["cpu_s"] = b[2] - a[2]
            result["attempts"] = attempt + 1
            if share <= self.limit or attempt == self.retries:
                break
            self.retried += 1
            progress(f"{what}: other processes used {share:.0%} of the CPUs; measuring again")
        self.shares.append(result["foreign_cpu"])
        return result

    def summary(self) -> str:
        if not self.shares:
            return ""
        s = sorted(self.shares)
        return (
            f"Other processes used at most {s[-1]:.0%} of the CPUs during a kept measurement "
            f"(median {s[len(s) // 2]:.1%}); {self.retried} measurement(s) were discarded and "
            f"repeated because they used more than {self.limit:.0%}."
        )


@dataclass
class Pgbench:
    """pgbench runs, each client pinned with its backend to a CPU of its own.

    Unpinned, a 1-client run on a VM measures the hypervisor's idle-CPU wakeup latency, not
    PostgreSQL (bench/README.md): the rate is then the CPU cost of a transaction.
    """

    bindir: Path
    host: str
    port: int
    user: str
    tmpdir: Path
    pin: bool = True
    seconds: int = 5
    transactions: int = 0  # > 0: -t instead of -T (quick mode)
    problems: list[str] = field(default_factory=list)
    # measurement caveats (a short run that ended before its backends could be pinned): printed,
    # but unlike problems (events not as expected) they do not fail the run
    notes: list[str] = field(default_factory=list)
    _scripts: int = 0

    def run(
        self,
        quiet: Quiet,
        admin: psycopg.Connection[Any],
        script_text: str,
        *,
        clients: int,
        prepare: Callable[[], None],
        what: str,
    ) -> dict[str, Any]:
        """Run a pgbench script with this many clients; their rates summed."""
        self._scripts += 1
        script = self.tmpdir / f"script{self._scripts}.sql"
        script.write_text(script_text)
        duration = (
            ["-t", str(self.transactions)] if self.transactions else ["-T", str(self.seconds)]
        )
        base = [
            str(self.bindir / "pgbench"),
            *("-n", "-M", "prepared", "-f", str(script), *duration),
            *("-h", self.host, "-p", str(self.port), "-U", self.user),
        ]
        pin = self.pin and clients <= (os.cpu_count() or 1) and bool(shutil.which("taskset"))
        if pin:
            cmds = [
                ["taskset", "-c", str(i), *base, "-c", "1", "-j", "1", "postgres"]
                for i in range(clients)
            ]
        else:
            cmds = [[*base, "-c", str(clients), "-j", str(clients), "postgres"]]

        def measure() -> dict[str, Any]:
            procs = []
            for i, cmd in enumerate(cmds):
                env = dict(os.environ, PGAPPNAME=f"pghbench{i}")
                procs.append(
                    subprocess.Popen(
                        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
                    )
                )
            if pin:
                self._pin_backends(admin, clients)
            outs = [(p, *p.communicate()) for p in procs]
            return {"outs": [(p.returncode, out, err) for p, out, err in outs]}

        q = quiet.run(prepare, measure, what)
        tps, done = 0.0, 0
        for (rc, out, err), cmd in zip(q["outs"], cmds, strict=True):
            m = re.search(r"tps = ([0-9.]+) \((?:without|excluding)", out)
            tx = re.search(r"number of transactions actually processed: (\d+)", out)
            if rc != 0 or not m:
                raise RuntimeError(f"pgbench failed ({' '.join(cmd)}):\n{out}\n{err}")
            tps += float(m.group(1))
            done += int(tx.group(1)) if tx else 0
        return {
            "tps": tps,
            "cpu_tps": done / q["cpu_s"] if q["cpu_s"] > 0 else None,
            "transactions": done,
            "pinned": pin,
            "foreign_cpu": q["foreign_cpu"],
            "attempts": q["attempts"],
        }

    def _pin_backends(self, admin: psycopg.Connection[Any], clients: int) -> None:
        """Move the backend of pgbench number i (application_name pghbench<i>) to CPU i.

        pgbench opens a first connection (to print the server version) and closes it before
        its client connects, so every new backend is pinned until each pgbench has one that
        ran a statement.
        """
        pinned: set[int] = set()
        ready: set[str] = set()
        deadline = time.monotonic() + 10
        while len(ready) < clients and time.monotonic() < deadline:
            for pid, app, query in admin.execute(
                "SELECT pid, application_name, query FROM pg_stat_activity "
                "WHERE application_name LIKE 'pghbench%'"
            ).fetchall():
                if pid not in pinned:
                    cpu = app.removeprefix("pghbench")
                    subprocess.run(
                        ["taskset", "-p", "-c", cpu, str(pid)], capture_output=True, check=False
                    )
                    pinned.add(pid)
                elif query:
                    ready.add(app)
            time.sleep(0.005)
        if len(ready) < clients:
            self.notes.append(f"could not pin the backends of {clients} pgbench clients")


def describe() -> dict[str, Any]:
    """CPU, memory, OS, load and the extension's commit: printed with every figure."""
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "?"
    try:
        kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{kb / 1024 / 1024:.0f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    git = ["git", "-C", str(REPO_ROOT)]
    head = subprocess.run(
        [*git, "log", "-1", "--format=%h %cs %s", "--", "extension"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    dirty = subprocess.run(
        [*git, "status", "--porcelain", "extension"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory": mem,
        "commit": head[:72] + (" + uncommitted changes in extension/" if dirty else ""),
        "os": f"{platform.system()} {platform.release()}",
        "load": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }
