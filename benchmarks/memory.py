"""A process's own peak memory, as the benchmarks report it."""

import resource
from pathlib import Path


def vm_hwm_mb(pid: int | str = "self") -> float | None:
    """Peak RSS of a process's own memory map (VmHWM), in MB; None without /proc.

    Linux folds the parent's peak into ru_maxrss across fork + exec (even with vfork), so a
    child of a big benchmark process would report the parent's size there.
    """
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def peak_rss_mb() -> float:
    """Peak RSS of this process image, in MB."""
    own = vm_hwm_mb()
    return own if own is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
