"""Sub-commands of edxml-connector (placeholder until written)."""


def register(subparsers) -> None:
    """Add this group's sub-commands."""
