"""connector.pipeline.packaging: metadata + files -> model, and the statuses answering a document."""

from __future__ import annotations

import datetime as dt
import hashlib
from pathlib import Path

import pytest

from connector.edxml import model
from connector.errors import InputError
from connector.pipeline import packaging
from connector.schemas.document import load_document_metadata, parse_document_metadata

EXAMPLE_METADATA = Path(__file__).resolve().parents[2] / "config" / "document.example.yaml"

NOW = dt.datetime(2026, 11, 23, 9, 30, 15)
AGENCY = model.Organization(organ_id="000.00.00.G22", organ_name="Văn phòng Chính phủ")


def minimal(**changes):
    raw = {"to": [{"organ_id": "000.00.00.H41", "organ_name": "UBND tỉnh Nghệ An"}],
           "code": {"number": "12", "notation": "VPCP-TH"},
           "promulgation": {"place": "Hà Nội", "date": "2026-11-20"},
           "subject": "V/v báo cáo tình hình kết nối"}
    raw.update(changes)
    return parse_document_metadata(raw)


def test_example_metadata_becomes_a_complete_package(attachment_files):
    metadata = load_document_metadata(EXAMPLE_METADATA)
    package = packaging.build_document(metadata, [attachment_files["xlsx"], attachment_files["pdf"]],
                                       now=NOW)
    assert package.from_.organ_id == "000.00.00.G22"
    assert package.from_.organ_name == "Văn phòng Chính phủ"
    assert [item.organ_id for item in package.to] == ["000.00.00.H41", "000.00.00.H14"]
    # The convention: sender, promulgation date on the wire, number/notation.
    assert package.document_id == "000.00.00.G22,2026/11/20,1234/VPCP-KSTT"
    assert package.promulgation_info.date == dt.date(2026, 11, 20)
    assert package.other_info.direction == "false"
    assert package.other_info.page_amount == "2"
    assert package.other_info.appendixes == ["Phụ lục I: Danh sách cơ quan kết nối"]
    assert package.business.business_doc_type is model.BusinessType.NEW
    assert package.business.business_doc_reason == "Văn bản điện tử mới"
    assert package.business.staff_info.staff == "Trần Thị Bình"
    assert package.trace_headers == [model.TraceHeader(organ_id="000.00.00.G22", timestamp=NOW)]
    assert package.response_for[0].document_id == "000.00.00.H41,2026/11/10,567/UBND-VX"
    # Attachments in the metadata's order, not the arguments'; names and descriptions from it.
    names = [item.name for item in package.attachments]
    assert names == ["Công văn 1234-VPCP-KSTT.pdf", "phu-luc-1.xlsx"]
    assert package.attachments[0].description == "Công văn (bản ký số)"
    assert package.attachments[0].content_type == "application/pdf"
    assert package.attachments[0].sha256() == hashlib.sha256(
        attachment_files["pdf"].read_bytes()).hexdigest()


def test_sender_defaults_to_the_agency():
    package = packaging.build_document(minimal(), [], agency=AGENCY, now=NOW)
    assert package.from_ == AGENCY
    assert package.from_ is not AGENCY  # a copy: the caller's object is never shared
    assert package.document_id == "000.00.00.G22,2026/11/20,12/VPCP-TH"
    assert package.trace_headers[0].organ_id == "000.00.00.G22"


def test_no_sender_at_all_is_an_input_error():
    with pytest.raises(InputError) as caught:
        packaging.build_document(minimal(), [], now=NOW, source="doc.yaml")
    assert caught.value.element == "from"
    assert "doc.yaml" in caught.value.one_line()


def test_agency_with_a_malformed_identifier_is_refused():
    with pytest.raises(InputError, match="28.22.H17"):
        packaging.build_document(minimal(), [], agency=model.Organization(organ_id="28.22.H17"))


def test_promulgation_date_defaults_to_today_in_vietnam():
    metadata = minimal(promulgation=None)
    package = packaging.build_document(metadata, [], agency=AGENCY, now=NOW)
    assert package.promulgation_info.date == NOW.date()
    assert package.document_id == "000.00.00.G22,2026/11/23,12/VPCP-TH"


