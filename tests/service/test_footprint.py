"""What the daemon keeps loaded: libraries only other commands use stay out of its memory."""

from __future__ import annotations

import subprocess
import sys


def _loaded_after(code: str, *modules: str) -> dict[str, bool]:
    probe = f"import sys; {code}; print(' '.join(str(m in sys.modules) for m in {modules!r}))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            check=True)
    return dict(zip(modules, (word == "True" for word in result.stdout.split()), strict=True))


def test_the_daemon_does_not_load_rich_which_only_status_draws_with():
    loaded = _loaded_after("import connector.cli.daemon_commands, connector.service.daemon, "
                           "connector.service.runtime, connector.logs", "structlog", "rich", "pygments")
    assert loaded == {"structlog": True, "rich": False, "pygments": False}


def test_rich_still_imports_for_the_status_command_after_structlog():
    loaded = _loaded_after("import connector.logs, connector.ops.status_view as v; "
                           "import rich.table", "rich")
    assert loaded == {"rich": True}
