"""Assertions shared by the command-line tests: what a failing command must print."""

from __future__ import annotations

import re

ERROR_LINE = re.compile(r"^edxml-connector: error: .+$")


def one_error_line(run) -> str:
    """The single ``edxml-connector: error: ...`` line a failed command printed (never a
    traceback), for the test to check what it names."""
    lines = run.err.strip().splitlines()
    assert len(lines) == 1, run.err
    assert ERROR_LINE.match(lines[0]), run.err
    assert "Traceback" not in run.err
    return lines[0]
