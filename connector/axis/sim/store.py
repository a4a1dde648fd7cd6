"""The simulator's durable state: one SQLite file and one package file per transfer.

A *transfer* is one accepted ``sendEdoc`` (the axis's ``DocId``); a *delivery* is that transfer
for one recipient, with the recipient's state (``pending`` until it acknowledges ``done``). The
package file is fsynced before the row is committed, so after a restart every listed item can be
fetched. One connection guarded by a lock: the simulator is a test tool, and correctness under
concurrent requests matters more than parallel writes.

Durability is what a test needs, not what a server needs: the simulator is killed (``kill -9``,
SIGTERM) but its machine does not lose power under it. Page-cache writes survive a killed
process, so SQLite runs with ``synchronous=NORMAL`` (WAL: a commit is in the WAL file, not yet
fsync'd) and package files are written under a temporary name and renamed, without fsync —
after a restart every accepted item and its package are still there ("a restart keeps every
pending item" holds), and each send costs no disk flush. The simulator's CPU and latency count
in the end-to-end benchmark, where three fsyncs per accepted package were most of its time.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from connector.fsutil import FILE_MODE, temporary_name

_SCHEMA = """
CREATE TABLE IF NOT EXISTS transfers (
    doc_id       INTEGER PRIMARY KEY AUTOINCREMENT,
    message_type TEXT NOT NULL,
    sender       TEXT NOT NULL,
    systemid     TEXT NOT NULL,
    sha256       TEXT NOT NULL,
    size         INTEGER NOT NULL,
    title        TEXT NOT NULL DEFAULT '',
    notation     TEXT NOT NULL DEFAULT '',
    document_id  TEXT NOT NULL DEFAULT '',
    created      REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS deliveries (
    doc_id     INTEGER NOT NULL REFERENCES transfers(doc_id),
    recipient  TEXT NOT NULL,
    state      TEXT NOT NULL DEFAULT 'pending',
    state_desc TEXT NOT NULL DEFAULT '',
    updated    REAL NOT NULL,
    received   REAL,
    PRIMARY KEY (doc_id, recipient)
);
CREATE INDEX IF NOT EXISTS deliveries_by_recipient ON deliveries(recipient, state);
CREATE TABLE IF NOT EXISTS directory (
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    code     TEXT NOT NULL UNIQUE,
    name     TEXT NOT NULL DEFAULT '',
    pid      TEXT NOT NULL DEFAULT '',
    mail     TEXT NOT NULL DEFAULT '',
    old_code TEXT NOT NULL DEFAULT '',
    updated  REAL NOT NULL,
    deleted  INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS directory_by_updated ON directory(updated);
"""

DIRECTORY_FIELDS = ("code", "name", "pid", "mail", "old_code")


@dataclass(frozen=True)
class Delivery:
    doc_id: str
    message_type: str
    sender: str
    recipient: str
    state: str
    state_desc: str
    created: float
    updated: float
    received: float | None
    title: str
    notation: str


class SimulatorStore:
    """Transfers and deliveries in ``DIR/axis-sim.sqlite``, packages in ``DIR/packages/``."""

    def __init__(self, data_dir: Path | str) -> None:
        self.data_dir = Path(data_dir)
        self.packages_dir = self.data_dir / "packages"
        self.packages_dir.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.data_dir / "axis-sim.sqlite", isolation_level=None,
                                   check_same_thread=False)
        self._db.row_factory = sqlite3.Row
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def package_path(self, doc_id: str | int) -> Path:
        return self.packages_dir / f"{int(doc_id)}.edxml"

    # -- writes -------------------------------------------------------------------------------

    def add_transfer(self, *, message_type: str, sender: str, systemid: str, data: bytes,
                     sha256: str, recipients: list[str], title: str = "", notation: str = "",
                     document_id: str = "") -> str:
        """Store an accepted package and one pending delivery per recipient; return its DocId."""
        now = time.time()
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                cursor = self._db.execute(
                    "INSERT INTO transfers (message_type, sender, systemid, sha256, size, title,"
                    " notation, document_id, created) VALUES (?,?,?,?,?,?,?,?,?)",
                    (message_type, sender, systemid, sha256, len(data), title, notation,
                     document_id, now))
                doc_id = cursor.lastrowid
                if doc_id is None:
                    raise RuntimeError("SQLite gave no id for the stored document")
                self._db.executemany(
                    "INSERT INTO deliveries (doc_id, recipient, updated) VALUES (?,?,?)",
                    [(doc_id, recipient, now) for recipient in recipients])
                _write_visible(self.package_path(doc_id), data)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return str(doc_id)

    def mark_received(self, doc_id: str, recipient: str) -> None:
        with self._lock:
            self._db.execute("UPDATE deliveries SET received = ? WHERE doc_id = ? AND recipient = ?"
                             " AND received IS NULL", (time.time(), _int(doc_id), recipient))

    def update_state(self, doc_id: str, recipient: str, state: str, desc: str) -> bool:
        with self._lock:
            cursor = self._db.execute(
                "UPDATE deliveries SET state = ?, state_desc = ?, updated = ? "
                "WHERE doc_id = ? AND recipient = ?",
                (state, desc, time.time(), _int(doc_id), recipient))
            return cursor.rowcount == 1

    # -- reads --------------------------------------------------------------------------------

    def deliveries_for(self, recipient: str, message_type: str, *, include_done: bool = False,
                       created_from: float | None = None,
                       created_to: float | None = None) -> list[Delivery]:
        query = [_DELIVERY_SELECT, "WHERE d.recipient = ? AND t.message_type = ?"]
        args: list[Any] = [recipient, message_type]
        if not include_done:
            query.append("AND d.state != 'done'")
        if created_from is not None:
            query.append("AND t.created >= ?")
            args.append(created_from)
        if created_to is not None:
            query.append("AND t.created <= ?")
            args.append(created_to)
        query.append("ORDER BY t.doc_id")
        return self._deliveries(" ".join(query), args)

    def delivery(self, doc_id: str, recipient: str) -> Delivery | None:
        rows = self._deliveries(_DELIVERY_SELECT + " WHERE d.doc_id = ? AND d.recipient = ?",
                                [_int(doc_id), recipient])
        return rows[0] if rows else None

    def transfer_sender(self, doc_id: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT sender FROM transfers WHERE doc_id = ?",
                                   (_int(doc_id),)).fetchone()
        return None if row is None else row["sender"]

    def sent_by(self, sender: str, message_type: str, doc_id: str | None = None) -> list[Delivery]:
        query = _DELIVERY_SELECT + " WHERE t.sender = ? AND t.message_type = ?"
        args: list[Any] = [sender, message_type]
        if doc_id is not None:
            query += " AND t.doc_id = ?"
            args.append(_int(doc_id))
        return self._deliveries(query + " ORDER BY t.doc_id, d.recipient", args)

    def transfers(self) -> list[dict[str, Any]]:
        """Every stored transfer with its recipients' states (for the admin endpoint)."""
        with self._lock:
            transfers = [dict(row) for row in self._db.execute(
                "SELECT * FROM transfers ORDER BY doc_id")]
            deliveries = [dict(row) for row in self._db.execute(
                "SELECT * FROM deliveries ORDER BY doc_id, recipient")]
        by_doc: dict[int, list[dict[str, Any]]] = {}
        for row in deliveries:
            by_doc.setdefault(row.pop("doc_id"), []).append(row)
        for transfer in transfers:
            transfer["recipients"] = by_doc.get(transfer["doc_id"], [])
            transfer["doc_id"] = str(transfer["doc_id"])
        return transfers

    # -- the national directory (getAgenciesList*, getSynchronizeUnit, register/deleteAgency) --
    def seed_directory(self, rows) -> int:
        """Add the agencies not yet in the directory (a restart keeps what registerAgency and
        deleteAgency changed). ``rows``: mappings with :data:`DIRECTORY_FIELDS`."""
        now = time.time()
        with self._lock:
            before = self._db.total_changes
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(
                    "INSERT OR IGNORE INTO directory (code, name, pid, mail, old_code, updated) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    ((row["code"], row.get("name", ""), row.get("pid", ""), row.get("mail", ""),
                      row.get("old_code", ""), now) for row in rows))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            return self._db.total_changes - before

    def register_agency(self, row: dict[str, str]) -> int:
        """Add or change an agency (its ``updated`` moves, so a sync sees it); returns its id."""
        with self._lock:
            self._db.execute(
                "INSERT INTO directory (code, name, pid, mail, old_code, updated, deleted) "
                "VALUES (:code, :name, :pid, :mail, :old_code, :updated, 0) "
                "ON CONFLICT(code) DO UPDATE SET name = excluded.name, pid = excluded.pid, "
                "mail = excluded.mail, old_code = excluded.old_code, updated = excluded.updated, "
                "deleted = 0", {**{key: "" for key in DIRECTORY_FIELDS}, **row, "updated": time.time()})
            found = self._db.execute("SELECT id FROM directory WHERE code = ?", (row["code"],)).fetchone()
        return int(found[0])

    def delete_agency(self, code: str) -> bool:
        with self._lock:
            cursor = self._db.execute("UPDATE directory SET deleted = 1, updated = ? "
                                      "WHERE code = ? AND deleted = 0", (time.time(), code))
        return cursor.rowcount > 0

    def directory(self, *, changed_since: float | None = None) -> list[dict[str, Any]]:
        """The directory (without deleted agencies), or every agency changed since a moment
        (deleted ones included, so a sync can drop them), oldest change first."""
        with self._lock:
            if changed_since is None:
                rows = self._db.execute("SELECT * FROM directory WHERE deleted = 0 ORDER BY id")
            else:
                rows = self._db.execute("SELECT * FROM directory WHERE updated > ? "
                                        "ORDER BY updated, id", (changed_since,))
            return [dict(row) for row in rows.fetchall()]

    def per_agency_totals(self) -> dict[str, dict[str, int]]:
        """Documents sent, and deliveries pending/done/failed, per OrganId."""
        totals: dict[str, dict[str, int]] = {}
        with self._lock:
            for row in self._db.execute("SELECT sender, COUNT(*) AS n FROM transfers "
                                        "GROUP BY sender"):
                totals.setdefault(row["sender"], {})["sent"] = row["n"]
            for row in self._db.execute("SELECT recipient, state, COUNT(*) AS n FROM deliveries "
                                        "GROUP BY recipient, state"):
                totals.setdefault(row["recipient"], {})[f"received_{row['state']}"] = row["n"]
        return totals

    def _deliveries(self, query: str, args: list[Any]) -> list[Delivery]:
        with self._lock:
            rows = self._db.execute(query, args).fetchall()
        return [Delivery(doc_id=str(row["doc_id"]), message_type=row["message_type"],
                         sender=row["sender"], recipient=row["recipient"], state=row["state"],
                         state_desc=row["state_desc"], created=row["created"],
                         updated=row["updated"], received=row["received"], title=row["title"],
                         notation=row["notation"]) for row in rows]


_DELIVERY_SELECT = (
    "SELECT t.doc_id, t.message_type, t.sender, t.created, t.title, t.notation, d.recipient,"
    " d.state, d.state_desc, d.updated, d.received FROM deliveries d"
    " JOIN transfers t ON t.doc_id = d.doc_id")


def _int(doc_id: str | int) -> int:
    try:
        return int(doc_id)
    except (TypeError, ValueError):
        return -1  # matches nothing: an unknown docId, not a crash


def _write_visible(path: Path, data: bytes) -> None:
    """Publish ``data`` as ``path`` in one rename (a reader never sees a partial package), with
    no fsync: see the module docstring for why a killed process loses nothing this way."""
    temporary = temporary_name(path)
    try:
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC,
                             FILE_MODE)
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(data)
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
