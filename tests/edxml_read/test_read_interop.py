"""Every readable interop sample, read through the library, with its real field values.

The expected values were read off the files by eye; attachment sizes and SHA-256 digests were
computed independently with ``grep | base64 -d | sha256sum``.
"""

from __future__ import annotations

import datetime as dt

import pytest

from connector.edxml.model import BusinessType, DocumentPackage, StatusCode, StatusPackage
from connector.edxml.reader import read_package
from connector.errors import EdxmlError

NS = "http://www.mic.gov.vn/TBT/QCVN_102_2016"
SUBJECT = "V/v kết nối, liên thông phần mềm quản lý văn bản"
SDK_ATTACHMENT_NAME = "1896_QD-TTg_m_294779.doc"
SDK_TO = ["000.00.00.H41", "000.00.00.H14", "000.00.00.G17"]

DOCUMENTS = {
    "sdk-samples/edoc_new.edxml": dict(
        from_="000.00.00.K19", to=["000.00.50.H19"], number="781622e22",
        date=dt.date(2018, 10, 19), business=BusinessType.NEW,
        sha256="7ab7c43a02a3cf2cedd14ebf2545a37e7a1307e0091b4ba94c2ef1e842a763aa"),
    "sdk-samples/edoc_revocation.edxml": dict(
        from_="000.00.00.G22", to=SDK_TO, number="7816", date=dt.date(2018, 9, 28),
        business=BusinessType.REVOKE,
        sha256="22100d39101238b750bc39a24ff6994cb2c0cf08f4edbf5f3c34d4700857d378"),
    "sdk-samples/edoc_update.edxml": dict(
        from_="000.00.00.G22", to=SDK_TO, number="7816", date=dt.date(2018, 9, 28),
        business=BusinessType.UPDATE,
        sha256="51653b9613f7f0275b43f80704033299740c702f354f44a06f55770cfbb0b135"),
    "sdk-samples/edoc_replacement.edxml": dict(
        from_="000.00.00.G22", to=SDK_TO, number="7816", date=dt.date(2018, 9, 28),
        business=BusinessType.REPLACE,
        sha256="57634d6539d79c5935c12fabd7d8fa513d81d84a5fad4c82258a31ffa741aba5"),
    "handwritten/edoc_new_variant.edxml": dict(
        from_="000.00.00.A80", to=["28.22.H17"], number="74fass22", date=dt.date(2019, 1, 16),
        business=BusinessType.NEW,
        sha256="7ab7c43a02a3cf2cedd14ebf2545a37e7a1307e0091b4ba94c2ef1e842a763aa"),
}


@pytest.mark.parametrize("name", sorted(DOCUMENTS))
def test_sdk_shaped_documents(sample, name):
    expected = DOCUMENTS[name]
    result = read_package(sample(name))
    package = result.package
    assert isinstance(package, DocumentPackage) and package.kind == "edoc"
    assert result.namespace == NS
    assert package.from_.organ_id == expected["from_"]
    assert [o.organ_id for o in package.to] == expected["to"]
    assert package.document_id == "000.00.00.G22,2015/09/30,7816/VPCP-TTĐT"
    assert package.code.number == expected["number"]
    assert package.code.notation == "VPCP-TTĐT"
    assert package.promulgation_info.place == "Hà Nội"
    assert package.promulgation_info.date == expected["date"]
    assert (package.document_type.type, package.document_type.type_detail,
            package.document_type.type_name) == ("1", "0", "Công văn")
    assert package.subject == SUBJECT and package.content == SUBJECT
    assert package.signer_info.full_name == "Nguyen Thanh Phuc"
    assert package.signer_info.competence == "TL. BO TRUONG"
    assert package.due_date == dt.date(2018, 9, 28)
    other = package.other_info
    assert (other.priority, other.typer_notation, other.promulgation_amount, other.page_amount,
            other.direction) == ("0", "TVC", "2", "22", "false")
    assert other.sphere_of_promulgation == "Liên thông văn bản quốc gia"
    assert other.appendixes == ["Công văn về việc kết nối, liên thông phần mềm quản lý văn bản"]
    assert package.steering_type == "1"
    assert package.to_places == ["Cac bo va co quan ngang bo", "Uy ban nhan dan cac tinh, TP"]
    assert [(t.organ_id, t.timestamp) for t in package.trace_headers] == [
        ("000.00.00.G22", dt.datetime(2018, 9, 28, 0, 0, 0))]
    assert package.business_type is expected["business"]
    assert package.business.paper == "0"
    staff = package.business.staff_info
    assert (staff.department, staff.staff, staff.email, staff.mobile) == (
        "Văn thư văn phòng", "Nguyễn Thị Ngọc Trâm", "vanthuvanphong@gov.vn", "84912000001")
    [attachment] = package.attachments
    assert attachment.name == SDK_ATTACHMENT_NAME
    assert attachment.content_type == "application/zip"
    assert attachment.content_id == "209"
    assert attachment.description == SDK_ATTACHMENT_NAME
    assert attachment.size == 270823
    assert attachment.sha256() == expected["sha256"]
    assert attachment.data[:4] == b"PK\x03\x04"


def test_new_document_specifics(sample):
    package = read_package(sample("sdk-samples/edoc_new.edxml")).package
    sender = package.from_
    assert (sender.organization_in_charge, sender.organ_name, sender.organ_add, sender.email,
            sender.telephone, sender.fax, sender.website) == (
        "Văn phòng Chính phủ", "Văn phòng Chính phủ", "Số 1 Hoàng Hoa Thám, Quận Ba Đình, Hà Nội",
        "vpcp@gov.vn", "8043100", "048989898789", "vpcp.vn")
    assert package.to[0].organ_name == "Sở Thông tin truyền thông Hải Phòng"
    assert package.to[0].telephone == "(84-4) 3821 5137"
    assert package.response_for == []
    assert package.business.document_id == "000.00.00.G22,2014/02/30,7806/VPCP-TTĐT"
    assert package.business.business_doc_reason == "Văn bản điện tử mới"


def test_revocation_keeps_its_unrelated_response_for(sample):
    package = read_package(sample("sdk-samples/edoc_revocation.edxml")).package
    [response] = package.response_for
    assert response.organ_id == "000.00.00.H14"
    assert response.code == "267/VPCP-TTĐT"
    assert response.document_id == "000.00.04.G14,2012/08/06,267/VPCP-TTĐT"
    assert response.promulgation_date == dt.date(2018, 9, 28)
    assert package.business.business_doc_reason == "Thu hồi văn bản điện tử"
    assert package.business.document_id is None
    assert package.to[1].organ_name == "UBND Tỉnh Cao Bằng"


def test_update_carries_its_receiver_list(sample):
    business = read_package(sample("sdk-samples/edoc_update.edxml")).package.business
    info = business.business_document_info
    assert (info.document_info, info.document_receiver) == ("1", "1")
    assert [(r.organ_id, r.receiver_type) for r in info.receivers] == [
        ("000.00.00.H41", "0"), ("000.00.00.H14", "1")]
    assert business.document_id == "000.00.00.G22,2014/02/30,7806/VPCP-TTĐT"  # impossible date kept
    assert business.replacement_info_list is None


def test_replacement_names_the_replaced_documents(sample):
    business = read_package(sample("sdk-samples/edoc_replacement.edxml")).package.business
    assert business.business_doc_reason == "Văn bản thay thế"
    assert [(r.document_id, r.organ_ids) for r in business.replacement_info_list] == [
        ("000.00.00.G22,2014/01/30,7806/VPCP-TTĐT", ["000.00.00.H41", "000.00.00.H14"])] * 2
    assert business.business_document_info is None


def test_sdk_samples_read_without_warnings(sample):
    for name in ("sdk-samples/edoc_new.edxml", "sdk-samples/edoc_update.edxml"):
        assert read_package(sample(name)).warnings == []


def test_new_variant_warns_about_the_recipient_identifier(sample):
    result = read_package(sample("handwritten/edoc_new_variant.edxml"))
    assert any("28.22.H17" in w and "To/OrganId" in w for w in result.warnings)
    assert len(result.warnings) == 1
    assert result.package.from_.organ_name == ("UBND xã Hòa Tiến - UBND huyện Hòa Vang - "
                                               "Thành phố Đà Nẵng")


def test_undeclared_prefixes_are_recovered_with_warnings(sample):
    result = read_package(sample("handwritten/edoc_undeclared_xlink.edxml"))
    package = result.package
    recovered = [w for w in result.warnings if w.startswith("recovered defect")]
    assert any("'xlink'" in w and "line 117" in w for w in recovered)
    assert any("'edXML'" in w and "line 126" in w for w in recovered)
    for organ_id in ("14.00.W00", "01.02.G22"):
        assert any(organ_id in w for w in result.warnings)
    assert package.from_.organ_id == "14.00.W00"
    assert package.from_.organ_name == "Trung tâm test production 01"
    assert [o.organ_id for o in package.to] == ["14.00.W00"]
    assert package.to[0].organization_in_charge is None  # absent, not empty
    assert package.document_id == "9fbfbad2-f1f8-4256-a2eb-50fb1061cddb"  # written last
    assert (package.code.number, package.code.notation) == ("34E31", "PRO-TEST-CASE1")
    assert package.promulgation_info.date == dt.date(2018, 9, 27)
    assert package.document_type.type_name == "Thông tư"
    assert package.document_type.type_detail is None
    assert package.subject == "Văn bản liên thông chỉ đạo - 190701"
    assert package.content == "test gửi liên thông vpcp"
    assert package.due_date == dt.date(2018, 6, 25)
    assert package.to_places == ["Các bộ"]  # before OtherInfo in this file
    assert package.other_info.appendixes == ["Phụ lục"]
    assert package.other_info.direction is None
    # the empty ResponseFor is kept as empty strings, its empty date as None, without an error
    [response] = package.response_for
    assert (response.organ_id, response.code, response.promulgation_date,
            response.document_id) == ("", "", None, "")
    assert package.steering_type == "1"
    assert [(t.organ_id, t.timestamp) for t in package.trace_headers] == [
        ("01.02.G22", dt.datetime(2018, 6, 20, 16, 35, 56))]
    assert package.business is None and package.business_type is BusinessType.NEW
    [attachment] = package.attachments
    assert attachment.name == "GUIDE_INSTALL OPENVPN.SIGNED.PDF"
    assert attachment.content_type == "application/pdf"
    assert attachment.content_id == "36b8a92e-f054-11e7-842b-005056b672fc"
    assert attachment.description == "Description 1"  # from the manifest only
    assert attachment.size == 284937
    assert attachment.sha256() == "61d6bc08ae7eae0deb74b6b3f6d27bcc2f059562ba97ce36a653373e087b3df7"
    assert attachment.data.startswith(b"%PDF-1.5")


def test_nested_from_is_refused_with_its_line(sample):
    path = sample("handwritten/edoc_nested_from.edxml")
    with pytest.raises(EdxmlError) as caught:
        read_package(path)
    error = caught.value
    assert error.line == 74
    assert error.file == str(path)
    assert "From line 7" in error.message
    assert f"{path}:74:" in error.one_line()


STATUS_DESCRIPTIONS = {
    "status_inbox_01.edxml": (StatusCode.ARRIVED, "Văn thư - Phòng Văn thư - Lưu trữ: Đã đến - "
                              "Phần mềm QLVB đã nhận nhưng văn thư chưa xử lý"),
    "status_rejection_02.edxml": (StatusCode.REFUSED, "Văn thư - Phòng Văn thư - Lưu trữ: Từ chối "
                                  "không tiếp nhận văn bản điện tử"),
    "status_acceptance_03.edxml": (StatusCode.ACCEPTED, "Văn thư cơ - Phòng Văn thư - Lưu trữ: "
                                   "Tiếp nhận văn bản điện tử, vào sổ văn bản đến của đơn vị"),
    "status_assignment_04.edxml": (StatusCode.ASSIGNED, "Lãnh đạo: Phân công xử lý"),
    "status_processing_05.edxml": (StatusCode.PROCESSING, "Đang xử lý văn bản đến"),
    "status_finish_06.edxml": (StatusCode.COMPLETED,
                               "Văn thư: Ban hành văn bản đến, hoàn thành xử lý"),
    "status_cancellation_13.edxml": (StatusCode.TAKE_BACK_REQUESTED,
                                     "Văn thư yêu cầu lấy lại văn bản điện tử kèm lý do"),
    "status_change-acceptance_15.edxml": (StatusCode.AGREED,
                                          "Văn thư đồng ý yêu cầu cập nhật, lấy lại"),
    "status_change-rejection_16.edxml": (StatusCode.DISAGREED,
                                         "Văn thư từ chối yêu cầu cập nhật, lấy lại"),
}


@pytest.mark.parametrize("name", sorted(STATUS_DESCRIPTIONS))
def test_sdk_statuses(sample, name):
    code, description = STATUS_DESCRIPTIONS[name]
    result = read_package(sample(f"sdk-samples/{name}"))
    status = result.package
    assert isinstance(status, StatusPackage) and status.kind == "status"
    assert result.warnings == []
    assert status.status_code is code
    assert status.description == description
    assert status.timestamp == dt.datetime(2015, 9, 20, 11, 8, 36)
    take_back = code is StatusCode.TAKE_BACK_REQUESTED
    # 13 travels from the original sender (G22) to the receiver (H41); every other the other way
    assert status.from_.organ_id == ("000.00.00.G22" if take_back else "000.00.00.H41")
    assert status.response_for.organ_id == ("000.00.00.H41" if take_back else "000.00.00.G22")
    assert status.response_for.code == "7816/VPCP-TTĐT"
    assert status.response_for.promulgation_date == dt.date(2015, 9, 30)
    assert status.response_for.document_id == "000.00.00.G22,2015/09/30,7816/VPCP-TTĐT"
    staff = status.staff_info
    assert (staff.department, staff.staff, staff.mobile, staff.email) == (
        "Phong hanh chinh", "Nguyen thi ngoc tram", "84912000001", "ngoctram@nghean.vn")


def test_plain_status_sample(sample):
    status = read_package(sample("sdk-samples/status.edxml")).package
    assert status.status_code is StatusCode.ARRIVED
    assert status.from_.organ_id == "000.00.00.H41"
    assert status.from_.organ_name == "UBND Tỉnh Nghệ An"
    assert status.response_for.organ_id == "000.00.00.G22"
    assert status.response_for.promulgation_date == dt.date(2018, 9, 28)
    assert status.response_for.document_id == "000.00.00.G22,2015/09/30,7816/VPCP-TTĐT"
    assert status.timestamp == dt.datetime(2018, 9, 28, 17, 25, 11)
    assert status.staff_info.staff == "Nguyễn Thị Ngọc Trâm"
    assert status.staff_info.email == "vanthuvanphong@gov.vn"


def test_every_interop_file_is_covered(interop_dir):
    """A new sample dropped into interop/ must get its own assertions here."""
    covered = set(DOCUMENTS) | {f"sdk-samples/{n}" for n in STATUS_DESCRIPTIONS} | {
        "sdk-samples/status.edxml", "handwritten/edoc_undeclared_xlink.edxml",
        "handwritten/edoc_nested_from.edxml"}
    present = {str(p.relative_to(interop_dir)) for p in interop_dir.rglob("*.edxml")}
    assert present == covered


def test_reads_from_bytes_with_a_given_file_label(sample):
    data = sample("sdk-samples/status.edxml").read_bytes()
    assert read_package(data).package.status_code is StatusCode.ARRIVED
    broken = sample("handwritten/edoc_nested_from.edxml").read_bytes()
    with pytest.raises(EdxmlError) as caught:
        read_package(broken, file="inbox/42.edxml")
    assert caught.value.one_line().startswith("inbox/42.edxml:74:")
