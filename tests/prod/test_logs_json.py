"""Logging: JSON lines, the documented fixed fields, redaction, run-time level, rotating file."""

from __future__ import annotations

import io
import json
import logging

import pytest
import structlog

from connector import logs
from connector.errors import ConfigError


@pytest.fixture
def capture():
    stream = io.StringIO()
    root_level = logging.getLogger().level
    logs.redactor.clear()
    logs.configure_logging("info", stream=stream)

    def lines() -> list[dict]:
        return [json.loads(line) for line in stream.getvalue().splitlines() if line.strip()]

    yield lines
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_edxml_connector_handler", False):
            root.removeHandler(handler)
            handler.close()
    logs.redactor.clear()
    structlog.reset_defaults()
    root.setLevel(root_level)
    for name in logs.QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(logging.NOTSET)


def test_one_json_object_per_line_with_the_fixed_fields_first(capture):
    log = logs.get_logger("connector.pipeline.outbound")
    log.info("item_sent", item_id="01J0Z", document_id="123/UBND-VP", duration_ms=41.5,
             tên_tệp="Quyết định.pdf")
    [line] = capture()
    assert list(line)[:4] == ["timestamp", "level", "logger", "event"]
    assert line["level"] == "info" and line["logger"] == "connector.pipeline.outbound"
    assert line["event"] == "item_sent" and line["item_id"] == "01J0Z"
    assert line["duration_ms"] == 41.5
    assert line["tên_tệp"] == "Quyết định.pdf"  # Vietnamese survives, unescaped or not
    assert line["timestamp"].endswith("Z") and "T" in line["timestamp"]


def test_secret_field_names_are_redacted_at_any_depth(capture):
    log = logs.get_logger("connector.axis")
    log.warning("axis_request", secret="s", axis_secret="s", key_password="p", token="t",
                secret_file="/etc/edxml-connector/credentials/axis-secret",
                headers={"XroadVnpt-hash-header": "079074fb", "XroadVnpt-sign-header": "{...}",
                         "Authorization": "Bearer x", "XroadVnpt-systemid": "000.00.00.H41"},
                attempts=[{"password": "p2"}])
    [line] = capture()
    for key in ("secret", "axis_secret", "key_password", "token"):
        assert line[key] == logs.REDACTED
    assert line["headers"]["XroadVnpt-hash-header"] == logs.REDACTED
    assert line["headers"]["XroadVnpt-sign-header"] == logs.REDACTED
    assert line["headers"]["Authorization"] == logs.REDACTED
    assert line["headers"]["XroadVnpt-systemid"] == "000.00.00.H41"
    assert line["attempts"] == [{"password": logs.REDACTED}]
    # Where a secret lives is what an operator needs to see.
    assert line["secret_file"] == "/etc/edxml-connector/credentials/axis-secret"


def test_registered_secret_values_are_cut_out_everywhere(capture):
    logs.register_secret(b"demo-secret-123\n")
    log = logs.get_logger("connector.config")
    log.info("loaded demo-secret-123", value="demo-secret-123", note="x demo-secret-123 y")
    try:
        raise RuntimeError("auth failed with demo-secret-123")
    except RuntimeError:
        log.exception("axis_refused")
    logging.getLogger("urllib3.connectionpool").warning("header demo-secret-123")
    text = json.dumps(capture())
    assert "demo-secret-123" not in text
    first, second, third = capture()
    assert first["event"] == "loaded [REDACTED]" and first["value"] == "[REDACTED]"
    assert "RuntimeError: auth failed with [REDACTED]" in second["exception"]
    assert third["logger"] == "urllib3.connectionpool" and third["event"] == "header [REDACTED]"


def test_set_level_changes_at_run_time(capture):
    log = logs.get_logger("connector.service.daemon")
    log.debug("hidden_at_info")
    logs.set_level("debug")
    log.debug("shown_at_debug")
    logs.set_level("WARNING")
    log.info("hidden_at_warning")
    log.warning("shown_at_warning")
    assert [line["event"] for line in capture()] == ["shown_at_debug", "shown_at_warning"]


def test_noisy_libraries_stay_at_warning(capture):
    logs.set_level("debug")
    logging.getLogger("apscheduler.executors.default").info("Running job ...")
    logging.getLogger("apscheduler.executors.default").warning("Run time of job was missed")
    assert [line["event"] for line in capture()] == ["Run time of job was missed"]


def test_bad_level_names_the_key():
    with pytest.raises(ConfigError) as raised:
        logs.set_level("loud")
    assert raised.value.element == "logging.level" and "debug" in raised.value.hint


def test_rotating_file(tmp_path, capture):
    path = tmp_path / "connector.log"
    stream = io.StringIO()
    logs.configure_logging("info", stream=stream, file=path, file_max_bytes=400,
                           file_backup_count=2)
    log = logs.get_logger("connector.pipeline.inbound")
    for number in range(20):
        log.info("item_stored", item_id=number, padding="x" * 40)
    assert len(stream.getvalue().splitlines()) == 20  # stdout still gets everything
    rotated = sorted(p.name for p in tmp_path.iterdir())
    assert rotated == ["connector.log", "connector.log.1", "connector.log.2"]
    last = [json.loads(line) for line in path.read_text().splitlines()]
    assert last[-1]["item_id"] == 19


def test_unwritable_log_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError) as raised:
        logs.configure_logging("info", stream=io.StringIO(), file=tmp_path / "no" / "x.log")
    assert raised.value.element == "logging.file"
