"""Unusable packages: one typed EdxmlError naming file, line, element path and what to do.
Hostile packages: refused before anything is expanded or fetched."""

from __future__ import annotations

import pytest
from edxml_read_helpers import (
    FROM,
    HEADER,
    TO,
    attachment_entry,
    document_xml,
    manifest_entry,
    status_xml,
)

from connector.edxml.reader import read_package
from connector.edxml.xmlparse import ParseLimits
from connector.errors import EdxmlError, HostilePackage, InputError, PackageTooLarge

MH = "edXML/edXMLEnvelope/edXMLHeader/MessageHeader"


def refuse(text: str, **kwargs) -> EdxmlError:
    with pytest.raises(EdxmlError) as caught:
        read_package(text.encode("utf-8"), file="in/pkg.edxml", **kwargs)
    error = caught.value
    assert error.file == "in/pkg.edxml"
    assert error.hint, "every refusal says what to do"
    assert isinstance(error, InputError) and error.exit_code == 2
    return error


def test_no_from_organ_id():
    error = refuse(document_xml(from_="<From><OrganName>X</OrganName></From>"))
    assert error.element == f"{MH}/From/OrganId"
    assert error.line == 4
    assert "From/OrganId" in error.one_line()


def test_empty_from_organ_id():
    error = refuse(document_xml(from_="<From><OrganId>  </OrganId></From>"))
    assert error.element == f"{MH}/From/OrganId"


def test_no_from_at_all():
    assert refuse(document_xml(from_="")).element == f"{MH}/From/OrganId"


def test_document_without_to():
    error = refuse(document_xml(to=""))
    assert error.element == f"{MH}/To"
    assert "no To" in error.message


def test_duplicate_to_organ_id():
    error = refuse(document_xml(to=TO + TO.replace("UBND", "Khác")))
    assert error.element == f"{MH}/To[2]/OrganId"
    assert "000.00.00.H41" in error.message and "twice" in error.message


def test_manifest_references_a_missing_attachment():
    manifest = manifest_entry() + manifest_entry(cid="cid:missing", name="gone.pdf")
    error = refuse(document_xml(manifest=manifest))
    assert error.element == "edXML/edXMLEnvelope/edXMLBody/edXMLManifest/Reference"
    assert "missing" in error.message
    assert error.line == 5


def test_invalid_base64_names_the_line_inside_the_text():
    encoded = "QUJD\nQUJD\nQU*D\n"
    error = refuse(document_xml(attachments=attachment_entry(encoded=encoded)))
    assert error.element == "edXML/AttachmentEncoded/Attachment/ContentTransferEncoded"
    assert "invalid base64" in error.message
    text = document_xml(attachments=attachment_entry(encoded=encoded))
    assert error.line == text[:text.index("QU*D")].count("\n") + 1


def test_non_ascii_in_base64():
    error = refuse(document_xml(attachments=attachment_entry(encoded="QUJDé===")))
    assert "invalid base64" in error.message


def test_impossible_base64_length():
    error = refuse(document_xml(attachments=attachment_entry(encoded="QUJDQ")))
    assert "invalid base64" in error.message


def test_attachment_without_content():
    attachment = "<Attachment><ContentId>cid:1</ContentId><AttachmentName>a.pdf</AttachmentName>" \
                 "</Attachment>"
    error = refuse(document_xml(attachments=attachment))
    assert error.element.endswith("Attachment/ContentTransferEncoded")


def test_status_with_empty_status_code():
    error = refuse(status_xml(code="<StatusCode></StatusCode>"))
    assert error.element == f"{MH}/StatusCode"


def test_status_without_status_code():
    error = refuse(status_xml(code=""))
    assert error.element == f"{MH}/StatusCode"
    assert "StatusCode" in error.message


def test_status_without_response_for():
    error = refuse(status_xml(response=""))
    assert error.element == f"{MH}/ResponseFor"


def test_unknown_business_type():
    trace = ("<TraceHeaderList><Bussiness><BussinessDocType>7</BussinessDocType></Bussiness>"
             "</TraceHeaderList>")
    error = refuse(document_xml(trace=trace))
    assert error.element == "edXML/edXMLEnvelope/edXMLHeader/TraceHeaderList/Bussiness/BussinessDocType"


def test_not_an_edxml_package():
    assert "not edXML" in refuse("<html><body/></html>").message
    assert refuse('<edXML xmlns="urn:x"/>').element == "edXML/edXMLEnvelope"


