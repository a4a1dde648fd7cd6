"""The suite's own layout: test directories are not packages, so pytest imports test modules by
their basename — two modules with the same name in different directories stop the whole run at
collection. This test names the offenders instead."""

from collections import defaultdict
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def test_test_module_basenames_are_unique():
    seen: dict[str, list[str]] = defaultdict(list)
    for path in TESTS.rglob("*.py"):
        if path.name in ("conftest.py", "__init__.py") or "__pycache__" in path.parts:
            continue
        if (path.parent / "__init__.py").exists():
            continue  # inside a package: imported under its dotted name
        seen[path.name].append(str(path.relative_to(TESTS)))
    clashes = {name: paths for name, paths in seen.items() if len(paths) > 1}
    assert not clashes, f"rename one of each: {clashes}"
