import pytest

from infra.clickhouse import clickhouse_client, parse_clickhouse_url
from infra.settings import Settings
from infra.stack import clickhouse_url


def test_default_clickhouse_url_is_chdb_under_the_data_dir(tmp_path):
    settings = Settings(data_dir=tmp_path, clickhouse_url=None)
    url = clickhouse_url(settings)
    assert url == f"chdb://{tmp_path.resolve()}/clickhouse"
    assert parse_clickhouse_url(url).kind == "chdb"


@pytest.mark.parametrize("url", ["http://localhost:8123", "https://ch.example:8443/db"])
def test_http_urls_are_accepted(url):
    assert parse_clickhouse_url(url).kind == "http"


@pytest.mark.parametrize("url", ["chdb://relative/path", "chdb:///", "ftp://x", "localhost:8123", ""])
def test_bad_clickhouse_urls_are_clear_errors(url):
    with pytest.raises(ValueError, match="CSP_CLICKHOUSE_URL"):
        parse_clickhouse_url(url)


def test_chdb_client_through_clickhouse_connect(chdb_url):
    client = clickhouse_client(chdb_url)
    try:
        client.command("CREATE TABLE IF NOT EXISTS probe (x Int64) ENGINE = MergeTree ORDER BY x")
        client.insert("probe", [[1], [2], [3]], column_names=["x"])
        assert client.query("SELECT sum(x) FROM probe").result_rows == [(6,)]
    finally:
        client.close()
