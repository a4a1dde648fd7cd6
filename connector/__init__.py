"""edxml-connector: the agency-side connector to Vietnam's national document exchange axis."""

import sys

__version__ = "0.1.0"


def _import_structlog_without_rich() -> None:
    """Import structlog before anything else does, with ``rich`` hidden from it.

    structlog's ``dev`` module, which its package always imports, loads ``rich`` (and Pygments)
    whenever it is installed, only to format tracebacks on a console. The daemon writes JSON lines
    and never uses it, yet it would keep about 7 MB resident (bench/README.md, "Idle footprint").
    ``rich`` is installed for the ``status`` command, which imports it itself when it draws a
    table; hiding it from structlog's one import changes nothing else. It has to happen here,
    in the package's first lines, because several modules import structlog.
    """
    if "structlog" in sys.modules or "rich" in sys.modules:
        return
    sys.modules["rich"] = None  # type: ignore[assignment]  # makes ``import rich`` fail once
    try:
        import structlog  # noqa: F401
    finally:
        del sys.modules["rich"]


_import_structlog_without_rich()
