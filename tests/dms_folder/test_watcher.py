"""The watcher wakes the outbound loop on inotify events and on its periodic rescan."""

from __future__ import annotations

import os
import threading

from .conftest import drop_file


class Wakeups:
    """Counts calls; ``wait_for`` blocks until a call arrives (bounded, not a timing assertion)."""

    def __init__(self) -> None:
        self.count = 0
        self.event = threading.Event()

    def __call__(self) -> None:
        self.count += 1
        self.event.set()

    def reset(self) -> None:
        self.count = 0
        self.event.clear()

    def wait_for(self, timeout: float = 10.0) -> bool:
        return self.event.wait(timeout)


def test_rename_in_wakes_the_callback_and_the_item_is_claimable(side, exchange, tmp_path):
    wakeups = Wakeups()
    with side.watcher(wakeups, rescan_seconds=3600):
        outside = tmp_path / "prepared.edxml"
        outside.write_bytes(b"<edXML/>")
        os.rename(outside, exchange / "outbox" / "prepared.edxml")
        assert wakeups.wait_for(), "no wake-up after a package was renamed into the outbox"
    assert [item.display_name for item in side.claim_ready()] == ["prepared.edxml"]


def test_document_yaml_in_a_bundle_and_a_status_drop_wake_it(side, exchange):
    wakeups = Wakeups()
    bundle = exchange / "outbox" / "cv"
    bundle.mkdir()
    with side.watcher(wakeups, rescan_seconds=3600):
        (bundle / "document.yaml.tmp").write_text("to: []")
        os.rename(bundle / "document.yaml.tmp", bundle / "document.yaml")
        assert wakeups.wait_for()
        wakeups.reset()
        drop_file(exchange / "outbox" / "statuses" / "ack.yaml", b"code: '03'")
        assert wakeups.wait_for()


def test_temporary_names_are_filtered_out(side, exchange):
    """Drive the watcher's event filter with a real observer and record what it lets through."""
    from watchdog.observers import Observer

    from connector.dms.folder_watcher import _OutboxEvents

    seen: list[str] = []
    marker_seen = threading.Event()

    def record(relative: str) -> None:
        seen.append(relative)
        if relative == "marker.edxml":
            marker_seen.set()

    observer = Observer()
    observer.schedule(_OutboxEvents(exchange / "outbox", record), str(exchange / "outbox"),
                      recursive=True)
    observer.start()
    try:
        (exchange / "outbox" / "big.edxml.part").write_bytes(b"x" * 1000)
        (exchange / "outbox" / ".hidden").write_bytes(b"x")
        (exchange / "outbox" / "bundle.tmp").mkdir()
        # events arrive in order: once the marker is seen, the earlier ones were filtered
        drop_file(exchange / "outbox" / "marker.edxml")
        assert marker_seen.wait(10)
    finally:
        observer.stop()
        observer.join(5)
    assert set(seen) == {"marker.edxml"}


def test_periodic_rescan_calls_back_without_any_event(side):
    wakeups = Wakeups()
    with side.watcher(wakeups, rescan_seconds=0.05):
        assert wakeups.wait_for(), "the periodic rescan never called back"


def test_a_failing_callback_does_not_stop_the_watcher(side, exchange):
    calls = Wakeups()

    def flaky() -> None:
        calls()
        if calls.count == 1:
            raise RuntimeError("the outbound loop is busy")

    with side.watcher(flaky, rescan_seconds=3600):
        drop_file(exchange / "outbox" / "one.edxml")
        assert calls.wait_for()
        calls.event.clear()
        drop_file(exchange / "outbox" / "two.edxml")
        assert calls.wait_for()
    assert calls.count >= 2


def test_a_bundle_folder_made_while_watching_wakes_it_when_document_yaml_lands(side, exchange):
    """The outbox is watched non-recursively; a bundle folder that appears without its
    document.yaml gets its own watch, so writing document.yaml last still wakes the loop."""
    wakeups = Wakeups()
    with side.watcher(wakeups, rescan_seconds=3600) as watcher:
        bundle = exchange / "outbox" / "late"
        bundle.mkdir()
        assert wakeups.wait_for()
        assert watcher._watches, "the not-ready bundle was not given a watch"
        (bundle / "tep.pdf").write_bytes(b"%PDF")
        wakeups.reset()
        (bundle / "document.yaml.tmp").write_text("to: []")
        os.rename(bundle / "document.yaml.tmp", bundle / "document.yaml")
        assert wakeups.wait_for(), "document.yaml written last in a bundle did not wake the loop"
    assert [item.display_name for item in side.claim_ready()] == ["late"]


def test_writes_inside_a_dot_named_staging_folder_do_not_wake_it(side, exchange):
    wakeups = Wakeups()
    staging = exchange / "outbox" / ".staging"
    staging.mkdir()
    with side.watcher(wakeups, rescan_seconds=3600):
        (staging / "tep.pdf").write_bytes(b"x" * 1000)
        (staging / "document.yaml").write_text("to: []")
        drop_file(exchange / "outbox" / "marker.edxml")
        assert wakeups.wait_for()
    assert wakeups.count == 1
