"""Fixtures of the end-to-end tests: a two-agency lab (``connector.devtools.lab.Lab``) with real
processes — the axis simulator and one ``edxml-connector run`` per agency — on loopback.

Every lab is stopped in the fixture's teardown (SIGTERM, then SIGKILL), whatever the test did.
When a test fails, the tails of the processes' logs are attached to the report, so a failure in
CI says what the daemons were doing.
"""

from __future__ import annotations

import pytest

from connector.devtools.lab import Lab

pytestmark = pytest.mark.slow


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.when == "call" and report.failed:
        for name in ("lab", "module_lab"):
            lab = item.funcargs.get(name) if hasattr(item, "funcargs") else None
            if isinstance(lab, Lab):
                report.sections.append(("lab process logs", lab.diagnostics(60)))


@pytest.fixture
def new_lab(tmp_path, dev_certs):
    """A factory: ``new_lab(seed=..., sim_fault_args=[...])`` → a Lab not yet started; every lab
    made is closed at teardown."""
    made: list[Lab] = []

    def make(**kwargs) -> Lab:
        lab = Lab(tmp_path / f"lab{len(made)}", certs=dev_certs, **kwargs)
        made.append(lab)
        return lab

    yield make
    for lab in made:
        lab.close()


@pytest.fixture
def lab(new_lab):
    """A started lab (simulator + connectors A and B)."""
    return new_lab().start()


@pytest.fixture(scope="module")
def module_lab(tmp_path_factory, dev_certs):
    """One started lab shared by the tests of a module (each test uses its own documents)."""
    lab = Lab(tmp_path_factory.mktemp("e2e-lab"), certs=dev_certs)
    try:
        lab.start()
        yield lab
    finally:
        lab.close()
    # SIGTERM must end each connector cleanly (exit 0, within the 10 s before SIGKILL)
    codes = {node.label: node.process.exit_codes for node in lab.agencies}
    assert all(c and c[-1] == 0 for c in codes.values()), f"connector exit codes: {codes}"
