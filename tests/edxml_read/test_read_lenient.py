"""What the reader accepts from other writers, and what it says about it."""

from __future__ import annotations

import base64
import datetime as dt

import pytest
from edxml_read_helpers import (
    FROM,
    HEADER,
    PDF_BYTES,
    TO,
    attachment_entry,
    document_xml,
    manifest_entry,
    status_xml,
)

from connector.edxml.model import LEGACY_NAMESPACE, BusinessType, StatusCode
from connector.edxml.reader import read_package


def read(text: str | bytes):
    return read_package(text.encode("utf-8") if isinstance(text, str) else text)


def test_the_synthetic_baseline_reads_cleanly():
    result = read(document_xml())
    assert result.warnings == []
    package = result.package
    assert package.subject == "Về việc thử nghiệm"
    assert package.attachments[0].data == PDF_BYTES
    assert package.attachments[0].content_id == "1"


def test_children_in_any_order():
    header = ("<Subject>S</Subject><DocumentId>X</DocumentId>"
              "<PromulgationInfo><PromulgationDate>2024/01/02</PromulgationDate><Place>P</Place>"
              "</PromulgationInfo><Code><CodeNotation>N</CodeNotation><CodeNumber>1</CodeNumber>"
              "</Code>")
    result = read(document_xml(to="", header=TO + header, from_=FROM))
    package = result.package
    assert package.document_id == "X"
    assert (package.code.number, package.code.notation) == ("1", "N")
    assert package.promulgation_info.date == dt.date(2024, 1, 2)
    assert result.warnings == []


def test_older_business_spelling_and_old_date_formats():
    trace = ("<TraceHeaderList><TraceHeader><OrganId>000.00.00.G22</OrganId>"
             "<Timestamp>02/05/2024 08:30:00</Timestamp></TraceHeader>"
             "<Business><BusinessDocType>2</BusinessDocType><BusinessDocReason>cập nhật"
             "</BusinessDocReason><BusinessDocumentInfo><DocumentInfo>1</DocumentInfo>"
             "</BusinessDocumentInfo></Business></TraceHeaderList>")
    header = HEADER.replace("2024/05/02</PromulgationDate>", "02/05/2024</PromulgationDate>")
    result = read(document_xml(trace=trace, header=header + "<DueDate>31/12/2024</DueDate>"))
    package = result.package
    assert package.business_type is BusinessType.UPDATE
    assert package.business.business_doc_reason == "cập nhật"
    assert package.business.business_document_info.document_info == "1"
    assert package.trace_headers[0].timestamp == dt.datetime(2024, 5, 2, 8, 30)
    assert package.promulgation_info.date == dt.date(2024, 5, 2)
    assert package.due_date == dt.date(2024, 12, 31)
    assert result.warnings == []


@pytest.mark.parametrize("manifest_cid, attachment_cid", [
    ("cid:abc", "abc"), ("abc", "cid:abc"), ("CID:abc", "&lt;abc&gt;"), ("cid:abc", "cid:abc")])
def test_cid_prefix_on_one_side_only(manifest_cid, attachment_cid):
    result = read(document_xml(manifest=manifest_entry(cid=manifest_cid),
                               attachments=attachment_entry(cid=attachment_cid)))
    assert result.package.attachments[0].content_id == "abc"
    assert result.warnings == []


def test_empty_optional_fields_are_kept_empty_and_empty_dates_are_none():
    header = ("<DocumentId></DocumentId><Code><CodeNumber/><CodeNotation></CodeNotation></Code>"
              "<PromulgationInfo><Place/><PromulgationDate></PromulgationDate></PromulgationInfo>"
              "<Subject>S</Subject><Content></Content><DueDate/>"
              "<OtherInfo><Priority/><Appendixes/></OtherInfo><ToPlaces/>"
              "<ResponseFor><OrganId/><Code/><PromulgationDate/><DocumentId/></ResponseFor>")
    result = read(document_xml(header=header))
    package = result.package
    assert package.document_id == ""
    assert (package.code.number, package.code.notation) == ("", "")
    assert package.promulgation_info.place == "" and package.promulgation_info.date is None
    assert package.content == "" and package.due_date is None
    assert package.other_info.priority == "" and package.other_info.appendixes == []
    assert package.other_info.direction is None
    assert package.to_places == []
    assert package.response_for[0].organ_id == "" and package.response_for[0].document_id == ""
    assert result.warnings == []


def test_unknown_extension_elements_are_ignored_with_a_warning():
    header = HEADER + "<VendorExtension><Anything>1</Anything></VendorExtension>"
    to = TO.replace("</To>", "<x:Note xmlns:x='urn:vendor'>hi</x:Note></To>")
    result = read(document_xml(header=header, to=to))
    assert result.package.subject == "Về việc thử nghiệm"
    assert any("MessageHeader/VendorExtension" in w for w in result.warnings)
    assert any("{urn:vendor}Note" in w for w in result.warnings)


def test_bom_and_crlf():
    text = document_xml().replace("\n", "\r\n")
    result = read(b"\xef\xbb\xbf" + text.encode("utf-8"))
    assert result.package.from_.organ_id == "000.00.00.G22"
    assert result.package.attachments[0].data == PDF_BYTES


def test_base64_wrapped_in_lines_with_crlf():
    encoded = base64.encodebytes(PDF_BYTES * 40).decode().replace("\n", "\r\n")
    result = read(document_xml(attachments=attachment_entry(encoded=encoded, data=b"")))
    assert result.package.attachments[0].data == PDF_BYTES * 40


