"""What the benchmarks read off this machine: its load, and a server's processes."""

from __future__ import annotations

import os
from pathlib import Path


def cpu_pressure() -> str:
    """The machine's load: load average, and the share of time some task waited for a CPU over
    the last minute (/proc/pressure/cpu), when the kernel reports it."""
    text = f"load average {os.getloadavg()[0]:.1f}"
    try:
        some = Path("/proc/pressure/cpu").read_text().splitlines()[0].split()
        text += f", CPU pressure {some[2].split('=')[1]}% (some, avg60)"
    except (OSError, IndexError):
        pass
    return text


def process_tree(pid: int) -> set[int]:
    """`pid` and every process under it."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            parents[int(entry.name)] = int(fields[1])
    family, todo = set(), [pid]
    while todo:
        current = todo.pop()
        family.add(current)
        todo.extend(child for child, parent in parents.items() if parent == current)
    return family
