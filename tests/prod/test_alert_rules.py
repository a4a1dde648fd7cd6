"""The monitoring configs: alert rules valid and behaving (promtool), every metric they use
exists, and the log shipper reads our unit's journal."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from connector.service.metrics import Metrics

MONITORING = Path(__file__).resolve().parents[2] / "config" / "monitoring"
PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None, reason="promtool not installed (Debian package: prometheus)")

REQUIRED_ALERTS = {
    "EdxmlConnectorQueueStuck", "EdxmlConnectorFailedItems", "EdxmlConnectorOldestPendingTooOld",
    "EdxmlConnectorCertificateExpiringSoon", "EdxmlConnectorAxisUnreachable",
    "EdxmlConnectorNotReady", "EdxmlConnectorSigningBlocked",
}


def rules() -> list[dict]:
    document = yaml.safe_load((MONITORING / "alerts.yml").read_text())
    return [rule for group in document["groups"] for rule in group["rules"]]


def exported_names() -> set[str]:
    names = set()
    for metric in Metrics().registry.collect():
        for sample in metric.samples:
            names.add(sample.name)
        names.add(metric.name)
    return names


def test_every_metric_in_the_rules_exists():
    known = exported_names() | {"up"}
    for rule in rules():
        used = set(re.findall(r"\b(edxml_connector_[a-z_]+|up)\b", rule["expr"]))
        assert used, rule["alert"]
        assert used <= known, f"{rule['alert']} uses unknown metrics {used - known}"


def test_required_alerts_have_for_labels_annotations():
    by_name = {rule["alert"]: rule for rule in rules()}
    assert REQUIRED_ALERTS <= set(by_name)
    for rule in by_name.values():
        assert "for" in rule and rule["labels"]["severity"] in {"warning", "critical"}
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]


@needs_promtool
def test_promtool_check_rules_and_config():
    for command in (["check", "rules", "alerts.yml"], ["check", "config", "prometheus.yml"]):
        result = subprocess.run([PROMTOOL, *command], cwd=MONITORING, capture_output=True,
                                text=True, timeout=60)
        assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_promtool_rule_unit_tests():
    result = subprocess.run([PROMTOOL, "test", "rules", "alerts.test.yml"], cwd=MONITORING,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_vector_reads_our_unit_and_parses_json():
    config = yaml.safe_load((MONITORING / "vector.yaml").read_text())
    source = config["sources"]["edxml_journal"]
    assert source["type"] == "journald"
    assert source["include_units"] == ["edxml-connector.service"]
    transform = config["transforms"]["edxml_parse"]
    assert transform["inputs"] == ["edxml_journal"] and "parse_json(.message)" in transform["source"]
    assert all(sink["inputs"] == ["edxml_parse"] for sink in config["sinks"].values())


def test_scrape_example_targets_the_default_listener():
    config = yaml.safe_load((MONITORING / "prometheus.yml").read_text())
    [job] = config["scrape_configs"]
    assert job["job_name"] == "edxml-connector"  # the alert rules' up{job=...} uses it
    assert job["static_configs"][0]["targets"] == ["127.0.0.1:9640"]
