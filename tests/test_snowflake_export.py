"""`swb export --to snowflake` and the EOD job's export, on Snowpark's offline local-testing session: each table round trips,
a re-export of the same dates replaces (same row count), bad names are one line, and the EOD job exports its forecasts
(or, when the warehouse fails, keeps its local results, says so and exits non-zero). A test against a real account is
marked `snowflake_live` and runs only when SNOWFLAKE_ACCOUNT, SNOWFLAKE_USER and SNOWFLAKE_PASSWORD are set."""
import json, os, uuid
import numpy as np, pandas as pd, pytest
from snowflake.snowpark import Session
from conftest import swb
from stock_workbench.cli import main
from stock_workbench.config import Settings, SwbError
from stock_workbench.ledger import PredictionLedger, forecasts_long
from stock_workbench.snowflake import export_snowflake, load_snowflake, snowflake_session
from stock_workbench.store import OhlcvStore
from stock_workbench.synthetic import synthetic_market

FAST = {"SWB_SYNTHETIC_SYMBOLS": "6", "SWB_SYNTHETIC_YEARS": "3", "SWB_TRAIN_DAYS": "252", "SWB_REFIT_DAYS": "126",
        "SWB_PROMOTE_EVAL_DAYS": "126", "SWB_BACKTEST_DAYS": "126"}


@pytest.fixture
def local(home, monkeypatch):
    "A home with two symbols stored and one forecast session in the ledger; an offline Snowpark session, closed afterwards"
    assert Session.get_active_session() is None, "an active Snowpark session leaked into this test"
    monkeypatch.setenv("SWB_SNOWFLAKE_LOCAL_TESTING", "true")
    bars = synthetic_market(2, 0.2, seed=5)
    OhlcvStore.from_settings(Settings()).write(bars, source="test")
    days = sorted(bars["date"].unique())[-3:]
    wide = bars[bars["date"].isin(days)][["symbol", "date"]].reset_index(drop=True)
    for h in (1, 5): wide[f"p10_{h}d"], wide[f"p50_{h}d"], wide[f"p90_{h}d"] = -0.02 * h, 0.001 * h, 0.02 * h
    rows = forecasts_long(wide, "3", "gbm", "eod", model_id="run-abc")
    PredictionLedger.from_settings(Settings()).record(rows)
    yield bars, rows
    while (s := Session.get_active_session()) is not None: s.close()


def export(capsys, *args):
    "`swb export --to snowflake ...` in this process (the local-testing session lives here); (exit code, stdout, stderr)"
    capsys.readouterr()
    code = main(["export", "--to", "snowflake", *map(str, args)])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_ohlcv_round_trips_through_ingest(local, capsys, tmp_path, monkeypatch):
    bars, _ = local
    code, out, err = export(capsys, "--what", "ohlcv", "--table", "BARS")
    assert code == 0, err
    assert out.startswith(f"exported {len(bars):,} ohlcv rows of 2 symbol(s)") and f"{len(bars):,} new, 0 replaced" in out
    pd.testing.assert_frame_equal(load_snowflake("BARS", Settings()), bars.sort_values(["symbol", "date"], ignore_index=True))
    # a second home ingests the table back through `swb ingest --source snowflake`: the same rows
    other = tmp_path / "other"; other.mkdir(); monkeypatch.setenv("SWB_HOME", str(other))
    capsys.readouterr()
    assert main(["ingest", "--source", "snowflake", "--table", "BARS"]) == 0, capsys.readouterr().err
    pd.testing.assert_frame_equal(OhlcvStore.from_settings(Settings()).read(), bars.sort_values(["symbol", "date"], ignore_index=True))


