"""Every PromQL expression the stack's dashboards and rules query, and the metric names in
each (a small tokenizer: strings, label matchers, ranges, grouping clauses, numbers and
durations removed; an identifier followed by '(' is a function)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = sorted((ROOT / "stack" / "prometheus" / "rules").glob("*.yml"))
DASHBOARDS = sorted((ROOT / "stack" / "grafana" / "dashboards").glob("*.json"))

_KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left",
             "group_right", "inf", "nan", "Inf", "NaN"}


def metric_names(expr: str) -> set[str]:
    s = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)
    s = re.sub(r"\{[^}]*\}", " ", s)
    s = re.sub(r"\[[^\]]*\]", " ", s)
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", s)
    s = re.sub(r"(?<![\w:])\d+(\.\d+)?(ms|[smhdwy])?(?![\w:])", " ", s)
    names = set()
    for m in re.finditer(r"[a-zA-Z_:][a-zA-Z0-9_:]*", s):
        if m.group(0) in _KEYWORDS or s[m.end():].lstrip().startswith("("):
            continue
        names.add(m.group(0))
    return names


def rule_exprs() -> dict[str, str]:
    """rule name -> expression, over every rule file."""
    out = {}
    for path in RULES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                out[rule.get("record") or rule["alert"]] = rule["expr"]
    return out


def recorded() -> set[str]:
    return {name for name in rule_exprs() if ":" in name}


def dashboard_exprs() -> dict[str, str]:
    """"dashboard / panel / refId" -> expression, over every dashboard."""
    out = {}
    for path in DASHBOARDS:
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            for t in panel.get("targets") or []:
                out[f"{board['title']} / {panel['title']} / {t['refId']}"] = t["expr"]
    return out


def queried_names() -> dict[str, set[str]]:
    """metric name -> where it is queried (rule names and dashboard panels)."""
    out: dict[str, set[str]] = {}
    for where, expr in {**rule_exprs(), **dashboard_exprs()}.items():
        for name in metric_names(expr):
            out.setdefault(name, set()).add(where)
    return out