def test_truncated_package_gives_a_line():
    text = document_xml()
    error = refuse(text[: len(text) // 2])
    assert error.line is not None and "not well-formed" in error.message


def test_empty_input():
    refuse("")


def test_missing_file_is_a_typed_error(tmp_path):
    with pytest.raises(EdxmlError) as caught:
        read_package(tmp_path / "nope.edxml")
    assert caught.value.file == str(tmp_path / "nope.edxml")


# ---- hostile packages -------------------------------------------------------------------------

def test_xxe_reads_no_file(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP-SECRET-CONTENT")
    text = (f'<?xml version="1.0"?>\n<!DOCTYPE edXML [<!ENTITY xxe SYSTEM "file://{secret}">]>\n'
            + document_xml().split("\n", 1)[1].replace("Về việc thử nghiệm", "&xxe;"))
    with pytest.raises(HostilePackage) as caught:
        read_package(text.encode())
    assert "TOP-SECRET-CONTENT" not in caught.value.one_line()
    assert caught.value.line == 2


def test_xxe_to_etc_passwd_is_refused():
    text = ('<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
            '<edXML xmlns="http://www.mic.gov.vn/TBT/QCVN_102_2016">&x;</edXML>')
    with pytest.raises(HostilePackage) as caught:
        read_package(text.encode())
    assert "root:" not in caught.value.one_line()


def test_billion_laughs_is_refused():
    entities = "".join(f'<!ENTITY l{i} "{("&l" + str(i - 1) + ";") * 10}">' for i in range(1, 10))
    text = (f'<?xml version="1.0"?><!DOCTYPE edXML [<!ENTITY l0 "lol">{entities}]>'
            '<edXML xmlns="http://www.mic.gov.vn/TBT/QCVN_102_2016">&l9;</edXML>')
    with pytest.raises(HostilePackage):
        read_package(text.encode())


def test_external_dtd_is_refused(tmp_path):
    dtd = tmp_path / "evil.dtd"
    dtd.write_text('<!ENTITY leak "LEAKED">')
    text = (f'<?xml version="1.0"?><!DOCTYPE edXML SYSTEM "file://{dtd}">'
            '<edXML xmlns="http://www.mic.gov.vn/TBT/QCVN_102_2016">&leak;</edXML>')
    with pytest.raises(HostilePackage):
        read_package(text.encode())


def test_entity_declared_after_a_comment_in_the_prolog_is_refused():
    text = ('<?xml version="1.0"?><!-- hi --><!DOCTYPE x [<!ENTITY a "b">]>'
            '<edXML xmlns="http://www.mic.gov.vn/TBT/QCVN_102_2016"/>')
    with pytest.raises(HostilePackage):
        read_package(text.encode())


def test_deep_nesting_is_refused():
    deep = "<a>" * 200 + "</a>" * 200
    with pytest.raises(EdxmlError):
        read_package(document_xml(header=HEADER + deep).encode())
    with pytest.raises(HostilePackage):
        read_package(document_xml(header=HEADER + "<a>" * 80 + "</a>" * 80).encode())


@pytest.mark.parametrize("levels", [200, 5000, 200_000])
def test_deep_nesting_is_refused_by_our_own_limit_and_message(levels):
    """Beyond libxml2's own depth limit too: the operator reads our limit, never libxml2's
    "use XML_PARSE_HUGE option" (advice to loosen the parser for a hostile package)."""
    deep = "<a>" * levels + "</a>" * levels
    with pytest.raises(HostilePackage) as caught:
        read_package(document_xml(header=HEADER + deep).encode())
    text = caught.value.one_line()
    assert "nested deeper than 64 elements" in text
    assert "XML_PARSE_HUGE" not in text and "Excessive depth" not in text


def test_oversize_package_is_refused_before_reading(tmp_path):
    path = tmp_path / "big.edxml"
    path.write_text(document_xml(), encoding="utf-8")
    small = ParseLimits(max_package_size=100)
    with pytest.raises(PackageTooLarge) as caught:
        read_package(path, limits=small)
    assert caught.value.file == str(path)
    with pytest.raises(PackageTooLarge):
        read_package(document_xml().encode(), limits=small)


def test_repair_cannot_smuggle_a_doctype():
    """The repair edits bytes; a package with an undeclared prefix AND a DOCTYPE is still
    refused as hostile, before any repair."""
    text = ('<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a SYSTEM "file:///etc/passwd">]>'
            + document_xml(header=HEADER + "<foo:X>&a;</foo:X>").split("\n", 1)[1])
    with pytest.raises(HostilePackage):
        read_package(text.encode())


def test_undeclared_prefix_plus_broken_xml_is_refused_with_the_structural_line():
    text = document_xml(header=HEADER + "<foo:X>1</foo:X><Open>")
    error = refuse(text)
    assert "not well-formed" in error.message
    assert "mismatch" in error.message and "Open" in error.message


def test_from_must_exist_even_with_recovery():
    text = document_xml(from_="<edXML:From><OrganName>x</OrganName></edXML:From>")
    error = refuse(text)
    assert error.element == f"{MH}/From/OrganId"


def test_everything_in_the_hierarchy_is_a_connector_error():
    assert issubclass(HostilePackage, EdxmlError) and issubclass(PackageTooLarge, EdxmlError)
    assert FROM  # the helpers are importable from the test dir
