"""A step's peak resident memory: printed at its end, for the run's summary (mlops.local), the benchmarks and
sizing the step's pod (configs/production.yaml `resources`)."""
from __future__ import annotations

import resource

PREFIX = "peak resident memory:"  # mlops.local reads the line back from the run's log


def peak_mb() -> float:
    """The highest resident set size of this process so far, in MB (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def report() -> float:
    """Print the peak (`peak resident memory: 1234 MB`) and return it."""
    mb = peak_mb()
    print(f"{PREFIX} {mb:.0f} MB", flush=True)
    return mb
