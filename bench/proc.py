"""What the benchmarks read about a process from /proc, in one place.

The kernel's own counters (``/proc/PID/stat`` and ``/proc/PID/status``), so that a figure means
the same in every benchmark: CPU as utime + stime in clock ticks, memory as the kernel's VmRSS
and VmHWM.
"""

from __future__ import annotations

import os
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def stat_fields(pid: int) -> list[str]:
    """The fields of ``/proc/PID/stat`` after the command name (which may hold spaces): index 1
    is the parent's pid, 11-14 are utime, stime, cutime and cstime."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def process_tree(pid: int) -> list[int]:
    """``pid`` and every live process descending from it."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            children.setdefault(int(stat_fields(int(entry.name))[1]), []).append(int(entry.name))
        except (OSError, IndexError, ValueError):
            continue
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, []))
    return tree


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process (all its threads), of its live descendants, and of
    its exited children that it reaped (cutime, cstime): everything the process caused."""
    total = 0
    for member in process_tree(pid):
        try:
            total += sum(int(value) for value in stat_fields(member)[11:15])
        except OSError:
            continue
    return total / CLOCK_TICKS


def own_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of the process itself (all its threads), without children."""
    return sum(int(value) for value in stat_fields(pid)[11:13]) / CLOCK_TICKS


def memory_mb(pid: int) -> dict[str, float]:
    """VmRSS (resident now) and VmHWM (resident at most) of a process, in MB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            values[key] = int(rest.split()[0]) / 1024
    return values


def rss_by_mapping(pid: int) -> dict[str, float]:
    """Resident MB of a process by what is mapped (``/proc/PID/smaps``): each shared library or
    file by its name (``site-packages/`` and the interpreter's folders cut off), anonymous memory
    (the Python heap, thread stacks, SQLite's cache) as ``[anonymous]``."""
    sizes: dict[str, float] = {}
    name = "[anonymous]"
    for line in Path(f"/proc/{pid}/smaps").read_text().splitlines():
        fields = line.split()
        if fields and not fields[0].endswith(":"):  # a mapping's header line
            path = fields[5] if len(fields) > 5 else ""
            name = (path.split("site-packages/")[-1] if path.startswith("/")
                    else "[anonymous]" if not path or path == "[heap]" else path)
        elif fields and fields[0] == "Rss:":
            sizes[name] = sizes.get(name, 0.0) + int(fields[1]) / 1024
    return dict(sorted(sizes.items(), key=lambda entry: -entry[1]))
