"Service-level tests of `snowflake_session` and `load_snowflake` on Snowpark's offline local-testing session"
import datetime as dt, decimal
import numpy as np, pandas as pd, pytest
from snowflake.snowpark import Session
from snowflake.snowpark.types import (DateType, DecimalType, DoubleType, LongType, StringType, StructField, StructType,
                                      TimestampType)
from stock_workbench.config import Settings, SwbError
from stock_workbench.snowflake import load_snowflake, snowflake_session
from stock_workbench.sources import OHLCV_COLUMNS, to_canonical


def settings(tmp_path, **kv):
    return Settings(tmp_path, env={f"SWB_{k.upper()}": str(v) for k, v in kv.items()})


@pytest.fixture
def no_session():
    "Fails (never skips) if a session leaked from elsewhere; closes whatever the test opened"
    assert Session.get_active_session() is None, "an active Snowpark session leaked into this test"
    yield
    while (s := Session.get_active_session()) is not None: s.close()


@pytest.fixture
def session(tmp_path, no_session):
    return snowflake_session(settings(tmp_path, snowflake_local_testing=True))


SCHEMA = StructType([StructField("SYMBOL", StringType()), StructField("DATE", DateType())] +
                    [StructField(c.upper(), DoubleType()) for c in OHLCV_COLUMNS[2:]])

def panel()->pd.DataFrame:
    "Two symbols over the first sessions of 2024, with one missing volume (it must stay missing)"
    days = pd.to_datetime(["2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05", "2024-01-08"])
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"symbol": np.repeat(["AAPL", "MSFT"], len(days)), "date": np.tile(days, 2)})
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, len(df))))
    for c, f in dict(open=0.999, high=1.01, low=0.99, close=1.0, adj_close=0.998).items(): df[c] = close * f
    df["volume"] = rng.integers(1e6, 5e6, len(df)).astype(float)
    df.loc[3, "volume"] = np.nan
    return to_canonical(df)

def save(session, df:pd.DataFrame, table:str, schema=SCHEMA):
    "Write a canonical frame as a Snowflake table with upper-case columns"
    rows = [(r.symbol, r.date.date(), r.open, r.high, r.low, r.close, r.adj_close, None if np.isnan(r.volume) else r.volume)
            for r in df.itertuples()]
    session.create_dataframe(rows, schema=schema).write.save_as_table(table, mode="overwrite")


def test_round_trip_is_exact(session, tmp_path):
    p = panel()
    save(session, p, "OHLCV")
    got = load_snowflake("OHLCV", settings(tmp_path, snowflake_local_testing=True))
    pd.testing.assert_frame_equal(got, p, check_exact=True)
    assert got.volume.isna().sum() == 1


def test_default_table_comes_from_settings(session, tmp_path):
    save(session, panel(), "BARS")
    assert len(load_snowflake(settings=settings(tmp_path, snowflake_local_testing=True, snowflake_table="BARS"))) == 10


def test_filters(session, tmp_path):
    p = panel()
    save(session, p, "OHLCV")
    s = settings(tmp_path, snowflake_local_testing=True)
    got = load_snowflake("OHLCV", s, symbols=["msft"], start="2024-01-03", end="2024-01-05")
    want = p[(p.symbol == "MSFT") & p.date.between("2024-01-03", "2024-01-05")].reset_index(drop=True)
    pd.testing.assert_frame_equal(got, want, check_exact=True)
    assert load_snowflake("OHLCV", s, end="2024-01-02").date.unique().tolist() == [pd.Timestamp("2024-01-02")]
    assert load_snowflake("OHLCV", s, start="2024-01-08").date.unique().tolist() == [pd.Timestamp("2024-01-08")]


def test_other_column_types_and_cases(session, tmp_path):
    "A TIMESTAMP or ISO-string DATE, NUMBER prices, integer volumes, lower-case quoted names and extra columns all read the same"
    p = panel().dropna()
    as_ts = StructType([StructField('"symbol"', StringType()), StructField('"date"', TimestampType()),
                        *[StructField(f'"{c}"', DecimalType(38, 6)) for c in OHLCV_COLUMNS[2:7]],
                        StructField('"volume"', LongType()), StructField("NOTE", StringType())])
    rows = [(r.symbol, r.date.to_pydatetime(), *[decimal.Decimal(f"{getattr(r, c):.6f}") for c in OHLCV_COLUMNS[2:7]],
             int(r.volume), "x") for r in p.itertuples()]
    session.create_dataframe(rows, schema=as_ts).write.save_as_table("TS_BARS", mode="overwrite")
    s = settings(tmp_path, snowflake_local_testing=True)
    got = load_snowflake("TS_BARS", s, symbols=["AAPL"], start="2024-01-03", end="2024-01-05")
    assert got.date.dt.strftime("%Y-%m-%d").tolist() == ["2024-01-03", "2024-01-04"]  # Jan 5 had no volume: dropped above
    np.testing.assert_allclose(got.close, p.set_index(["symbol", "date"]).loc["AAPL"].loc[got.date, "close"], rtol=0, atol=5e-7)
    as_str = StructType([StructField("SYMBOL", StringType()), StructField("DATE", StringType())] + SCHEMA.fields[2:])
    session.create_dataframe([(r.symbol, f"{r.date:%Y-%m-%d}", r.open, r.high, r.low, r.close, r.adj_close, r.volume)
                              for r in p.itertuples()], schema=as_str).write.save_as_table("STR_BARS", mode="overwrite")
    got = load_snowflake("STR_BARS", s, symbols=["MSFT"], start="2024-01-04", end="2024-01-05")
    pd.testing.assert_frame_equal(got, p[(p.symbol == "MSFT") & p.date.between("2024-01-04", "2024-01-05")].reset_index(drop=True))


