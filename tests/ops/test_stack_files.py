"""The stack's files checked without a Docker engine: the compose file against the Compose
Specification schema (vendored in check-jsonschema) and the conventions it keeps, every
RCA_ setting of stack/.env against the server's settings, the Dockerfiles with hadolint,
the Prometheus rules and configs with promtool/amtool (Debian's prometheus packages) and
the rule unit tests, and the Grafana dashboards against the script that generates them."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import BaseModel

from server.settings import Settings
from tests.e2e import promstack
from tests.ops.queries import ROOT, dashboard_exprs, recorded, rule_exprs

STACK = ROOT / "stack"
COMPOSE = STACK / "compose.yaml"
BIN = Path(sys.executable).parent


def run(*args: str | Path, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], cwd=cwd, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return doc


def env_file() -> dict[str, str]:
    out = {}
    for line in (STACK / ".env").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


# ---- compose --------------------------------------------------------------------------------

def test_compose_file_validates_against_the_compose_specification() -> None:
    r = run(BIN / "check-jsonschema", "--builtin-schema", "vendor.compose-spec", COMPOSE)
    assert r.returncode == 0, r.stdout + r.stderr


def test_compose_schema_check_catches_a_mistake(tmp_path: Path) -> None:
    bad = tmp_path / "compose.yaml"
    bad.write_text(COMPOSE.read_text().replace("    restart: unless-stopped\n", "    restart: sometimes\n    retsart: x\n", 1))
    r = run(BIN / "check-jsonschema", "--builtin-schema", "vendor.compose-spec", bad)
    assert r.returncode != 0 and "retsart" in r.stdout


def test_compose_runs_every_part_of_the_stack(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) >= {"api", "detector", "grouping", "rca", "ui", "web", "sim", "kafka", "postgres",
                             "clickhouse", "redis", "prometheus", "alertmanager", "grafana"}
    commands = {name: s.get("command", [])[:2] for name, s in services.items()}
    assert commands["api"] == ["serve", "--role"] and commands["ui"][0] == "ui" and commands["sim"][0] == "sim"
    assert {tuple(commands[s]) for s in ("detector", "grouping", "rca")} == {
        ("worker", "detector"), ("worker", "grouping"), ("worker", "rca")}


def test_every_service_has_a_healthcheck_and_waits_for_healthy_dependencies(compose: dict[str, Any]) -> None:
    for name, svc in compose["services"].items():
        assert svc.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
        for dep, cond in (svc.get("depends_on") or {}).items():
            assert dep in compose["services"], f"{name} depends on unknown {dep}"
            assert cond == {"condition": "service_healthy"}, f"{name} -> {dep}: {cond}"


def test_workers_scale_and_state_lives_in_named_volumes(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for worker in ("detector", "grouping", "rca"):
        svc = services[worker]
        # `--scale` needs replicas that do not collide: no fixed name, no host port
        assert "container_name" not in svc and "ports" not in svc, worker
        assert "--metrics-port" in svc["command"], f"{worker} exposes no metrics for Prometheus"
    declared = set(compose["volumes"])
    for name, svc in services.items():
        for vol in svc.get("volumes", []):
            source = vol.split(":", 1)[0]
            if not source.startswith("."):
                assert source in declared, f"{name}: volume {source} is not a declared named volume"
            else:
                assert (STACK / source).exists(), f"{name}: {source} missing"
    for engine in ("kafka", "postgres", "clickhouse", "redis", "prometheus", "grafana"):
        assert any(not v.startswith(".") for v in services[engine]["volumes"]), f"{engine} keeps no data"


def test_published_ports_are_on_loopback_and_images_are_pinned(compose: dict[str, Any]) -> None:
    for name, svc in compose["services"].items():
        for port in svc.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"
        image = svc.get("image", "")
        if "build" not in svc:
            tag = image.rsplit(":", 1)[-1]
            assert ":" in image and tag != "latest" and re.search(r"\d+\.\d+", tag), f"{name}: unpinned {image}"
    for dockerfile in ("Dockerfile", "web.Dockerfile"):
        for base in re.findall(r"^FROM\s+(\S+)", (STACK / dockerfile).read_text(), re.M):
            if ":" in base:  # not a stage name
                assert re.search(r":\S*\d+\.\d+\.\d+", base), f"{dockerfile}: base {base} is not pinned to a release"


def _settings_path_exists(path: list[str]) -> bool:
    model: type[BaseModel] = Settings
    for i, part in enumerate(path):
        field = model.model_fields.get(part)
        if field is None:
            return False
        ann = field.annotation
        if i < len(path) - 1:
            if not (isinstance(ann, type) and issubclass(ann, BaseModel)):
                return False
            model = ann
    return True


def test_every_rca_setting_in_the_env_file_is_a_valid_server_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    env = env_file()
    rca = {k: v for k, v in env.items() if k.startswith("RCA_") and "__" in k or k in (
        "RCA_DATA_DIR", "RCA_LOG_LEVEL", "RCA_HOST", "RCA_PORT", "RCA_ROLE", "RCA_METRICS_PORT")}
    unknown = [k for k in rca if not _settings_path_exists(k[4:].lower().split("__"))]
    assert unknown == [], f"not server settings: {unknown}"
    for k, v in rca.items():
        monkeypatch.setenv(k, v)
    s = Settings()  # parses and validates every value (limits notation, backends, DSN ...)
    assert (s.bus.backend, s.store.backend, s.limits.backend, s.cache.backend) == ("kafka", "postgres", "redis", "redis")
    assert s.limits.ingest and s.limits.query
    # compose interpolation variables used by compose.yaml are set in .env
    used = set(re.findall(r"\$\{([A-Z_]+)[:?}-]", COMPOSE.read_text()))
    assert used <= set(env), f"not in stack/.env: {sorted(used - set(env))}"


def test_dockerfiles_lint_clean_with_hadolint() -> None:
    r = run(BIN / "hadolint", "--failure-threshold", "info", STACK / "Dockerfile", STACK / "web.Dockerfile")
    assert r.returncode == 0, r.stdout + r.stderr
    for dockerfile in ("Dockerfile", "web.Dockerfile"):
        text = (STACK / dockerfile).read_text()
        assert len(re.findall(r"^FROM ", text, re.M)) >= 2, f"{dockerfile} is not multi-stage"
        last_user = re.findall(r"^USER\s+(\S+)", text, re.M)[-1]
        assert not last_user.startswith(("0", "root")), f"{dockerfile} runs as root"


# ---- Prometheus -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def promtool() -> str:
    promstack.ensure_installed()
    path = shutil.which("promtool")
    assert path, "promtool (Debian package prometheus) is not installed"
    return path


def test_rule_files_pass_promtool_check(promtool: str) -> None:
    r = run(promtool, "check", "rules", *sorted((STACK / "prometheus" / "rules").glob("*.yml")))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout


def test_alert_rules_pass_their_unit_tests(promtool: str) -> None:
    tests = sorted((STACK / "prometheus" / "tests").glob("*.yml"))
    assert tests
    r = run(promtool, "test", "rules", *tests)
    assert r.returncode == 0, r.stdout + r.stderr
    tested = set(re.findall(r"alertname:\s*(\S+)", "".join(t.read_text() for t in tests)))
    alerts = {name for name in rule_exprs() if ":" not in name}
    assert alerts <= tested, f"alert rules without a unit test: {sorted(alerts - tested)}"


def test_prometheus_and_alertmanager_configs_are_valid(promtool: str, tmp_path: Path) -> None:
    cfg = (STACK / "prometheus" / "prometheus.yml").read_text().replace(
        "/etc/prometheus/rules/*.yml", str(STACK / "prometheus" / "rules" / "*.yml"))
    (tmp_path / "prometheus.yml").write_text(cfg)
    r = run(promtool, "check", "config", tmp_path / "prometheus.yml")
    assert r.returncode == 0, r.stdout + r.stderr
    amtool = shutil.which("amtool")
    assert amtool, "amtool (Debian package prometheus-alertmanager) is not installed"
    r = run(amtool, "check-config", STACK / "prometheus" / "alertmanager.yml")
    assert r.returncode == 0, r.stdout + r.stderr


# ---- Grafana --------------------------------------------------------------------------------

def test_committed_dashboards_equal_the_generated_ones() -> None:
    r = run(sys.executable, STACK / "grafana" / "generate.py", "--check")
    assert r.returncode == 0, r.stdout + r.stderr


def test_dashboards_read_the_provisioned_prometheus_and_the_recorded_series_exist() -> None:
    ds = yaml.safe_load((STACK / "grafana" / "provisioning" / "datasources" / "prometheus.yml").read_text())
    uid = ds["datasources"][0]["uid"]
    boards = [json.loads(p.read_text()) for p in sorted((STACK / "grafana" / "dashboards").glob("*.json"))]
    assert {b["uid"] for b in boards} == {"rca-system-health", "rca-pipeline", "rca-incidents-model"}
    for b in boards:
        ids = [p["id"] for p in b["panels"]]
        assert len(ids) == len(set(ids)), f"{b['title']}: duplicate panel ids"
        for p in b["panels"]:
            if p["type"] != "row":
                assert p["datasource"]["uid"] == uid, f"{b['title']} / {p['title']}"
                assert p["targets"], f"{b['title']} / {p['title']} has no query"
    used = " ".join(dashboard_exprs().values())
    missing = {name for name in re.findall(r"rca:[a-z0-9_:]+", used) if name not in recorded()}
    assert missing == set(), f"dashboards query recording rules that do not exist: {missing}"


# ---- stack/local.sh -------------------------------------------------------------------------

def test_local_sh_env_points_the_processes_at_its_redis(monkeypatch: pytest.MonkeyPatch) -> None:
    r = subprocess.run(["bash", str(STACK / "local.sh"), "env"], capture_output=True, text=True, timeout=60,
                       env={"PATH": "/usr/bin:/bin", "RCA_REDIS_PORT": "56999"})
    assert r.returncode == 0, r.stderr
    lines = dict(line.split("=", 1) for line in r.stdout.splitlines())
    assert lines["RCA_REDIS__URL"] == "redis://127.0.0.1:56999/0"
    assert lines["RCA_LIMITS__BACKEND"] == lines["RCA_CACHE__BACKEND"] == "redis"
    for k, v in lines.items():
        monkeypatch.setenv(k, v)
    assert Settings().redis.url == "redis://127.0.0.1:56999/0"
