"""The ``--failed`` / ``--all`` forms of the operator commands: one action over many items.

Each item is handled on its own (its own transaction), so a problem with one item neither stops
nor undoes the others; the problems are collected and reported together at the end. The command
line draws a progress bar from the ``total``/``progress`` callbacks.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from connector.errors import ConnectorError

BULK_LIMIT = 100_000
"""At most this many items per bulk command (a guard, far above any real backlog)."""


@dataclass
class BulkResult:
    """What a bulk action did: ids done, and one line per item that could not be done."""

    done: list[str] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def apply_to_each(item_ids: Sequence[str], action: Callable[[str], object], *,
                  total: Callable[[int], None] | None = None,
                  progress: Callable[[int], None] | None = None) -> BulkResult:
    """Run ``action(id)`` for each id in order. ``total(n)`` is called once with the count and
    ``progress(1)`` after each item."""
    if total is not None:
        total(len(item_ids))
    result = BulkResult()
    for item_id in item_ids:
        try:
            action(item_id)
            result.done.append(item_id)
        except ConnectorError as error:
            result.problems.append(f"{item_id}: {error.one_line()}")
        if progress is not None:
            progress(1)
    return result
