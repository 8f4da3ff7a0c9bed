"""`csp sql` output formats and the dashboard's sparklines (pure)."""

from __future__ import annotations

import json
from datetime import UTC, datetime

from gateway.commands.analytics import SqlFormat, frame, render, sparkline


def test_render_json_csv_table():
    cols = ["system", "n", "at", "tags"]
    rows = [("buffer", 3, datetime(2026, 1, 1, tzinfo=UTC), ["a", "b"]), ("dining", None, None, [])]
    assert json.loads(render(cols, rows, SqlFormat.json)) == [
        {"system": "buffer", "n": 3, "at": "2026-01-01T00:00:00+00:00", "tags": ["a", "b"]},
        {"system": "dining", "n": None, "at": None, "tags": []},
    ]
    assert render(cols, rows, SqlFormat.csv).splitlines() == [
        "system,n,at,tags", 'buffer,3,2026-01-01T00:00:00+00:00,"[""a"", ""b""]"', "dining,,,[]"]
    table = render(cols, rows, SqlFormat.table)
    assert "buffer" in table and "NULL" in table and table.endswith("2 rows")


def test_sparkline_scales_to_the_maximum():
    assert sparkline([0, 1, 2, 4]) == "▁▂▄█"
    assert sparkline([]) == "" and sparkline([0, 0]) == "▁▁"
    assert len(sparkline(list(range(100)), width=30)) == 30


def test_frame_renders_every_panel():
    from rich.console import Console

    now = datetime(2026, 1, 1, 12, 0, 5, tzinfo=UTC)
    data = {
        "throughput": [(datetime(2026, 1, 1, 11, 59, 50, tzinfo=UTC), 20), (datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC), 5)],
        "refusals": [], "totals": [(25, 2, 1, 7)],
        "reasons": [("buffer", "NOT_ACCEPTABLE", 2, 0.1)], "latency": [("buffer", 10, 1.5, 9.0)],
        "active": [("buffer", 5, 6)], "dead": [("csp.events", 1, "bad")],
    }
    console = Console(record=True, width=120)
    console.print(frame(data, now))
    text = console.export_text()
    for needle in ("events/s", "2.0", "total 25", "NOT_ACCEPTABLE", "offer → event latency", "csp.events"):
        assert needle in text, needle