def test_reexport_replaces_never_duplicates(local, capsys):
    bars, _ = local
    days = sorted(bars["date"].unique())
    a, b = str(days[10].date()), str(days[19].date())
    code, out, _ = export(capsys, "--what", "ohlcv", "--table", "DB.SCH.BARS", "--start", a, "--end", b, "--json")
    first = json.loads(out)
    assert (first["rows"], first["inserted"], first["updated"], first["dates"], first["dates_replaced"]) == (20, 20, 0, 10, 0)
    code, out, _ = export(capsys, "--what", "ohlcv", "--table", "DB.SCH.BARS", "--json")   # overlaps the first 10 dates
    again = json.loads(out)
    assert (again["rows"], again["inserted"], again["updated"], again["dates_replaced"]) == (len(bars), len(bars) - 20, 20, 10)
    code, out, _ = export(capsys, "--what", "ohlcv", "--table", "DB.SCH.BARS", "--json")
    assert json.loads(out)["updated"] == len(bars)
    t = snowflake_session(Settings()).table("DB.SCH.BARS")
    assert t.count() == len(bars) and t.select("SYMBOL", "DATE").distinct().count() == len(bars)


def test_features_are_the_feature_table(local, capsys, tmp_path):
    bars, _ = local
    last = str(bars["date"].max().date())
    start = str(sorted(bars["date"].unique())[-5].date())
    code, out, err = export(capsys, "--what", "features", "--table", "FEATURES", "--symbols", "SYN001", "--start", start, "--end", last)
    assert code == 0, err
    csv = tmp_path / "f.csv"   # `swb features` over its default universe (every stored symbol), SYN001's rows
    assert main(["features", "--start", start, "--end", last, "--output", str(csv)]) == 0
    want = pd.read_csv(csv, parse_dates=["date"]).query("symbol == 'SYN001'").reset_index(drop=True)
    got = snowflake_session(Settings()).table("FEATURES").sort("DATE").to_pandas()
    assert list(got.columns) == [c.upper() for c in want.columns] and len(got) == len(want) == 5
    assert got["SYMBOL"].eq("SYN001").all() and pd.to_datetime(got["DATE"]).tolist() == want["date"].tolist()
    num = [c for c in want.columns if c not in ("symbol", "date")]
    np.testing.assert_allclose(got[[c.upper() for c in num]].to_numpy("float64"), want[num].to_numpy("float64"), rtol=1e-9, equal_nan=True)
    code, out, _ = export(capsys, "--what", "features", "--table", "FEATURES", "--symbols", "SYN001", "--start", start, "--end", last)
    assert "0 new, 5 replaced" in out and snowflake_session(Settings()).table("FEATURES").count() == 5


def test_market_features_do_not_depend_on_symbols(local, capsys, monkeypatch):
    "mkt_* are computed over the default universe whatever --symbols asks: one symbol, then two, give the same row values"
    bars, _ = local
    start = str(sorted(bars["date"].unique())[-3].date())
    assert export(capsys, "--what", "features", "--table", "FE", "--start", start, "--symbols", "SYN000")[0] == 0
    t = lambda: snowflake_session(Settings()).table("FE").to_pandas().sort_values(["SYMBOL", "DATE"], ignore_index=True)
    one = t()
    assert any(c.startswith("MKT_") for c in one.columns)
    code, out, err = export(capsys, "--what", "features", "--table", "FE", "--start", start, "--symbols", "SYN000,SYN001")
    assert code == 0 and "3 new, 3 replaced" in out, err
    both = t()
    pd.testing.assert_frame_equal(both[both["SYMBOL"] == "SYN000"].reset_index(drop=True), one)
    # a universe in the settings is the one used; a symbol outside it is refused in one line
    monkeypatch.setenv("SWB_SYMBOLS", "SYN001")
    code, _, err = export(capsys, "--what", "features", "--table", "FE", "--start", start, "--symbols", "SYN000")
    assert code == 1 and err.count("\n") == 1 and err.startswith("swb: error: snowflake: symbol(s) SYN000 are outside the universe"), err