def test_explicit_document_id_is_kept():
    package = packaging.build_document(minimal(document_id="abc-uuid"), [], agency=AGENCY, now=NOW)
    assert package.document_id == "abc-uuid"


@pytest.mark.parametrize("kind, code, label", [
    ("revoke", model.BusinessType.REVOKE, "Thu hồi văn bản điện tử"),
    ("update", model.BusinessType.UPDATE, "Cập nhật văn bản điện tử"),
])
def test_lifecycle_types_default_their_reason(kind, code, label):
    metadata = minimal(document_id="000.00.00.G22,2026/11/01,1/VPCP-TH", business={"type": kind})
    package = packaging.build_document(metadata, [], agency=AGENCY, now=NOW)
    assert package.business.business_doc_type is code
    assert package.business.business_doc_reason == label
    assert package.document_id == "000.00.00.G22,2026/11/01,1/VPCP-TH"
    if kind == "update":
        info = package.business.business_document_info
        assert (info.document_info, info.document_receiver) == ("1", "0")


def test_replace_lists_replaced_documents():
    metadata = minimal(business={"type": "replace", "reason": "Thay thế do sai sót",
                                 "replaces": [{"document_id": "old-1",
                                               "organ_ids": ["000.00.00.H41"]}]})
    package = packaging.build_document(metadata, [], agency=AGENCY, now=NOW)
    assert package.business.business_doc_type is model.BusinessType.REPLACE
    assert package.business.business_doc_reason == "Thay thế do sai sót"
    assert package.business.replacement_info_list == [
        model.ReplacementInfo(document_id="old-1", organ_ids=["000.00.00.H41"])]


def test_without_attachment_entries_every_file_is_attached_in_argument_order(tmp_path):
    files = []
    for name in ("b.pdf", "a.docx", "c.pdf"):
        path = tmp_path / name
        path.write_bytes(name.encode() * 10)
        files.append(path)
    package = packaging.build_document(minimal(), files, agency=AGENCY, now=NOW)
    assert [item.name for item in package.attachments] == ["b.pdf", "a.docx", "c.pdf"]


def test_a_mapping_of_bundle_files_is_accepted(tmp_path):
    path = tmp_path / "stored-under-another-name"
    path.write_bytes(b"%PDF-1.4 x")
    metadata = minimal(attachments=[{"file": "to-trinh.pdf"}])
    package = packaging.build_document(metadata, {"to-trinh.pdf": path}, agency=AGENCY, now=NOW)
    assert [item.name for item in package.attachments] == ["to-trinh.pdf"]


def test_listed_file_not_given_is_named(attachment_files):
    metadata = load_document_metadata(EXAMPLE_METADATA)
    with pytest.raises(InputError) as caught:
        packaging.build_document(metadata, [attachment_files["pdf"]], source="meta.yaml")
    message = caught.value.one_line()
    assert "phu-luc-1.xlsx" in message
    assert caught.value.element == "attachments.1.file"
    assert "meta.yaml" in message


def test_given_file_not_listed_is_named(attachment_files, tmp_path):
    stray = tmp_path / "ghi-chu.txt"
    stray.write_text("không được liệt kê")
    metadata = load_document_metadata(EXAMPLE_METADATA)
    with pytest.raises(InputError, match="ghi-chu.txt"):
        packaging.build_document(metadata, [*attachment_files.values(), stray])


def test_missing_path_is_named(tmp_path):
    with pytest.raises(InputError) as caught:
        packaging.build_document(minimal(), [tmp_path / "khong-co.pdf"], agency=AGENCY)
    assert caught.value.file.endswith("khong-co.pdf")


def test_two_files_with_one_name_are_refused(tmp_path):
    (tmp_path / "x").mkdir()
    first, second = tmp_path / "a.pdf", tmp_path / "x" / "a.pdf"
    first.write_bytes(b"1")
    second.write_bytes(b"2")
    with pytest.raises(InputError, match="a.pdf"):
        packaging.build_document(minimal(), [first, second], agency=AGENCY)


