"""The development Kafka node (services/kafka.py): its settings, and what a machine without Java is told."""

from __future__ import annotations

from pathlib import Path

import pytest

from services import kafka


def test_a_node_listens_on_loopback_only_and_keeps_its_log_where_it_is_told(tmp_path: Path) -> None:
    properties = dict(line.split("=", 1) for line in
                      kafka.KafkaNode(tmp_path, 9092, 9093).server_properties().splitlines())
    assert properties["process.roles"] == "broker,controller"
    assert properties["listeners"] == "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093"
    assert properties["advertised.listeners"] == "PLAINTEXT://127.0.0.1:9092"
    assert properties["log.dirs"] == str(tmp_path / "log")
    assert properties["group.initial.rebalance.delay.ms"] == "0"
    assert properties["offsets.topic.replication.factor"] == properties["transaction.state.log.min.isr"] == "1"


@pytest.mark.parametrize("missing", ["java", "mvn"])
def test_without_java_or_maven_the_message_names_what_is_missing_and_the_ways_around(
        missing: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kafka, "LIB", tmp_path / "lib")  # jars not resolved yet
    monkeypatch.setattr(kafka.shutil, "which", lambda tool: None if tool == missing else f"/usr/bin/{tool}")
    with pytest.raises(kafka.KafkaUnavailable) as raised:
        kafka.resolve_jars()
    message = str(raised.value)
    assert f"`{missing}` is not on PATH" in message
    assert "KAFKA_BOOTSTRAP_SERVERS" in message and "PRESENCE_BROKER=tansu" in message


def test_cluster_ids_never_start_with_a_dash_the_storage_tool_would_read_as_an_option() -> None:
    ids = [kafka._cluster_id() for _ in range(2000)]  # about 1 in 64 random ids would start with "-"
    assert all(len(i) == 22 and not i.startswith("-") for i in ids)
    assert len(set(ids)) == len(ids)
