"""Is the machine quiet enough for a timing figure? CPU time spent by *other* processes, before and during a benchmark.

A load average cannot answer this on a 2-core machine: a benchmark that runs 2 threads lifts it to ~2 by itself, and
it lags by a minute. Instead, :class:`LoadMonitor` reads the machine's busy CPU time (``/proc/stat``: user, nice,
system, irq, softirq, steal) and subtracts this process's own CPU time and that of its finished children
(``os.times``). What is left, divided by the wall time, is how many cores other work kept busy ("foreign cores").

- :func:`quiet_probe` watches an idle interval *before* the benchmark starts;
- ``with LoadMonitor() as mon:`` watches the benchmark itself (run subprocesses inside it with ``subprocess.run``
  so that their CPU time counts as the benchmark's own).

A figure is flagged when either exceeds :data:`MAX_FOREIGN_CORES`. Where ``/proc/stat`` does not exist (macOS,
Windows), the check cannot be made and says so; the 1-minute load averages are recorded either way.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

#: Other processes may use at most this many cores, on average, while a figure is taken (or just before).
MAX_FOREIGN_CORES = 0.25


def _busy_cpu_s() -> float | None:
    """Busy CPU seconds of the whole machine since boot (``/proc/stat``), or ``None`` where unavailable."""
    try:
        first = Path("/proc/stat").read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return None
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(v) for v in first[1:9])
    return (user + nice + system + irq + softirq + steal) / os.sysconf("SC_CLK_TCK")


def _own_cpu_s() -> float:
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def load_average() -> list[float] | None:
    return [round(x, 2) for x in os.getloadavg()] if hasattr(os, "getloadavg") else None


@dataclass
class LoadMonitor:
    """Foreign CPU use over a ``with`` block; see the module docstring."""

    wall_s: float = 0.0
    foreign_cores: float | None = None
    load_before: list[float] | None = None
    load_after: list[float] | None = None
    _start: tuple = field(default=(), repr=False)

    def __enter__(self) -> LoadMonitor:
        self.load_before = load_average()
        self._start = (time.perf_counter(), _busy_cpu_s(), _own_cpu_s())
        return self

    def __exit__(self, *exc) -> None:
        t0, busy0, own0 = self._start
        self.wall_s = time.perf_counter() - t0
        busy1, own1 = _busy_cpu_s(), _own_cpu_s()
        if busy0 is not None and busy1 is not None and self.wall_s > 0:
            self.foreign_cores = max(0.0, (busy1 - busy0) - (own1 - own0)) / self.wall_s
        self.load_after = load_average()

    @property
    def quiet(self) -> bool | None:
        """``True``/``False``, or ``None`` where the check cannot be made."""
        return None if self.foreign_cores is None else self.foreign_cores <= MAX_FOREIGN_CORES

    def as_dict(self) -> dict:
        return {"wall_s": round(self.wall_s, 2),
                "foreign_cores": None if self.foreign_cores is None else round(self.foreign_cores, 3),
                "load_average_before": self.load_before, "load_average_after": self.load_after,
                "max_foreign_cores": MAX_FOREIGN_CORES, "quiet": self.quiet}


def quiet_probe(seconds: float = 5.0) -> LoadMonitor:
    """Watch ``seconds`` of this process sleeping: what other work keeps the CPU busy right now."""
    with LoadMonitor() as mon:
        time.sleep(seconds)
    return mon


def verdict(before: LoadMonitor, during: LoadMonitor) -> dict:
    """``{"quiet": bool | None, "note": str, "before": ..., "during": ...}`` for a report."""
    checks = [m.quiet for m in (before, during)]
    if None in checks:
        quiet, note = None, "not checked: /proc/stat is unavailable on this system (load averages recorded)"
    elif all(checks):
        quiet, note = True, (f"quiet: other processes used {before.foreign_cores:.2f} cores before and "
                             f"{during.foreign_cores:.2f} during the measurement (limit {MAX_FOREIGN_CORES})")
    else:
        quiet, note = False, (f"TAKEN UNDER LOAD: other processes used {before.foreign_cores:.2f} cores before and "
                              f"{during.foreign_cores:.2f} during the measurement (limit {MAX_FOREIGN_CORES}); "
                              "these figures are not the machine's speed, rerun on a quiet machine")
    return {"quiet": quiet, "note": note, "before": before.as_dict(), "during": during.as_dict()}
