"""Peak resident memory of one call, sampled every 5 ms: what the benches report as
"peak MiB" (memory above what the process held before the call, data included)."""

from __future__ import annotations

import gc
import os
import threading
import time


def resident_mib() -> float:
    with open("/proc/self/statm") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_above_baseline(call):
    """(call's result, seconds, peak resident MiB above the memory held before it)."""
    gc.collect()
    baseline, peak, done = resident_mib(), [0.0], threading.Event()

    def watch():
        while not done.is_set():
            peak[0] = max(peak[0], resident_mib())
            time.sleep(0.005)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    began = time.perf_counter()
    try:
        result = call()
    finally:
        elapsed = time.perf_counter() - began
        done.set()
        watcher.join()
    return result, elapsed, max(peak[0], resident_mib()) - baseline
