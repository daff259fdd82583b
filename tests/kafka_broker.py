"""A real Apache Kafka broker for the tests: the one named by RCA_BUS__BOOTSTRAP_SERVERS
(e.g. exported by .ci/steps/10-stack.sh), else one started with stack/lib/kafka.sh
(idempotent: the jars are cached under .cache/kafka, the data under .cache/stack/kafka)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def kafka_bootstrap() -> str:
    given = os.environ.get("RCA_BUS__BOOTSTRAP_SERVERS")
    if given:
        return given
    script = ROOT / "stack" / "lib" / "kafka.sh"
    out = subprocess.run(["bash", "-c", f"source {script} && kafka_install && kafka_up && kafka_env"],
                         check=True, capture_output=True, text=True, timeout=900).stdout
    env = dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
    return env["RCA_BUS__BOOTSTRAP_SERVERS"]
