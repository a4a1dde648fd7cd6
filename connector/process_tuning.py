"""Settings of the Python process itself, for the long-running commands (the daemon and the
axis simulator)."""

from __future__ import annotations

import gc

GC_THRESHOLDS = (20_000, 50, 100)
"""Objects allocated before a young-generation collection, and collections before an older
one (Python's defaults: 700, 10, 10)."""


def tune_garbage_collector() -> None:
    """Call once started: move everything loaded so far (modules, configuration, the journal's
    compiled statements) out of the collector's sight (``gc.freeze``) and collect less often.
    WHY: each document allocates tens of thousands of short-lived objects (SQLAlchemy rows,
    pydantic models, log events); with the defaults the collector ran hundreds of times a second
    and its full passes walked every long-lived object each time — a few per cent of the
    daemon's CPU. Reference counting frees almost all of those objects anyway; the collector is
    only needed for cycles, which are rare here."""
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
