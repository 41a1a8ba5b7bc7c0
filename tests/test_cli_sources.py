"swb ingest from the network sources, offline: Yahoo against recorded responses on loopback, Snowflake in Snowpark local testing"
import contextlib, io, json
import pandas as pd, pytest
from conftest import swb, tree_digest
from test_cli import info, one_line_error
from yahoo_server import closed_url, serve_yahoo
from stock_workbench.cli import main
from stock_workbench.config import Settings
from stock_workbench.snowflake import snowflake_session
from stock_workbench.store import OhlcvStore


def test_ingest_yahoo_from_recorded_responses(home):
    with serve_yahoo() as url:
        r = swb("ingest", "--source", "yahoo", "--symbols", "AAPL,msft", "--start", "2024-01-02", env={"SWB_YAHOO_BASE_URL": url})
        assert r.returncode == 0, r.stderr
        assert "82 rows, 2 symbol(s)" in r.stdout and "all 40 checks passed" in r.stdout
        got = info()["symbols"]
        assert sorted(got) == ["AAPL", "MSFT"] and got["AAPL"]["rows"] == 41 and got["AAPL"]["first"] == "2024-01-02"
        before = tree_digest(home / "data")
        one_line_error(swb("ingest", "--source", "yahoo", "--symbols", "AAPL,ZZZZ", "--start", "2024-01-02",
                           env={"SWB_YAHOO_BASE_URL": url}), "unknown or delisted symbol ZZZZ")
        assert tree_digest(home / "data") == before


def test_ingest_yahoo_unreachable_is_one_line(home):
    one_line_error(swb("ingest", "--source", "yahoo", "--symbols", "AAPL", env={"SWB_YAHOO_BASE_URL": closed_url()}), "cannot reach")
    assert not (home / "data").exists()
    one_line_error(swb("ingest", "--source", "yahoo"), "needs --symbols")


def _main(*argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err): code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


def test_ingest_snowflake_local_testing(home, monkeypatch):
    "The CLI reuses the active Snowpark session, as in a notebook connected to Snowflake"
    monkeypatch.setenv("SWB_SNOWFLAKE_LOCAL_TESTING", "1")
    session = snowflake_session(Settings())
    try:
        rows = [("XYZ", d.date(), 10.0 + i, 11.0 + i, 9.0 + i, 10.5 + i, 10.5 + i, 1000.0 * (i + 1))
                for i, d in enumerate(pd.bdate_range("2024-02-05", periods=10))]
        session.create_dataframe(rows, schema=["SYMBOL", "DATE", "OPEN", "HIGH", "LOW", "CLOSE", "ADJ_CLOSE", "VOLUME"]) \
               .write.save_as_table("PRICES")
        code, out, err = _main("ingest", "--source", "snowflake", "--table", "PRICES", "--json")
        assert code == 0, err
        assert json.loads(out)["inserted"] == 10
        stored = OhlcvStore.from_settings(Settings()).read()
        assert stored.symbol.unique().tolist() == ["XYZ"] and stored.close.tolist() == [10.5 + i for i in range(10)]
        before = tree_digest(home / "data")
        code, out, err = _main("ingest", "--source", "snowflake", "--table", "NOPE")
        assert code == 1 and err == "swb: error: snowflake: table NOPE not found\n"
        assert tree_digest(home / "data") == before
    finally:
        session.close()


def test_ingest_snowflake_without_configuration(home, monkeypatch):
    for k in ["SNOWFLAKE_ACCOUNT", "SNOWFLAKE_USER", "SNOWFLAKE_PASSWORD"]: monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("SNOWFLAKE_PASSWORD", "hunter2-secret")
    line = one_line_error(swb("ingest", "--source", "snowflake", "--table", "OHLCV"), "no connection configured")
    assert "hunter2" not in line
