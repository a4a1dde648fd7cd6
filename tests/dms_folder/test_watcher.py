"""The watcher wakes the outbound loop on inotify events and on its periodic rescan."""

from __future__ import annotations

import os
import threading
import time

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

    from connector.dms.folder.watcher import _OutboxEvents

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


def test_renaming_an_entry_out_of_the_outbox_does_not_wake_it(side, exchange, tmp_path):
    """Our own claims rename entries out of the outbox: no event for them (no IN_MOVED_FROM),
    so they cannot hold up the next arrival's wake-up either."""
    wakeups = Wakeups()
    package = drop_file(exchange / "outbox" / "claimed.edxml")
    bundle = exchange / "outbox" / "claimed-bundle"
    bundle.mkdir()
    (bundle / "document.yaml").write_text("to: []")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    with side.watcher(wakeups, rescan_seconds=3600):
        os.rename(package, elsewhere / package.name)
        os.rename(bundle, elsewhere / bundle.name)
        drop_file(exchange / "outbox" / "marker.edxml")
        assert wakeups.wait_for()
    assert wakeups.count == 1, "a rename out of the outbox woke the loop"


def test_a_bundle_loses_its_watch_once_ready_or_moved_away(side, exchange, tmp_path):
    wakeups = Wakeups()
    with side.watcher(wakeups, rescan_seconds=3600) as watcher:
        ready_later = exchange / "outbox" / "ready-later"
        moved_away = exchange / "outbox" / "moved-away"
        ready_later.mkdir()
        moved_away.mkdir()
        assert until(lambda: len(watcher._watches) == 2), "the new bundles were not watched"
        assert sorted(os.path.basename(p) for p in watcher._watches) == ["moved-away",
                                                                         "ready-later"]
        wakeups.reset()
        (ready_later / ".ready").write_bytes(b"")
        assert wakeups.wait_for()
        os.rename(moved_away, tmp_path / "moved-away")
        # The watch of a folder that moved away is dropped on its IN_MOVE_SELF event; what the
        # folder then receives elsewhere must not wake the outbox loop.
        wakeups.reset()
        (tmp_path / "moved-away" / "document.yaml").write_text("to: []")
        drop_file(exchange / "outbox" / "marker.edxml")
        assert wakeups.wait_for()
        assert watcher._watches == []
    assert wakeups.count == 1


def until(condition, timeout: float = 10.0) -> bool:
    """Wait (bounded) until ``condition()`` holds; the watcher works on its own thread."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.005)
    return True


def test_the_polling_fallback_wakes_on_a_rename(side, exchange):
    wakeups = Wakeups()
    with side.watcher(wakeups, rescan_seconds=3600, polling=True):
        drop_file(exchange / "outbox" / "polled.edxml")
        assert wakeups.wait_for(), "the polling observer did not notice a package"


def test_inotify_refused_degrades_to_polling_with_a_warning(side, exchange, monkeypatch):
    """The inotify instance limit (EMFILE from inotify_init) is injected: the watcher says so
    once and polls instead, so documents are still noticed."""
    import errno

    import structlog

    from connector.dms.folder import watcher as folder_watcher
    def refuse() -> None:
        raise OSError(errno.EMFILE, "Too many open files")

    monkeypatch.setattr(folder_watcher, "_inotify_fd", refuse)
    wakeups = Wakeups()
    with structlog.testing.capture_logs() as logs:
        with side.watcher(wakeups, rescan_seconds=3600):
            drop_file(exchange / "outbox" / "polled.edxml")
            assert wakeups.wait_for(), "the degraded watcher did not notice a package"
    warnings = [entry for entry in logs if entry["event"] == "outbox_watch_degraded"]
    assert len(warnings) == 1 and "max_user_instances" in warnings[0]["fix"]
