"""The writer produces the SDK's element order, namespaces, prefixes and formats."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
import re
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from edxml_write_helpers import make_document
from lxml import etree

from connector.edxml.model import (
    NAMESPACE,
    Attachment,
    Organization,
    ResponseFor,
    StaffInfo,
    StatusCode,
    StatusPackage,
)
from connector.edxml.reader import read_package
from connector.edxml.writer import WriterSettings, prepare_package, write_package, write_package_to
from connector.errors import InputError

SDK_SAMPLES = sorted((Path(__file__).resolve().parents[3] / "shared" / "interop" / "sdk-samples")
                     .glob("*.edxml"))
# status.edxml is the one SDK status sample with a different child order (From, ResponseFor,
# StaffInfo); the nine code-specific samples agree with each other and we follow them.
ORDER_SAMPLES = [p for p in SDK_SAMPLES if p.name != "status.edxml"]


def shape(data: bytes) -> list[tuple[int, str, str | None, str | None]]:
    """(depth, local name, prefix, namespace) of every element, signatures left out."""
    root = etree.fromstring(data, etree.XMLParser(huge_tree=True))
    out = []

    def walk(element, depth):
        qname = etree.QName(element)
        if qname.localname == "Signature":
            return
        out.append((depth, qname.localname, element.prefix, qname.namespace))
        for child in element:
            if isinstance(child.tag, str):
                walk(child, depth + 1)

    walk(root, 0)
    return out


@pytest.mark.parametrize("sample", ORDER_SAMPLES, ids=lambda p: p.name)
def test_sdk_sample_rewritten_has_identical_element_order_and_prefixes(sample):
    original = sample.read_bytes()
    package = read_package(original).package
    written = write_package(package, settings=WriterSettings(strict=False))
    assert shape(written) == shape(original)


def test_message_header_children_follow_the_sdk_sequence(document):
    sample = next(p for p in SDK_SAMPLES if p.name == "edoc_new.edxml")

    def header_names(data):
        root = etree.fromstring(data, etree.XMLParser(huge_tree=True))
        header = root.find(f".//{{{NAMESPACE}}}MessageHeader")
        return [etree.QName(child).localname for child in header]

    ours = header_names(write_package(make_document(response_for=[], to=document.to[:1])))
    assert ours == header_names(sample.read_bytes())
    with_response = header_names(write_package(document))
    assert with_response.index("ResponseFor") == with_response.index("OtherInfo") + 1
    assert with_response.index("SteeringType") == with_response.index("ResponseFor") + 1


def test_namespace_layout_mirrors_the_sample(document):
    data = write_package(document)
    assert data.startswith(b'<?xml version="1.0" encoding="UTF-8"?>\n<edXML xmlns="' + NAMESPACE.encode())
    assert b'<edXML:edXMLEnvelope xmlns:edXML="' + NAMESPACE.encode() + b'">' in data
    assert b"<AttachmentEncoded>" in data and b"<Attachment>" in data
    assert b"<ContentId>cid:209</ContentId>" in data
    assert re.search(rb'<edXML:ContentTransferEncoded xmlns:edXML="[^"]+">[A-Za-z0-9+/=]+'
                     rb'</edXML:ContentTransferEncoded>', data)
    assert b"<edXML:Subject>" in data
    assert "Sở TT&amp;TT Hải Phòng &lt;test&gt;".encode() in data  # escaped, UTF-8


def test_dates_and_timestamps_use_the_wire_formats(document):
    hanoi_noon = dt.datetime(2024, 5, 6, 5, 7, 9, tzinfo=dt.timezone.utc)  # 12:07:09 in Hà Nội
    package = dataclasses.replace(document, trace_headers=[dataclasses.replace(document.trace_headers[0],
                                                                               timestamp=hanoi_noon)])
    data = write_package(package).decode()
    assert "<edXML:PromulgationDate>2024/05/06</edXML:PromulgationDate>" in data
    assert "<edXML:DueDate>2024/06/01</edXML:DueDate>" in data
    assert "<edXML:Timestamp>2024/05/06 12:07:09</edXML:Timestamp>" in data
    utc = write_package(package, settings=WriterSettings(timezone=ZoneInfo("UTC"))).decode()
    assert "<edXML:Timestamp>2024/05/06 05:07:09</edXML:Timestamp>" in utc


def test_status_package_layout():
    status = StatusPackage(
        from_=Organization("000.00.00.H41", "UBND tỉnh Nghệ An", "UBND tỉnh Nghệ An", "Vinh",
                           "a@b.vn", "1", "2", "nghean.gov.vn"),
        response_for=ResponseFor("000.00.00.G22", "7816/VPCP-TTĐT", dt.date(2015, 9, 30),
                                 "000.00.00.G22,2015/09/30,7816/VPCP-TTĐT"),
        status_code=StatusCode.ACCEPTED, staff_info=StaffInfo("Văn thư", "Trâm", "a@b.vn", "0912"),
        description="Đã tiếp nhận", timestamp=dt.datetime(2015, 9, 20, 11, 8, 36))
    data = write_package(status)
    sample = next(p for p in SDK_SAMPLES if p.name == "status_acceptance_03.edxml")
    assert shape(data) == shape(sample.read_bytes())
    assert b"<edXML:StatusCode>03</edXML:StatusCode>" in data
    assert b"AttachmentEncoded" not in data and b"edXMLBody" not in data
    assert read_package(data).package == status


def test_round_trip_is_the_identity_and_keeps_empty_versus_absent(document):
    back = read_package(write_package(document)).package
    assert back == document
    assert back.content == "" and back.to[0].fax is None and back.from_.fax == ""


def test_document_id_is_generated_by_the_convention(document):
    package = dataclasses.replace(document, document_id=None)
    assert prepare_package(package).document_id == "000.00.00.G22,2024/05/06,7816/VPCP-TTĐT"
    document_id = read_package(write_package(package)).package.document_id
    assert document_id == "000.00.00.G22,2024/05/06,7816/VPCP-TTĐT"
    with pytest.raises(InputError, match="Code/CodeNumber") as error:
        write_package(dataclasses.replace(package, code=None))
    assert "DocumentId" in error.value.one_line()


def test_content_ids_are_generated_and_match_the_manifest(document):
    package = dataclasses.replace(document, attachments=[
        Attachment(name="a.txt", content_type="text/plain", data=b"one"),
        Attachment(name="b.txt", content_type="text/plain", data=b"two")])
    root = etree.fromstring(write_package(package))
    def content_ids(parent: str) -> list[str]:
        return [e.text for e in root.iter(f"{{{NAMESPACE}}}ContentId")
                if etree.QName(e.getparent()).localname == parent]

    references, attachments = content_ids("Reference"), content_ids("Attachment")
    assert references == attachments and len(set(references)) == 2
    assert all(re.fullmatch(r"cid:[0-9a-f-]{36}", cid) for cid in references)
    encoded = [base64.b64decode(e.text) for e in root.iter(f"{{{NAMESPACE}}}ContentTransferEncoded")]
    assert encoded == [b"one", b"two"]


@pytest.mark.parametrize(("change", "element"), [
    (lambda p: dataclasses.replace(p, from_=Organization(organ_id="28.22.H17")),
     "MessageHeader/From/OrganId"),
    (lambda p: dataclasses.replace(p, from_=Organization(organ_id=None)), "MessageHeader/From/OrganId"),
    (lambda p: dataclasses.replace(p, to=[Organization(organ_id="000.00.00.H41"),
                                          Organization(organ_id="01.02.G22")]),
     "MessageHeader/To[2]/OrganId"),
    (lambda p: dataclasses.replace(p, to=[Organization(organ_id="000.00.00.H41")] * 2),
     "MessageHeader/To[2]/OrganId"),
    (lambda p: dataclasses.replace(p, to=[]), "MessageHeader/To"),
    (lambda p: dataclasses.replace(p, subject=None), "MessageHeader/Subject"),
    (lambda p: dataclasses.replace(p, subject="x" * 501), "MessageHeader/Subject"),
    (lambda p: dataclasses.replace(p, subject="bell\x07"), "MessageHeader/Subject"),
])
def test_strict_validation_names_the_field(document, change, element):
    with pytest.raises(InputError) as error:
        write_package(change(document))
    assert error.value.element == element
    assert element in error.value.one_line()


def test_lenient_settings_write_non_conforming_identifiers(document):
    package = dataclasses.replace(document, from_=Organization(organ_id="28.22.H17"))
    data = write_package(package, settings=WriterSettings(strict=False))
    assert b"<edXML:OrganId>28.22.H17</edXML:OrganId>" in data


def test_streaming_writer_unsigned_is_byte_identical(document, tmp_path):
    source = tmp_path / "scan.pdf"
    source.write_bytes(bytes(range(256)) * 4099 + b"tail")  # not a multiple of the chunk size
    package = prepare_package(dataclasses.replace(document, attachments=[
        Attachment(name="scan.pdf", content_type="application/pdf", path=source),
        Attachment(name="small.pdf", content_type="application/pdf", data=b"x" * 10)]))
    written = write_package_to(package, tmp_path / "out.edxml")
    assert (tmp_path / "out.edxml").read_bytes() == write_package(package)
    assert written.size == (tmp_path / "out.edxml").stat().st_size
    assert not written.signed and written.document_id == package.document_id
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_missing_attachment_file_is_an_input_error(document, tmp_path):
    package = dataclasses.replace(
        document, attachments=[Attachment(name="gone.pdf", path=tmp_path / "gone.pdf")])
    with pytest.raises(InputError, match="does not exist"):
        write_package_to(package, tmp_path / "out.edxml")
    assert not (tmp_path / "out.edxml").exists()
