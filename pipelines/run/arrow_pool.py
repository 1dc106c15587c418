"""Arrow's memory pool for a process that scores: jemalloc (or the system allocator), not mimalloc.

pyarrow 25 allocates from mimalloc by default, which gives freed pages back to the OS between
batches; the next batch then faults them in again. Scoring 1M rows on one core, that was 0.9 s
more system time, read taking 0.89 s instead of 0.29 s, about 10% of the whole run's wall clock,
and 51 MiB more peak RSS (bench/README.md). A pool the user chose (ARROW_DEFAULT_MEMORY_POOL)
is kept.
"""

from __future__ import annotations

import os

import pyarrow as pa

_PREFERRED = {"jemalloc": pa.jemalloc_memory_pool, "system": pa.system_memory_pool}


def use_scoring_pool() -> str:
    """Make the preferred pool Arrow's default in this process (once); return the pool in use."""
    current = pa.default_memory_pool().backend_name
    if os.environ.get("ARROW_DEFAULT_MEMORY_POOL") or current in _PREFERRED:
        return current
    supported = pa.supported_memory_backends()
    for name, make in _PREFERRED.items():
        if name in supported:
            pa.set_memory_pool(make())
            return name
    return current