def test_take_back_metadata_is_not_a_document():
    metadata = parse_document_metadata({"take_back": {"document_id": "d", "to": ["000.00.00.H41"]}})
    with pytest.raises(InputError, match="take_back|take-back"):
        packaging.build_document(metadata, [], agency=AGENCY)


# --------------------------------------------------------------------------- statuses

def original() -> model.DocumentPackage:
    return packaging.build_document(
        minimal(to=[{"organ_id": "000.00.00.H41"}, {"organ_id": "000.00.00.H14"}]), [],
        agency=AGENCY, now=NOW)


def test_receiver_status_is_addressed_to_the_original_sender():
    receiver = model.Organization(organ_id="000.00.00.H41", organ_name="UBND tỉnh Nghệ An")
    status = packaging.status_for(original(), from_=receiver, code="03", now=NOW)
    assert status.status_code is model.StatusCode.ACCEPTED
    assert status.from_.organ_id == "000.00.00.H41"
    assert status.response_for == model.ResponseFor(
        organ_id="000.00.00.G22", code="12/VPCP-TH", promulgation_date=dt.date(2026, 11, 20),
        document_id="000.00.00.G22,2026/11/20,12/VPCP-TH")
    assert status.description == "Tiếp nhận"
    assert status.timestamp == NOW


def test_receiver_status_refuses_another_addressee():
    with pytest.raises(InputError, match="original sender"):
        packaging.status_for(original(), from_=model.Organization(organ_id="000.00.00.H41"),
                             code="02", to="000.00.00.H14")


def test_take_back_request_needs_and_uses_the_receiver():
    with pytest.raises(InputError) as caught:
        packaging.status_for(original(), from_=AGENCY, code="13")
    assert "--to" in caught.value.one_line()
    assert "000.00.00.H14" in caught.value.one_line()  # lists the receivers to choose from
    status = packaging.status_for(original(), from_=AGENCY, code="13", to="000.00.00.H14",
                                  description="Gửi nhầm nơi nhận")
    assert status.status_code is model.StatusCode.TAKE_BACK_REQUESTED
    assert status.response_for.organ_id == "000.00.00.H14"
    assert status.description == "Gửi nhầm nơi nhận"


@pytest.mark.parametrize("given", ["3", 3, "03"])
def test_status_codes_are_normalised(given):
    assert packaging.parse_status_code(given) is model.StatusCode.ACCEPTED


@pytest.mark.parametrize("given", ["07", "99", "abc", ""])
def test_unknown_status_codes_are_input_errors(given):
    with pytest.raises(InputError, match="unknown status code"):
        packaging.parse_status_code(given)


def test_status_sender_must_have_a_valid_identifier():
    with pytest.raises(InputError, match="G2"):
        packaging.build_status(from_=model.Organization(organ_id="G2"), document_id="d",
                               to_organ_id="000.00.00.G22", code="01")


def test_build_take_back_makes_one_status_per_receiver():
    metadata = parse_document_metadata({"take_back": {
        "document_id": "000.00.00.G22,2026/11/20,12/VPCP-TH", "code": "12/VPCP-TH",
        "promulgation_date": "2026-11-20", "to": ["000.00.00.H41", "000.00.00.H14"],
        "reason": "Gửi nhầm"}})
    statuses = packaging.build_take_back(metadata.take_back, AGENCY, now=NOW)
    assert [item.response_for.organ_id for item in statuses] == ["000.00.00.H41", "000.00.00.H14"]
    for status in statuses:
        assert status.status_code is model.StatusCode.TAKE_BACK_REQUESTED
        assert status.from_.organ_id == "000.00.00.G22"
        assert status.response_for.document_id == "000.00.00.G22,2026/11/20,12/VPCP-TH"
        assert status.response_for.code == "12/VPCP-TH"
        assert status.response_for.promulgation_date == dt.date(2026, 11, 20)
        assert status.description == "Gửi nhầm"
