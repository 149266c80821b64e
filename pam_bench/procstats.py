"""This process's memory and CPU time, as the benchmarks measure them (Linux).

- :func:`rss_bytes`: the current resident set size, from ``/proc/self/statm`` (None where it cannot be read);
- :func:`maxrss_bytes`: the process high-water mark (``ru_maxrss``, which Linux reports in kB);
- :func:`cpu_seconds`: user + system CPU time of all the process's threads.
"""
from __future__ import annotations

import os
import resource


def rss_bytes() -> int | None:
    """Resident set size now, in bytes; None where ``/proc/self/statm`` is not readable."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


def maxrss_bytes() -> int:
    """Peak resident set size of this process so far, in bytes."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: kB


def cpu_seconds() -> float:
    """User + system CPU time of this process (all threads): robust to other load on a shared machine."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime
