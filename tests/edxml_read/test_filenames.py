"""Attachment names from other agencies become file names only after sanitising."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.edxml.attachments import sanitize_filename, unique_name

NFD_NAME = unicodedata.normalize("NFD", "Quyết định số 12.pdf")


@pytest.mark.parametrize("given_name, expected", [
    ("Quyết định số 12.pdf", "Quyết định số 12.pdf"),
    (NFD_NAME, "Quyết định số 12.pdf"),
    ("Công văn/2024\\tháng 5.docx", "Công văn_2024_tháng 5.docx"),
    ("../../etc/passwd", "_._etc_passwd"),
    ("..", "attachment"),
    ("...hidden", "hidden"),
    (".bashrc", "bashrc"),
    ("  spaced name .pdf. . ", "spaced name .pdf"),
    ("bad\x00na\x1fme\x7f.txt", "badname.txt"),
    ("right\u202eto-left.exe.pdf", "rightto-left.exe.pdf"),
    ("a..b.pdf", "a.b.pdf"),
    ("CON", "_CON"),
    ("con.txt", "_con.txt"),
    ("LPT9.tar.gz", "_LPT9.tar.gz"),
    ("COM10.txt", "COM10.txt"),
    ("NUL .txt", "_NUL .txt"),
    ("com¹.log", "_com¹.log"),
    ('what?<is>:"this"|*.txt', "what__is___this___.txt"),
    ("", "attachment"),
    ("   ", "attachment"),
    ("\x00\x01", "attachment"),
    ("GUIDE_INSTALL OPENVPN.SIGNED.PDF", "GUIDE_INSTALL OPENVPN.SIGNED.PDF"),
    ("tab\there.txt", "tabhere.txt"),
    ("nbsp\u00a0name.txt", "nbsp name.txt"),
])
def test_sanitize_table(given_name, expected):
    assert sanitize_filename(given_name) == expected


def test_length_limit_counts_utf8_bytes_and_keeps_the_extension():
    name = "Báo cáo tổng hợp " * 20 + ".docx"
    result = sanitize_filename(name, max_length=60)
    assert len(result.encode("utf-8")) <= 60
    assert result.endswith(".docx")
    assert result.startswith("Báo cáo tổng hợp")
    assert unicodedata.is_normalized("NFC", result)


def test_length_limit_without_a_usable_extension():
    result = sanitize_filename("ệ" * 100, max_length=10)
    assert result == "ệệệ"  # 3 bytes each, no split character


def test_unique_name():
    taken: set[str] = set()
    assert unique_name("a.pdf", taken) == "a.pdf"
    assert unique_name("A.PDF", taken) == "A (2).PDF"
    assert unique_name("a.pdf", taken) == "a (3).pdf"
    assert unique_name("README", taken) == "README"
    assert unique_name("README", taken) == "README (2)"
    assert taken == {"a.pdf", "A (2).PDF", "a (3).pdf", "README", "README (2)"}


def test_unique_name_respects_the_length_limit():
    taken = {"x" * 20 + ".txt"}
    result = unique_name("x" * 20 + ".txt", taken, max_length=20)
    assert len(result.encode()) <= 20 and result.endswith(" (2).txt")


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=300))
def test_sanitized_names_are_always_safe(name):
    result = sanitize_filename(name)
    assert result
    assert "/" not in result and "\\" not in result and ".." not in result
    assert not result.startswith((".", " ")) and not result.endswith((".", " "))
    assert len(result.encode("utf-8")) <= 150
    assert not any(unicodedata.category(ch) in ("Cc", "Cf") for ch in result)
    assert result.split(".")[0].rstrip().upper() not in {"CON", "PRN", "AUX", "NUL", "COM1"}
    assert sanitize_filename(result) == result  # idempotent
