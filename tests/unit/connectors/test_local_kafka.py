"""The JVM command line of the local broker (no JVM is started)."""

from __future__ import annotations

from pathlib import Path

from kronicle.connectors.local_kafka import KafkaRuntime


def _runtime() -> KafkaRuntime:
    return KafkaRuntime(libs=Path("/libs"), java="/bin/java", log4j_config=Path("/log4j2.properties"))


def test_the_default_broker_uses_the_serial_collector_c1_and_a_512_mb_heap() -> None:
    cmd = _runtime().command("kafka.Kafka", "server.properties", logs_dir=Path("/logs"))
    assert cmd[0] == "/bin/java"
    assert "-XX:+UseSerialGC" in cmd
    assert "-XX:TieredStopAtLevel=1" in cmd
    assert "-Xmx512m" in cmd
    assert not any("G1" in arg for arg in cmd)
    assert cmd[-2:] == ["kafka.Kafka", "server.properties"]


def test_jvm_options_replace_the_default_flags() -> None:
    cmd = _runtime().command(
        "kafka.Kafka", "server.properties", jvm_options=("-XX:+UseParallelGC",), heap="-Xmx1g", logs_dir=Path("/l")
    )
    assert "-XX:+UseParallelGC" in cmd
    assert "-XX:+UseSerialGC" not in cmd
    assert "-XX:TieredStopAtLevel=1" not in cmd
    assert "-Xmx1g" in cmd and "-Xmx512m" not in cmd