def test_replaced_rows_keep_no_stale_column(local, capsys, tmp_path):
    "A market series dropped from the home: the re-export sets its columns empty on the replaced rows and says so"
    bars, _ = local
    days = sorted(bars["date"].unique())
    start = str(days[-3].date())
    v = pd.DataFrame({"DATE": [f"{d:%Y-%m-%d}" for d in days], "VIXCLS": np.round(np.linspace(14, 16, len(days)), 2)})
    v.to_csv(tmp_path / "VIXCLS.csv", index=False)
    capsys.readouterr()
    assert main(["ingest", "--source", "csv", "--path", str(tmp_path / "VIXCLS.csv"), "--symbol", "^VIX", "--series", "market"]) == 0
    assert export(capsys, "--what", "features", "--table", "FV", "--start", start)[0] == 0
    fv = lambda: snowflake_session(Settings()).table("FV").to_pandas()
    vix = [c for c in fv().columns if "VIX" in c]
    assert "VIX_LEVEL" in vix and fv()["VIX_LEVEL"].notna().all()
    assert main(["store", "drop", "--symbols", "^VIX", "--table", "market"]) == 0
    code, out, err = export(capsys, "--what", "features", "--table", "FV", "--start", start)
    assert code == 0, err
    assert "0 new, 6 replaced" in out and f"; column(s) {', '.join(vix)} not in this export: set empty on the replaced rows" in out, out
    assert fv()[vix].isna().all().all() and len(fv()) == 6


def test_non_finite_forecasts_go_as_null(local, capsys):
    _, rows = local
    bad = rows.iloc[:1].assign(model_version="9", model_id="run-bad", p10=np.nan, p50=np.inf, p90=-np.inf)
    PredictionLedger.from_settings(Settings()).record(bad)
    code, out, err = export(capsys, "--what", "predictions", "--table", "NF", "--json")
    r = json.loads(out)
    assert code == 0 and r["nulls"] == 3 + int(pd.concat([rows, bad])["close"].isna().sum()) and r["rows"] == len(rows) + 1, err   # CLOSE is empty in the fixture
    t = snowflake_session(Settings()).table("NF")
    row = t.filter(t["MODEL_VERSION"] == "9").collect()[0].as_dict()
    assert (row["P10"], row["P50"], row["P90"]) == (None, None, None)


def test_predictions_keyed_by_model(local, capsys):
    _, rows = local
    code, out, err = export(capsys, "--what", "predictions", "--table", "FORECASTS")
    assert code == 0, err
    got = snowflake_session(Settings()).table("FORECASTS").to_pandas().sort_values(["DATE", "SYMBOL", "HORIZON"], ignore_index=True)
    assert len(got) == len(rows) == 12 and set(got["MODEL_VERSION"]) == {"3"} and set(got["MODEL_ID"]) == {"run-abc"}
    assert set(got.columns) >= {"SYMBOL", "DATE", "HORIZON", "MODEL_VERSION", "MODEL_ID", "MODEL", "SOURCE", "P10", "P50", "P90", "CLOSE"}
    # another version's forecasts of the same sessions sit beside them; the same version's replace
    other = rows.assign(model_version="4", model_id="run-def", p50=0.003)
    PredictionLedger.from_settings(Settings()).record(other)
    r = export_snowflake("predictions", "FORECASTS", Settings())
    assert (r["rows"], r["inserted"], r["updated"]) == (24, 12, 12)
    assert snowflake_session(Settings()).table("FORECASTS").count() == 24


def test_bad_input_is_one_line(local, capsys):
    for args, msg in [(["--what", "ohlcv", "--table", "bad name"], "swb: error: snowflake: table name 'bad name' is not T, SCHEMA.T or DB.SCHEMA.T"),
                      (["--what", "ohlcv", "--table", "T;DROP"], "swb: error: snowflake: table name 'T;DROP' is not"),
                      (["--what", "ohlcv", "--table", "T", "--start", "2030-01-01"], "swb: error: snowflake: nothing to export: the store"),
                      (["--what", "ohlcv", "--table", "T", "--start", "nonsense"], "swb: error: snowflake: start='nonsense' is not a date"),
                      (["--what", "ohlcv", "--table", "T", "--symbols", "ZZZ"], "swb: error: unknown symbol(s) ZZZ"),
                      (["--what", "ohlcv", "--table", "T", "--symbols", "SYN000,NOPE", "--start", "2015-01-02"],
                       "swb: error: unknown symbol(s) NOPE (the store has 2")]:
        code, out, err = export(capsys, *args)
        assert code == 1 and err.count("\n") == 1 and err.startswith(msg), (args, err)
    snowflake_session(Settings()).create_dataframe([("A", 1.0)], schema=["SYMBOL", "X"]).write.save_as_table("ODD")
    code, _, err = export(capsys, "--what", "ohlcv", "--table", "ODD")
    assert code == 1 and err.startswith("swb: error: snowflake: table ODD has no column(s) DATE, OPEN"), err


