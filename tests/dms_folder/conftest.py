"""Fixtures for the folder adapter: a real EXCHANGE tree in tmp_path and real packages."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

import pytest
import yaml

from connector.dms.base import IncomingDocument
from connector.dms.folder.side import FolderSide
from connector.edxml import model
from connector.edxml.attachments import prepare_outgoing
from connector.edxml.reader import read_package
from connector.edxml.summary import summarize
from connector.edxml.writer import write_package

SENDER = "000.00.00.G22"
RECEIVER = "000.00.00.H01"
VIETNAMESE_NAME = "Công văn số 7816 – góp ý.pdf"
PDF_BYTES = b"%PDF-1.4\n% fake but faithful bytes \xe1\x00\xff\n%%EOF\n"
NOTE_TEXT = "Ghi chú: tài liệu kèm theo\n".encode()


@pytest.fixture
def exchange(tmp_path: Path) -> Path:
    return tmp_path / "exchange"


@pytest.fixture
def side(exchange: Path):
    folder_side = FolderSide(exchange, instance="node1")
    yield folder_side
    folder_side.close()


def minimal_metadata(**extra) -> dict:
    data = {
        "to": [{"organ_id": RECEIVER, "organ_name": "Bộ Nội vụ"}],
        "code": {"number": "7816", "notation": "VPCP-TTĐT"},
        "promulgation": {"place": "Hà Nội", "date": "2026-11-23"},
        "subject": "Về việc góp ý dự thảo",
    }
    data.update(extra)
    return data


def drop_file(path: Path, data: bytes = b"<edXML/>") -> Path:
    """Write like a well-behaved DMS: a temporary name, then a rename."""
    temporary = path.with_name(path.name + ".part")
    temporary.write_bytes(data)
    os.rename(temporary, path)
    return path


def drop_bundle(outbox: Path, name: str, files: dict[str, bytes], metadata: dict | None) -> Path:
    bundle = outbox / name
    bundle.mkdir()
    for file_name, data in files.items():
        (bundle / file_name).write_bytes(data)
    if metadata is not None:
        (bundle / "document.yaml").write_text(yaml.safe_dump(metadata, allow_unicode=True),
                                              encoding="utf-8")
    return bundle


def incoming_package(tmp_path: Path, *, axis_doc_id: str = "axis-0001") -> IncomingDocument:
    """A received document with a Vietnamese-named PDF and a ZIP-convention text part, written
    by the project's writer and summarised as the core would."""
    attachments = [
        prepare_outgoing(VIETNAMESE_NAME, data=PDF_BYTES, description="Văn bản chính"),
        prepare_outgoing("ghi chú.txt", data=NOTE_TEXT),
    ]
    assert attachments[1].content_type == "application/zip"
    package = model.DocumentPackage(
        from_=model.Organization(organ_id=SENDER, organ_name="Văn phòng Chính phủ"),
        to=[model.Organization(organ_id=RECEIVER)],
        code=model.Code(number="7816", notation="VPCP-TTĐT"),
        promulgation_info=model.PromulgationInfo(place="Hà Nội", date=dt.date(2026, 11, 23)),
        document_type=model.DocumentType(type="1", type_detail="0", type_name="Công văn"),
        subject="Về việc góp ý dự thảo",
        attachments=attachments,
    )
    path = tmp_path / f"received-{axis_doc_id}.edxml"
    path.write_bytes(write_package(package))
    summary = summarize(read_package(path))
    return IncomingDocument(
        journal_id=f"in-{axis_doc_id}", axis_doc_id=axis_doc_id,
        received_at=dt.datetime(2026, 11, 23, 20, 30, tzinfo=dt.timezone.utc),  # 24th in Hà Nội
        package_path=path, summary=summary,
        signature={"state": "absent", "reason": "the package is not signed"},
        warnings=[])