def test_missing_table_and_columns(session, tmp_path):
    s = settings(tmp_path, snowflake_local_testing=True)
    with pytest.raises(SwbError, match=r"^snowflake: table NOPE not found$"): load_snowflake("NOPE", s)
    with pytest.raises(SwbError, match=r"^snowflake: table DB.SCH.NOPE not found$"): load_snowflake("DB.SCH.NOPE", s)
    with pytest.raises(SwbError, match=r"^snowflake: cannot read table bad name \(.*invalid"): load_snowflake("bad name", s)
    session.create_dataframe([("AAPL", dt.date(2024, 1, 2), 1.0)], schema=["SYMBOL", "DATE", "CLOSE"]).write.save_as_table("THIN")
    with pytest.raises(SwbError, match=r"^snowflake: table THIN has no column\(s\) OPEN, HIGH, LOW, ADJ_CLOSE, VOLUME$"):
        load_snowflake("THIN", s)


def test_no_rows(session, tmp_path):
    save(session, panel(), "OHLCV")
    s = settings(tmp_path, snowflake_local_testing=True)
    with pytest.raises(SwbError, match=r"^snowflake: table OHLCV has no rows for ZZZZ$"):
        load_snowflake("OHLCV", s, symbols=["AAPL", "ZZZZ"])
    with pytest.raises(SwbError, match=r"^snowflake: table OHLCV has no rows from 2030-01-01$"):
        load_snowflake("OHLCV", s, start="2030-01-01")
    with pytest.raises(SwbError, match=r"^snowflake: start 2024-02-01 is after end 2024-01-01$"):
        load_snowflake("OHLCV", s, start="2024-02-01", end="2024-01-01")
    session.create_dataframe([], schema=SCHEMA).write.save_as_table("EMPTY")
    with pytest.raises(SwbError, match=r"^snowflake: table EMPTY has no rows$"): load_snowflake("EMPTY", s)


def test_active_session_is_reused(session, tmp_path):
    assert snowflake_session(settings(tmp_path), env={}) is session  # even with nothing configured
    save(session, panel(), "OHLCV")
    assert len(load_snowflake("OHLCV", settings(tmp_path))) == 10


def test_two_active_sessions_are_refused(session, tmp_path):
    other = Session.builder.config("local_testing", True).create()
    try:
        with pytest.raises(SwbError, match=r"^snowflake: more than one active Snowpark session"):
            snowflake_session(settings(tmp_path))
    finally: other.close()


@pytest.mark.parametrize("env, missing", [
    ({}, "SNOWFLAKE_ACCOUNT, SNOWFLAKE_USER and SNOWFLAKE_PASSWORD"),
    ({"SNOWFLAKE_ACCOUNT": "xy12345", "SNOWFLAKE_PASSWORD": "hunter2", "SNOWFLAKE_ROLE": "R"}, "SNOWFLAKE_USER"),
])
def test_missing_configuration(no_session, tmp_path, env, missing):
    with pytest.raises(SwbError, match=rf"^snowflake: no connection configured: set {missing} \(or snowflake_connection") as e:
        snowflake_session(settings(tmp_path), env=env)
    assert "hunter2" not in str(e.value) and "xy12345" not in str(e.value)
    with pytest.raises(SwbError, match="no connection configured"):  # load_snowflake reads os.environ: keep it clean
        with pytest.MonkeyPatch.context() as mp:
            for k in ["ACCOUNT", "USER", "PASSWORD"]: mp.delenv(f"SNOWFLAKE_{k}", raising=False)
            load_snowflake("OHLCV", settings(tmp_path))


def test_unknown_connection_name(no_session, tmp_path):
    with pytest.raises(SwbError, match=r"^snowflake: cannot connect \(Invalid connection_name 'swb-no-such-connection'"):
        snowflake_session(settings(tmp_path, snowflake_connection="swb-no-such-connection"), env={})