def test_no_connection_names_what_to_set(home, capsys, monkeypatch):
    for k in ("ACCOUNT", "USER", "PASSWORD"): monkeypatch.delenv(f"SNOWFLAKE_{k}", raising=False)
    OhlcvStore.from_settings(Settings()).write(synthetic_market(1, 0.1, seed=2), source="test")
    code, _, err = export(capsys, "--what", "ohlcv", "--table", "T")
    assert code == 1 and err.startswith("swb: error: snowflake: no connection configured: set SNOWFLAKE_ACCOUNT"), err


def test_eod_exports_its_forecasts_and_a_failure_keeps_the_run(home, monkeypatch):
    for k, v in FAST.items(): monkeypatch.setenv(k, v)
    monkeypatch.setenv("SWB_STREAM_PREFIX", f"swbtest-sfx-{uuid.uuid4().hex[:8]}")
    for k in ("ACCOUNT", "USER", "PASSWORD"): monkeypatch.delenv(f"SNOWFLAKE_{k}", raising=False)
    from stock_workbench.synthetic import market_sessions
    ses = market_sessions("2015-01-02", 756)
    d1, d2 = str(ses[-2].date()), str(ses[-1].date())
    evil = '"<img src=x onerror=alert(1)>"'   # a quoted identifier may hold any character but `"`: shown as code, never as HTML
    r = swb("run", "eod", "--date", d1, env={"SWB_SNOWFLAKE_LOCAL_TESTING": "true", "SWB_EOD_SNOWFLAKE_TABLE": evil})
    assert r.returncode == 0, r.stderr
    n = len(PredictionLedger(home / "predictions").read(source="eod", start=d1, end=d1))
    html = (home / "reports" / "eod" / d1 / "eod.html").read_text()
    assert "Warehouse export" in html and f"Exported {n} predictions rows of 6 symbol(s), 1 date(s) {d1}, to snowflake table " in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html and "<img src=x" not in html and "onerror=\"" not in html
    # the warehouse is unreachable on the next session: the run's local results stay, the report says so, the exit is 1
    r = swb("run", "eod", "--date", d2, env={"SWB_EOD_SNOWFLAKE_TABLE": evil, "SNOWFLAKE_PASSWORD": "hunter2-secret"})
    assert r.returncode == 1
    line = r.stderr.strip().splitlines()[-1]
    assert line.startswith(f"swb: error: eod {d2} failed: SwbError: snowflake: no connection configured"), line
    assert f"--table '{evil}' --start {d2} --end {d2}" in line and "local results stand" in line   # shell-quoted: pastes as the same table
    html = (home / "reports" / "eod" / d2 / "eod.html").read_text()
    assert "The export to Snowflake failed" in html and "Forecasts from the champion" in html
    assert len(PredictionLedger(home / "predictions").read(source="eod", start=d2, end=d2)) == n
    assert "hunter2-secret" not in r.stdout + r.stderr + html


@pytest.mark.snowflake_live
def test_live_round_trip(home, capsys):
    "Against a real account: export, re-export, read back, then drop the table"
    OhlcvStore.from_settings(Settings()).write(synthetic_market(2, 0.1, seed=3), source="test")
    table = f"SWB_TEST_{uuid.uuid4().hex[:10].upper()}"
    session = snowflake_session(Settings())
    try:
        for _ in range(2): assert export(capsys, "--what", "ohlcv", "--table", table)[0] == 0
        bars = OhlcvStore.from_settings(Settings()).read()
        pd.testing.assert_frame_equal(load_snowflake(table, Settings()), bars, check_exact=False, rtol=1e-12)
    finally:
        session.table(table).drop_table()
        session.close()
