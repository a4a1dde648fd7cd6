"""connector.edxml.summary on packages we build: zip parts, hostile zips, text view."""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import zipfile

import pytest

from connector.edxml import model
from connector.edxml.attachments import ZipLimits
from connector.edxml.reader import read_package
from connector.edxml.summary import render_text, summarize
from connector.edxml.writer import write_package


def zip_bytes(entries: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def package_with(*attachments: model.Attachment) -> bytes:
    package = model.DocumentPackage(
        from_=model.Organization(organ_id="000.00.00.G22", organ_name="Văn phòng Chính phủ"),
        to=[model.Organization(organ_id="000.00.00.H41")],
        code=model.Code(number="9", notation="VPCP-TH"),
        promulgation_info=model.PromulgationInfo(place="Hà Nội", date=dt.date(2026, 11, 2)),
        subject="Kiểm tra tệp đính kèm",
        trace_headers=[model.TraceHeader(organ_id="000.00.00.G22",
                                         timestamp=dt.datetime(2026, 11, 2, 8, 0, 0))],
        business=model.Business(business_doc_type=model.BusinessType.NEW,
                                business_doc_reason="Văn bản điện tử mới", paper="0"),
        attachments=list(attachments))
    return write_package(package)


def test_convention_zip_lists_its_entries():
    inner = "Báo cáo tháng 10.txt".encode()
    part = zip_bytes({"Báo cáo tháng 10.txt": inner})
    data = package_with(model.Attachment(name="Báo cáo tháng 10.txt", content_type="application/zip",
                                         data=part))
    summary = summarize(read_package(data))
    [attachment] = summary["attachments"]
    assert attachment["size"] == len(part)
    assert attachment["sha256"] == hashlib.sha256(part).hexdigest()
    [entry] = attachment["extracted"]
    assert entry["name"] == "Báo cáo tháng 10.txt"
    assert entry["size"] == len(inner)
    assert entry["sha256"] == hashlib.sha256(inner).hexdigest()
    assert "problems" not in attachment
    assert summary["signature"] is None  # not checked: never pretend it was
    json.dumps(summary)  # JSON-ready throughout


def test_a_real_zip_file_is_not_unzipped():
    part = zip_bytes({"a.txt": b"a"})
    data = package_with(model.Attachment(name="ho-so.zip", content_type="application/zip", data=part))
    [attachment] = summarize(read_package(data))["attachments"]
    assert "extracted" not in attachment


def test_path_escape_is_reported_not_extracted():
    part = zip_bytes({"../../etc/cron.d/evil": b"* * * * * root sh"})
    data = package_with(model.Attachment(name="cong-van.doc", content_type="application/zip",
                                         data=part))
    [attachment] = summarize(read_package(data))["attachments"]
    assert attachment["extracted"] == []
    assert attachment["problems"]
    assert any("evil" in problem or ".." in problem for problem in attachment["problems"])
    assert attachment["sha256"] == hashlib.sha256(part).hexdigest()  # the part as received


def test_zip_bomb_is_reported_within_the_given_limits():
    part = zip_bytes({"zeros.bin": bytes(4 * 1024 * 1024)})
    data = package_with(model.Attachment(name="phu-luc.doc", content_type="application/zip", data=part))
    limits = ZipLimits(max_ratio=10.0, ratio_threshold=1024)
    [attachment] = summarize(read_package(data), zip_limits=limits)["attachments"]
    assert attachment["extracted"] == []
    assert attachment["problems"]


def test_text_view_shows_problems_and_warnings():
    part = zip_bytes({"../x": b"x"})
    data = package_with(model.Attachment(name="x.doc", content_type="application/zip", data=part))
    result = read_package(data)
    result.warnings.append("một cảnh báo thử")
    text = render_text(summarize(result))
    assert "not extracted" in text
    assert "một cảnh báo thử" in text
    assert "Kiểm tra tệp đính kèm" in text


@pytest.mark.slow
def test_pack_and_verify_a_30_mb_attachment(cli, dev_certs, tmp_path):
    """Streaming end to end through the command line: pack+sign, verify, inspect."""
    scan = tmp_path / "ban-scan.pdf"
    with open(scan, "wb") as handle:
        handle.write(b"%PDF-1.4\n")
        for _ in range(30):
            handle.write(bytes(range(256)) * 4096)  # 1 MiB
    metadata = tmp_path / "scan.yaml"
    metadata.write_text(
        "from: {organ_id: '000.00.00.G22'}\nto: [{organ_id: '000.00.00.H41'}]\n"
        "code: {number: '77', notation: 'VPCP-VT'}\nsubject: 'Bản scan lớn'\n", encoding="utf-8")
    out = tmp_path / "big.edxml"
    run = cli("pack", metadata, scan, "--key", dev_certs.agency_a.key, "--cert",
              dev_certs.agency_a.cert, "--out", out)
    assert run.code == 0, run.err
    assert out.stat().st_size > 40 * 1024 * 1024  # base64 of 30 MiB
    verify = cli("verify", out, "--trust", dev_certs.ca_cert)
    assert verify.code == 0, verify.out
    summary = cli("inspect", out, "--json").json()
    assert summary["attachments"][0]["size"] == scan.stat().st_size
    assert summary["attachments"][0]["sha256"] == hashlib.sha256(scan.read_bytes()).hexdigest()
