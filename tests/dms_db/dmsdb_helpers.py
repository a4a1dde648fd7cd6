"""Helpers for the DMS-database tests: settings for the sample schema, rows to insert, and two
connectors racing for the same rows."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sample_dms_schema import (
    outgoing_attachments,
    outgoing_documents,
    outgoing_recipients,
    outgoing_statuses,
)

from connector.dms.database.mapping import DmsDatabaseSettings
from connector.dms.database.side import DatabaseSide

H41 = "000.00.00.H41"
G22 = "000.00.00.G22"
K01 = "000.00.00.K01"


def settings(url: str, owner: str = "connector-a", **section: Any) -> DmsDatabaseSettings:
    return DmsDatabaseSettings.model_validate({"url": url, "claim_owner": owner, **section})


def side(backend, owner: str = "connector-a", **section: Any) -> DatabaseSide:
    return DatabaseSide(settings(backend.url, owner, **section))


def document_row(number: int, **overrides: Any) -> dict[str, Any]:
    row = {
        "subject": f"Công văn số {number} về việc thử nghiệm",
        "code_number": str(number), "code_notation": "UBND-VP",
        "promulgation_place": "Hà Nội", "promulgation_date": dt.date(2026, 11, 23),
        "doc_type": "1", "doc_type_detail": "0", "doc_type_name": "Công văn",
        "signer_name": "Nguyễn Văn A", "signer_position": "Chánh Văn phòng",
        "due_date": dt.date(2026, 12, 31), "priority": 2,
        "recipients": json.dumps([H41, {"organ_id": K01, "organ_name": "HĐND tỉnh"}]),
        "exchange_state": "new",
    }
    row.update(overrides)
    return row


def insert_document(engine: sa.Engine, number: int, *, attachments: list[dict[str, Any]] = (),
                    recipient_rows: list[dict[str, Any]] = (), **overrides: Any) -> int:
    with engine.begin() as connection:
        row_id = connection.execute(
            outgoing_documents.insert().values(document_row(number, **overrides))
        ).inserted_primary_key[0]
        for position, attachment in enumerate(attachments):
            connection.execute(outgoing_attachments.insert().values(
                outgoing_id=row_id, position=position, **attachment))
        for recipient in recipient_rows:
            connection.execute(outgoing_recipients.insert().values(outgoing_id=row_id,
                                                                   **recipient))
    return int(row_id)


def insert_status(engine: sa.Engine, **values: Any) -> int:
    row = {"status_code": "03", "document_id": f"{H41},2026/11/20,12/UBND-VP",
           "description": "Đã tiếp nhận", "staff_name": "Trần Thị B", "exchange_state": "new"}
    row.update(values)
    with engine.begin() as connection:
        return int(connection.execute(outgoing_statuses.insert().values(row))
                   .inserted_primary_key[0])


def row_of(engine: sa.Engine, table: sa.Table, row_id: Any, key: str = "id") -> dict[str, Any]:
    with engine.connect() as connection:
        row = connection.execute(sa.select(table).where(table.c[key] == row_id)).mappings().first()
    assert row is not None, f"no row {key}={row_id} in {table.name}"
    return dict(row)


def race(work: Callable[[int], None], *, connectors: int = 2) -> None:
    """Run ``work(0)``, ``work(1)``... in threads released at the same moment, the way connectors
    on two servers race for the same rows; fail with what any of them raised."""
    start = threading.Barrier(connectors)
    errors: list[BaseException] = []

    def run(index: int) -> None:
        try:
            start.wait()
            work(index)
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(connectors)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
