"""The status drop, receipt and inbox metadata schemas."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from connector.dms.base import Receipt
from connector.dms.folder.results import receipt_file
from connector.dms.folder.status_drop import load_status_request
from connector.errors import InputError
from connector.schemas.metadata import InboxMetadata
from connector.schemas.receipt import ReceiptFile
from connector.schemas.status import StatusDrop


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_status_drop_yaml_full(tmp_path):
    path = write(tmp_path, "s.yaml", """
code: "06"
document_id: "000.00.00.G22,2026/11/23,7816/VPCP-TTĐT"
to: 000.00.00.G22
description: Đã hoàn thành
staff: {department: Văn thư, staff: Trần Thị B, email: b@example.vn}
document_code: 7816/VPCP-TTĐT
promulgation_date: 2026-11-23
""")
    request = load_status_request(path)
    assert request.code == "06" and request.to == ["000.00.00.G22"]
    assert request.staff["department"] == "Văn thư"
    assert request.code_text == "7816/VPCP-TTĐT"
    assert request.promulgation_date == dt.date(2026, 11, 23)


def test_status_drop_json_and_numeric_code(tmp_path):
    path = write(tmp_path, "s.json", '{"code": 2, "document_id": "D", "description": "sai địa chỉ"}')
    request = load_status_request(path)
    assert request.code == "02" and request.to == []


@pytest.mark.parametrize("text, field", [
    ("code: '07'\ndocument_id: D\n", "code"),
    ("code: '03'\n", "document_id"),
    ("code: '03'\ndocument_id: D\nto: [bad-id]\n", "to.0"),
    ("code: '03'\ndocument_id: D\ncolour: red\n", "colour"),
])
def test_status_drop_errors_name_file_and_field(tmp_path, text, field):
    path = write(tmp_path, "bad.yaml", text)
    with pytest.raises(InputError) as caught:
        load_status_request(path)
    message = caught.value.one_line()
    assert message.startswith(str(path)) and field in message
    assert "edxml-connector schema status" in message


def test_status_drop_syntax_error_gives_the_line(tmp_path):
    path = write(tmp_path, "bad.json", '{\n  "code": "03",\n  "document_id": \n}')
    with pytest.raises(InputError) as caught:
        load_status_request(path)
    assert caught.value.line == 4 and "not valid JSON" in caught.value.message


def test_receipt_file_fills_labels_and_round_trips():
    receipt = Receipt(journal_id="j", document_id="D", state="sent", axis_doc_id="a",
                      sent_at=dt.datetime(2026, 1, 1, tzinfo=dt.timezone.utc),
                      recipients={"000.00.00.H01": {"status": "02", "description": "không đúng"}})
    model = receipt_file(receipt, name="x.edxml", source_ref="ref")
    assert model.recipients["000.00.00.H01"].label == "refused"
    assert ReceiptFile.model_validate_json(model.model_dump_json()) == model


@pytest.mark.parametrize("model", [StatusDrop, ReceiptFile, InboxMetadata])
def test_json_schemas_are_printable_with_descriptions(model):
    schema = model.model_json_schema()
    text = json.dumps(schema, ensure_ascii=False)
    assert schema["type"] == "object" and '"description"' in text
