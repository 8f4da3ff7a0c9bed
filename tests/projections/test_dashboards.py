"""The Grafana dashboards: provisioned by docker-compose, and every panel's SQL runs on chdb."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from infra.clickhouse import clickhouse_client
from projections.ddl import VIEWS, statements

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = sorted((ROOT / "infra" / "grafana" / "dashboards").glob("*.json"))
MACRO = re.compile(r"\$__timeFilter\((\w+)\)")


def _targets() -> list[tuple[str, str]]:
    out = []
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel["targets"]:
                if "rawSql" in target:  # ClickHouse panels (Prometheus panels carry an `expr`)
                    out.append((f"{path.name}: {panel['title']}", target["rawSql"]))
    return out


def test_dashboards_are_provisioned_by_compose():
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    mounts = compose["services"]["grafana"]["volumes"]
    assert "./infra/grafana/dashboards:/var/lib/grafana/dashboards:ro" in mounts
    provider = yaml.safe_load((ROOT / "infra/grafana/provisioning/dashboards/csp.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    datasources = yaml.safe_load((ROOT / "infra/grafana/provisioning/datasources/clickhouse.yml").read_text())
    uids = {d.get("uid") for d in datasources["datasources"]}
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            assert panel["datasource"]["uid"] in uids, panel["title"]
    assert DASHBOARDS


def test_every_view_has_a_panel():
    sql = "\n".join(q for _t, q in _targets())
    for view in VIEWS:
        assert view in sql, f"no panel shows {view}"


@pytest.mark.parametrize(("title", "sql"), _targets(), ids=[t for t, _q in _targets()])
def test_panel_sql_runs_on_embedded_clickhouse(chdb_url, title, sql):
    client = clickhouse_client(chdb_url)
    try:
        for stmt in statements():
            client.command(stmt)
        query = MACRO.sub(lambda m: f"{m.group(1)} >= now() - INTERVAL 1 DAY", sql)
        assert "$__" not in query, f"{title}: unsupported Grafana macro"
        client.query(query)  # raises on an unknown table, column or function
        described = client.query(f"DESCRIBE ({query})").result_rows
        assert len(described) >= 2, f"{title}: {described}"
    finally:
        client.close()