def test_missing_base64_padding_is_recovered_with_a_warning():
    encoded = base64.b64encode(b"ab").decode().rstrip("=")
    result = read(document_xml(attachments=attachment_entry(encoded=encoded)))
    assert result.package.attachments[0].data == b"ab"
    assert any("padding" in w for w in result.warnings)


def test_legacy_namespace_is_accepted_and_reported():
    result = read(document_xml(ns=LEGACY_NAMESPACE))
    assert result.namespace == LEGACY_NAMESPACE
    assert result.package.to[0].organ_id == "000.00.00.H41"
    assert any("legacy namespace" in w for w in result.warnings)


def test_non_conforming_identifiers_are_warnings():
    result = read(document_xml(to=TO.replace("000.00.00.H41", "01.02.G22")))
    assert result.package.to[0].organ_id == "01.02.G22"
    assert [w for w in result.warnings if "01.02.G22" in w]


def test_over_long_fields_are_warnings():
    header = HEADER.replace("<Subject>Về việc thử nghiệm</Subject>",
                            f"<Subject>{'S' * 501}</Subject><Content>{'C' * 501}</Content>"
                            f"<ToPlaces><Place>{'P' * 151}</Place></ToPlaces>")
    result = read(document_xml(header=header))
    assert len(result.package.subject) == 501
    for element in ("Subject", "Content", "Place"):
        assert any(f"/{element} is" in w and "more than" in w for w in result.warnings), element


def test_manifest_content_type_missing_falls_back_to_the_attachment_and_vice_versa():
    manifest = ("<Reference><ContentId>cid:1</ContentId><AttachmentName>a.pdf</AttachmentName>"
                "<Description>from manifest</Description></Reference>")
    attachment = ("<Attachment><ContentId>cid:1</ContentId><ContentType>application/pdf"
                  f"</ContentType><ContentTransferEncoded>{base64.b64encode(b'x').decode()}"
                  "</ContentTransferEncoded></Attachment>")
    result = read(document_xml(manifest=manifest, attachments=attachment))
    [part] = result.package.attachments
    assert (part.name, part.content_type, part.description) == ("a.pdf", "application/pdf",
                                                                "from manifest")


def test_manifest_and_attachment_disagreeing_is_a_warning():
    result = read(document_xml(manifest=manifest_entry(name="b.pdf")))
    assert result.package.attachments[0].name == "a.pdf"
    assert any("manifest says 'b.pdf'" in w for w in result.warnings)


def test_attachment_missing_from_the_manifest_is_kept_with_a_warning():
    attachments = attachment_entry() + attachment_entry(cid="cid:2", name="b.pdf")
    result = read(document_xml(attachments=attachments))
    assert [a.name for a in result.package.attachments] == ["a.pdf", "b.pdf"]
    assert any("not listed in the manifest" in w for w in result.warnings)


def test_status_code_unknown_is_kept_raw_with_a_warning():
    result = read(status_xml(code="<StatusCode>99</StatusCode>"))
    assert result.package.status_code == "99"
    assert any("'99'" in w for w in result.warnings)


def test_status_code_single_digit_is_normalised():
    result = read(status_xml(code="<StatusCode>3</StatusCode>"))
    assert result.package.status_code is StatusCode.ACCEPTED


def test_undeclared_prefix_recovery_keeps_line_numbers():
    text = document_xml().replace("<AttachmentEncoded>", "<edXML:AttachmentEncoded>").replace(
        "</AttachmentEncoded>", "</edXML:AttachmentEncoded>")
    text = text.replace("<Subject>", "\n\n<Subject>")
    result = read(text)
    assert result.package.attachments[0].data == PDF_BYTES
    line = text[:text.index("<edXML:AttachmentEncoded>")].count("\n") + 1
    assert any(f"line {line}" in w and "'edXML'" in w for w in result.warnings)


def test_an_unknown_undeclared_prefix_makes_an_ignored_element():
    header = HEADER + "<foo:Extra>1</foo:Extra>"
    result = read(document_xml(header=header))
    assert any("'foo'" in w and w.startswith("recovered defect") for w in result.warnings)
    assert any("Extra" in w and "ignored unknown element" in w for w in result.warnings)


def test_nested_from_that_is_well_formed_reads_the_inner_one():
    from_ = "<From><From><OrganId>000.00.00.G22</OrganId></From></From>"
    result = read(document_xml(from_=from_))
    assert result.package.from_.organ_id == "000.00.00.G22"
    assert any("nested From" in w for w in result.warnings)


def test_comments_inside_values_are_not_part_of_the_value():
    header = HEADER.replace("<Subject>Về việc thử nghiệm</Subject>",
                            "<Subject>Về việc<!-- note --> thử nghiệm</Subject>")
    assert read(document_xml(header=header)).package.subject == "Về việc thử nghiệm"


def test_reads_from_a_path(tmp_path):
    path = tmp_path / "p.edxml"
    path.write_text(document_xml(), encoding="utf-8")
    assert read_package(path).package.to[0].organ_id == "000.00.00.H41"
    assert read_package(str(path)).package.to[0].organ_id == "000.00.00.H41"


def test_trace_without_business_is_a_new_document():
    trace = ("<TraceHeaderList><TraceHeader><OrganId>000.00.00.G22</OrganId><Timestamp/>"
             "</TraceHeader></TraceHeaderList>")
    package = read(document_xml(trace=trace)).package
    assert package.business is None and package.business_type is BusinessType.NEW
    assert package.trace_headers[0].timestamp is None


def test_invalid_dates_are_warnings_not_errors():
    header = HEADER.replace("2024/05/02</PromulgationDate>", "2024/02/30</PromulgationDate>")
    result = read(document_xml(header=header))
    assert result.package.promulgation_info.date is None
    assert any("2024/02/30" in w for w in result.warnings)
