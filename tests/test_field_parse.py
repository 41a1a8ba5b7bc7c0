"Issue 10, kind 1 and the tick half of kind 7: daily dates through `swb ingest` / `swb validate`, tick event times through `swb replay` / `swb stream` (real Redis), in every encoding"
import os, shutil, subprocess
from pathlib import Path
import pandas as pd, pytest, redis
from conftest import BIN, FIELD, built_once, sample, swb, tree_digest, write_yahoo_csv
from stock_workbench.config import Settings
from stock_workbench.store import OhlcvStore
from stock_workbench.candles import read_candles
from stock_workbench.leases import StreamKeys
from stock_workbench.replay import publish_ticks
from stock_workbench.ticks import tick_frame

URL = "redis://127.0.0.1:6379/0"
HEADER = "symbol,event_time,price,size,tick_id\n"
T0 = pd.Timestamp("2022-12-30 14:30")        # the field file's first tick: 1672410600 s, 09:30 in New York
T0_MS = T0.value // 10**6




def published(r, keys) -> dict:
    "tick_id -> (symbol, event_ms) of every tick in this test's shard streams"
    out = {}
    for name in r.scan_iter(keys.ticks("*"), count=1000):
        for _, f in r.xrange(name):
            out[f[b"i"].decode()] = (f[b"s"].decode(), int(f[b"t"]))
    return out


def ok(r):
    "A success: exit 0 and nothing at all on stderr"
    assert r.returncode == 0 and r.stderr == "", (r.returncode, r.stderr)
    return r


def refused(r, rkeys, line):
    "A failure: exit 1, exactly `swb: error: <line>` on stderr, and nothing published"
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert r.stderr.splitlines() == [f"swb: error: {line}"], r.stderr
    red, keys = rkeys
    assert list(red.scan_iter(f"{keys.prefix}:*")) == []


def write_ticks(path: Path, times, sym="AAA") -> Path:
    "A tick CSV with one tick per event time, prices rising by a cent"
    path.write_text(HEADER + "".join(f"{sym},{t},{100 + k / 100:.2f},10,x{k}\n" for k, t in enumerate(times)))
    return path


# --- the field file: epoch seconds -------------------------------------------------------------------

@pytest.mark.parametrize("unit", [None, "s"])
def test_field_epoch_seconds_land_at_their_minute(rkeys, unit):
    "ticks_epoch_seconds.csv (auto and --time-unit s): candles start at 14:30 and 14:31 UTC on 2022-12-30, not in 1970"
    r, keys = rkeys
    ok(swb("replay", "--csv", FIELD / "ticks_epoch_seconds.csv", *(["--time-unit", unit] if unit else [])))
    got = published(r, keys)
    assert got == {f"a{k}": ("AAA", T0_MS + 20_000 * k) for k in range(6)}, got
    s = Settings()
    publish_ticks(r, tick_frame(["AAA"], [T0_MS + 3_600_000], [222.6], [1], ["end"]), keys, s.stream_shards)  # closes every candle
    p = subprocess.run([str(BIN / "swb"), "stream", "--idle-exit", "1"], capture_output=True, text=True, timeout=120)
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    c = read_candles(r, keys, ["AAA"])
    assert c["minute"].tolist()[:2] == [T0, T0 + pd.Timedelta(minutes=1)], c
    assert c["trades"].tolist()[:2] == [3, 3] and c["open"].tolist()[:2] == [222.5, 222.53], c
    lat = {k.decode(): v.decode() for k, v in r.hgetall(keys.latest("AAA")).items()}
    assert lat["event_time"] == "2022-12-30 15:30:00", lat          # the end tick, an hour later


# --- variants: every unit, fractions, ISO with offsets, naive ISO ------------------------------------

@pytest.mark.parametrize("times,unit", [
    ([1672410600000 + 20_000 * k for k in range(3)], None),                   # epoch ms (today's reading, unchanged)
    ([1672410600000 + 20_000 * k for k in range(3)], "ms"),
    ([(1672410600000 + 20_000 * k) * 1000 for k in range(3)], None),          # epoch us
    ([(1672410600000 + 20_000 * k) * 1000 for k in range(3)], "us"),
    ([(1672410600000 + 20_000 * k) * 10**6 for k in range(3)], None),         # epoch ns (landed in year 52 998 555)
    ([(1672410600000 + 20_000 * k) * 10**6 for k in range(3)], "ns"),
    (["1672410600", "1672410620.0", "1672410640"], None),                     # seconds, one written as a float
    (["2022-12-30T09:30:00-05:00", "2022-12-30T14:30:20Z", "2022-12-30 14:30:40+00:00"], None),  # offsets -> UTC
    (["2022-12-30T14:30:00", "2022-12-30 14:30:20", "1672410640000"], None),  # naive ISO is taken as written; mixed with epoch ms
])
def test_replay_units_and_iso(rkeys, tmp_path, times, unit):
    r, keys = rkeys
    ok(swb("replay", "--csv", write_ticks(tmp_path / "t.csv", times), *(["--time-unit", unit] if unit else [])))
    assert published(r, keys) == {f"x{k}": ("AAA", T0_MS + 20_000 * k) for k in range(3)}


def test_replay_keeps_milliseconds_of_fractional_seconds(rkeys, tmp_path):
    r, keys = rkeys
    ok(swb("replay", "--csv", write_ticks(tmp_path / "t.csv", ["1672410600.123", "1672410600.5", "1672410601.999"])))
    assert published(r, keys) == {"x0": ("AAA", T0_MS + 123), "x1": ("AAA", T0_MS + 500), "x2": ("AAA", T0_MS + 1999)}


def test_replay_iso_offsets_across_dst_quietly(rkeys, tmp_path):
    "-05:00 before the March 2022 change and -04:00 after it, in one column: UTC instants, and no pandas warning on stderr"
    r, keys = rkeys
    times = ["2022-03-11T09:30:00-05:00", "2022-03-11T15:59:00-05:00", "2022-03-14T09:30:00-04:00", "2022-03-14T09:30:00.250-04:00"]
    ok(swb("replay", "--csv", write_ticks(tmp_path / "t.csv", times)))
    want = ["2022-03-11 14:30", "2022-03-11 20:59", "2022-03-14 13:30", "2022-03-14 13:30:00.250"]
    assert published(r, keys) == {f"x{k}": ("AAA", pd.Timestamp(w).value // 10**6) for k, w in enumerate(want)}


def test_replay_caret_symbol_latest_key(rkeys, tmp_path):
    "Yahoo symbols in a tick file: upper-cased, sharded, keyed as written"
    r, keys = rkeys
    path = tmp_path / "t.csv"
    path.write_text(HEADER + "^gspc,1672410600,3800.5,1,g0\nBRK.B,1672410600,300.1,1,b0\nEURUSD=X,1672410600,1.07,1,e0\n")
    ok(swb("replay", "--csv", path))
    assert published(r, keys) == {"g0": ("^GSPC", T0_MS), "b0": ("BRK.B", T0_MS), "e0": ("EURUSD=X", T0_MS)}


# --- refusals: one line naming file, row and value; nothing published ---------------------------------

@pytest.mark.parametrize("times,unit,why", [
    ([1672410600, 1672410620000, 1672410640], None, "row 2: event_time='1672410620000' looks like epoch ms but most of the column is in s: one unit per column"),
    ([1672410600000, 1672410620000, 1672410640], None, "row 3: event_time='1672410640' looks like epoch s but most of the column is in ms: one unit per column"),
    ([1672410600, 0, 1672410640], None, "row 2: event_time='0' is too close to 1970 to tell its unit: give the unit (s, ms, us or ns)"),
    ([1672410600, 86400], None, "row 2: event_time='86400' is too close to 1970 to tell its unit: give the unit (s, ms, us or ns)"),
    ([1672410600, 4102444800], None, "row 2: event_time='4102444800' is more than a day in the future"),        # 2100, seconds
    ([1672410600000, 4102444800000], None, "row 2: event_time='4102444800000' is more than a day in the future"),
    ([1672410600000, 1672410620000], "s", "row 1: event_time='1672410600000' is more than a day in the future"),  # ms said to be s
    ([1672410600, -2208988801], "s", "row 2: event_time='-2208988801' is before 1900"),
    (["2022-12-30T14:30:00Z", "1899-12-31T23:59:59Z"], None, "row 2: event_time='1899-12-31T23:59:59Z' is before 1900"),
    (["2022-12-30T14:30:00Z", "2999-01-01T09:30:00-05:00"], None, "row 2: event_time='2999-01-01T09:30:00-05:00' is more than a day in the future"),
    (["2022-12-30T14:30:00Z", "2022-12-30 14:30:05", "x"], None, "row 3: event_time='x' is not an ISO time or epoch number"),
    (["2022-12-30T14:30:00Z", "30/12/2022 14:30"], None, "row 2: event_time='30/12/2022 14:30' is not an ISO time or epoch number"),
])
def test_replay_refuses_implausible_times(rkeys, tmp_path, times, unit, why):
    path = write_ticks(tmp_path / "t.csv", times)
    refused(swb("replay", "--csv", path, *(["--time-unit", unit] if unit else [])), rkeys, f"{path} {why}")


def test_replay_refuses_a_bad_symbol_naming_its_row(rkeys, tmp_path):
    path = tmp_path / "t.csv"
    path.write_text(HEADER + "AAA,1672410600,1,1,a\nA/B,1672410620,1,1,b\n")
    refused(swb("replay", "--csv", path), rkeys, f"{path} row 2: symbol='A/B' is not a valid symbol")


def test_replay_refuses_field_seconds_given_as_ms(rkeys, tmp_path):
    "The field file's seconds read as ms by an explicit wrong unit would be 1970-01-20: refused, naming the unit the values look like"
    path = FIELD / "ticks_epoch_seconds.csv"
    refused(swb("replay", "--csv", path, "--time-unit", "ms", "--speed", "0"), rkeys,
            f"{path} row 1: event_time='1672410600' as ms is 1970-01-20: the values look like epoch s (--time-unit s, or auto)")


@pytest.mark.parametrize("k,unit,told,day", [
    (1, "us", "s", "1970-01-01"), (1, "ns", "s", "1970-01-01"), (1000, "us", "ms", "1970-01-20"), (1000, "ns", "ms", "1970-01-01"),
    (10**6, "ns", "us", "1970-01-20"),
])
def test_replay_refuses_a_given_unit_the_magnitude_contradicts(rkeys, tmp_path, k, unit, told, day):
    path = write_ticks(tmp_path / "t.csv", [(1672410600 + 20 * j) * k for j in range(3)])
    refused(swb("replay", "--csv", path, "--time-unit", unit), rkeys,
            f"{path} row 1: event_time='{1672410600 * k}' as {unit} is {day}: the values look like epoch {told} (--time-unit {told}, or auto)")


def test_replay_given_unit_still_obeyed_when_magnitude_cannot_tell(rkeys, tmp_path):
    "Numbers too close to 1970 to tell a unit take the given one (and 1970 is then the user's call)"
    r, keys = rkeys
    ok(swb("replay", "--csv", write_ticks(tmp_path / "t.csv", [60, 120]), "--time-unit", "s"))
    assert published(r, keys) == {"x0": ("AAA", 60_000), "x1": ("AAA", 120_000)}


# --- prices and sizes: numbers, finite, positive; ragged rows -----------------------------------------

@pytest.mark.parametrize("price,size,why", [
    ("abc", "100", "price='abc' is not a number"),
    ("222.5", "abc", "size='abc' is not a number"),
    ("222.5", "100.5abc", "size='100.5abc' is not a number"),
    ('"12,5"', "100", "price='12,5' is not a number"),               # a decimal comma is not 125
    ("inf", "100", "price='inf' is not a finite number"),
    ("-inf", "100", "price='-inf' is not a finite number"),
    ("nan", "100", "price='nan' is not a finite number"),
    ("222.5", "inf", "size='inf' is not a finite number"),
    ("1e999", "100", "price='1e999' is not a finite number"),
    ("0", "100", "price='0' is not positive"),
    ("-222.5", "100", "price='-222.5' is not positive"),
    ("222.5", "-100", "size='-100' is not positive"),
    ("222.5", "", "size is empty"),
])
def test_replay_refuses_bad_prices_and_sizes(rkeys, tmp_path, price, size, why):
    path = tmp_path / "t.csv"
    path.write_text(HEADER + f"AAA,1672410600,222.5,100,a0\nAAA,1672410620,{price},{size},a1\n")
    refused(swb("replay", "--csv", path, "--speed", "0"), rkeys, f"{path} row 2: {why}")


def test_replay_accepts_thousands_separators(rkeys, tmp_path):
    "Quoted thousands separators, as the daily reader accepts them"
    r, keys = rkeys
    path = tmp_path / "t.csv"
    path.write_text(HEADER + 'AAA,1672410600,"1,222.5",100,a0\nAAA,1672410620,1222.75,"1,000",a1\n')
    ok(swb("replay", "--csv", path))
    got = {f[b"i"].decode(): (float(f[b"p"]), float(f[b"q"])) for n in r.scan_iter(keys.ticks("*")) for _, f in r.xrange(n)}
    assert got == {"a0": (1222.5, 100.0), "a1": (1222.75, 1000.0)}


@pytest.mark.parametrize("rows,line,n", [
    ("AAA,1672410600,222.5,100,a0,extra\n", 2, 6),
    ("AAA,1672410600,222.5,100,a0\nAAA,1672410620,222.5,100\n", 3, 4),
    ('AAA,1672410600,"1,222.5",100,a0\nAAA,1672410620,1,222.5,100,a1\n', 3, 6),   # an unquoted thousands separator
])
def test_replay_refuses_ragged_rows_by_line(rkeys, tmp_path, rows, line, n):
    path = tmp_path / "t.csv"
    path.write_text(HEADER + rows)
    refused(swb("replay", "--csv", path), rkeys, f"{path} line {line}: {n} fields, the header has 5")


# --- daily dates: the field files through ingest and validate -----------------------------------------

def stored_dates(home, sym) -> list:
    return [str(d.date()) for d in OhlcvStore.from_settings(Settings(home)).read([sym])["date"]]


@pytest.mark.parametrize("name,first,last,rows", [
    ("yf_history_tz_single.csv", "2022-09-01", "2022-10-27", 40),   # 2022-09-01 00:00:00-04:00, as yfinance's history() writes
    ("int_dates_yyyymmdd.csv", "2022-09-01", "2022-12-30", 84),     # 20220901
])
def test_field_dates_ingest_as_written(home, name, first, last, rows):
    raw = pd.read_csv(FIELD / name, dtype={"Date": str})["Date"]
    ok(swb("ingest", "--source", "csv", "--path", FIELD / name, "--symbol", "FLD"))
    got = stored_dates(home, "FLD")
    assert (len(got), got[0], got[-1]) == (rows, first, last)
    assert got == [d[:10] if "-" in d[:8] else f"{d[:4]}-{d[4:6]}-{d[6:8]}" for d in raw]   # every row on the date it was written with


# --- daily dates: variants written from a sample, every encoding lands on the same sessions ------------

NY = "America/New_York"

def encodings():
    "name -> function of the sample's dates (a DatetimeIndex of sessions) to the Date column as written"
    return {
        "offsets_across_dst": lambda d: d.tz_localize(NY).strftime("%Y-%m-%d %H:%M:%S%z").str.replace(r"(\d\d)(\d\d)$", r"\1:\2", regex=True),
        "utc_midnight_z": lambda d: d.strftime("%Y-%m-%dT00:00:00Z"),
        "utc_midnight_plus0": lambda d: d.strftime("%Y-%m-%d 00:00:00+00:00"),
        "ny_midnight_in_utc": lambda d: d.tz_localize(NY).tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%SZ"),
        "ny_close_in_utc": lambda d: (d + pd.Timedelta(hours=16)).tz_localize(NY).tz_convert("UTC").strftime("%Y-%m-%dT%H:%M:%S+00:00"),
        "tokyo_offset_midnight": lambda d: d.strftime("%Y-%m-%d 00:00:00+09:00"),
        "yyyymmdd_int": lambda d: d.strftime("%Y%m%d").astype(int),
        "epoch_s_utc_midnight": lambda d: d.astype("int64") // 10**9,
        "epoch_ms_ny_midnight": lambda d: d.tz_localize(NY).tz_convert("UTC").tz_localize(None).astype("int64") // 10**6,
        "day_first": lambda d: d.strftime("%d/%m/%Y").where(d.day > 12, d.strftime("%Y-%m-%d")),
    }


def write_dates(df, path, dates):
    "A Yahoo CSV of `df` whose Date column is `dates` as written"
    write_yahoo_csv(df, path)
    out = pd.read_csv(path)
    out["Date"] = list(dates)
    out.to_csv(path, index=False)
    return path


def test_date_encodings_land_on_their_sessions(home, tmp_path):
    "One folder, one file per encoding (symbols ENC0 ...), one ingest: every row on its session"
    df = sample("ENC", days=60)                     # 2015-01-02 .. 2015-03-30: across the start of daylight saving
    d = pd.DatetimeIndex(df["date"])
    for k, (name, enc) in enumerate(encodings().items()): write_dates(df, tmp_path / "enc" / f"ENC{k}.csv", enc(d))
    ok(swb("ingest", "--source", "csv", "--path", tmp_path / "enc"))
    want = [str(x.date()) for x in d]
    for k, name in enumerate(encodings()): assert stored_dates(home, f"ENC{k}") == want, name


def _one_symbol(h):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWB_")}
    r = subprocess.run([str(BIN / "swb"), "ingest", "--source", "csv", "--path", write_yahoo_csv(sample("OLD", days=30), h / "OLD.csv")],
                       capture_output=True, text=True, env={**env, "SWB_HOME": str(h), "SWB_QUIET": "1"})
    assert r.returncode == 0, r.stderr


@pytest.fixture(scope="module")
def baseline(tmp_path_factory):
    "A store holding one symbol, made once per test run: refusals must leave a copy of it byte for byte"
    return built_once(tmp_path_factory, "parse-baseline", _one_symbol)[0] / "data"


def bad_dates_file(tmp_path, value):
    "Ten sessions whose 7th date is `value`, in the encoding of the rest"
    df = sample("BAD", days=10)
    dates = df["date"].dt.strftime("%Y%m%d" if value.isdigit() else "%Y-%m-%d").tolist()
    dates[6] = value
    return write_dates(df, tmp_path / "BAD.csv", dates)


@pytest.mark.parametrize("value,why", [
    ("18991231", "date='18991231' is before 1900"),
    ("1899-12-31", "date='1899-12-31' is before 1900"),
    ("2099-01-02", "date='2099-01-02' is more than a day in the future"),
    ("20990102", "date='20990102' is more than a day in the future"),
    ("20150231", "date='20150231' is not a date (YYYYMMDD)"),
    ("next tuesday", "date='next tuesday' is not a date"),
    ("1899-12-31 00:00:00-05:00", "date='1899-12-31 00:00:00-05:00' is before 1900"),
    ("12", "date='12' is not a date: neither YYYYMMDD nor an epoch time"),
])
def test_implausible_dates_are_refused_and_nothing_is_written(home, tmp_path, baseline, value, why):
    shutil.copytree(baseline, home / "data")
    before = tree_digest(home / "data")
    path = bad_dates_file(tmp_path, value)
    r = swb("ingest", "--source", "csv", "--path", path)
    assert r.returncode == 1 and r.stderr.splitlines() == [f"swb: error: {path} row 7: {why}"], r.stderr
    assert tree_digest(home / "data") == before


def test_validate_refuses_an_implausible_date_the_same_way(home, tmp_path):
    path = bad_dates_file(tmp_path, "18991231")
    r = swb("validate", "--path", path)
    assert r.returncode == 1 and r.stderr.splitlines() == [f"swb: error: {path} row 7: date='18991231' is before 1900"], r.stderr
    assert not (home / "data").exists()


def test_epoch_dates_of_mixed_units_are_refused(home, tmp_path):
    df = sample("MIX", days=10)
    secs = (pd.DatetimeIndex(df["date"]).astype("int64") // 10**9).tolist()
    secs[3] *= 1000
    path = write_dates(df, tmp_path / "MIX.csv", secs)
    r = swb("ingest", "--source", "csv", "--path", path)
    assert r.returncode == 1 and r.stderr.splitlines() == [
        f"swb: error: {path} row 4: date='{secs[3]}' looks like epoch ms but most of the column is in s: one unit per column"], r.stderr
    assert tree_digest(home / "data") == {}


# --- daily dates: day and month in one order per column -----------------------------------------------

def field_dates_file(path, fmt):
    "int_dates_yyyymmdd.csv (2022-09-01 .. 2022-12-30) with its dates written in `fmt`"
    df = pd.read_csv(FIELD / "int_dates_yyyymmdd.csv", dtype={"Date": str})
    df["Date"] = pd.to_datetime(df["Date"], format="%Y%m%d").dt.strftime(fmt)
    path.parent.mkdir(parents=True, exist_ok=True)
    df.to_csv(path, index=False)
    return path


@pytest.mark.parametrize("fmt", ["%d/%m/%Y", "%d.%m.%Y", "%d-%m-%Y", "%d/%m/%y", "%m/%d/%Y", "%m-%d-%Y", "%d/%m/%Y %H:%M"])
def test_day_first_or_month_first_decided_once_per_column(home, tmp_path, fmt):
    "European and American numeric dates: every row on the date it was written with (12/09/2022 is Sep 12 when 13/09/2022 is in the column)"
    path = field_dates_file(tmp_path / "FLD.csv", fmt)
    ok(swb("ingest", "--source", "csv", "--path", path))
    want = pd.to_datetime(pd.read_csv(FIELD / "int_dates_yyyymmdd.csv", dtype={"Date": str})["Date"], format="%Y%m%d").dt.strftime("%Y-%m-%d").tolist()
    assert stored_dates(home, "FLD") == want


def test_every_value_ambiguous_stays_month_first(home, tmp_path):
    "No field above 12 anywhere: month-first, as pandas reads it (documented in parse_session_dates)"
    df = sample("AMB", days=10)
    df = df[df["date"].dt.day <= 12].reset_index(drop=True)
    path = write_dates(df, tmp_path / "AMB.csv", df["date"].dt.strftime("%m/%d/%Y"))
    ok(swb("ingest", "--source", "csv", "--path", path))
    assert stored_dates(home, "AMB") == [str(d.date()) for d in df["date"]]


@pytest.mark.parametrize("sep", ["/", "."])
def test_day_first_and_month_first_in_one_column_refused(home, tmp_path, baseline, sep):
    shutil.copytree(baseline, home / "data")
    before = tree_digest(home / "data")
    path = field_dates_file(tmp_path / "FLD.csv", f"%d{sep}%m{sep}%Y")
    df = pd.read_csv(path, dtype={"Date": str})
    df.loc[20, "Date"] = f"09{sep}30{sep}2022"             # row 21: month-first; row 8 (2022-09-13) is the first day-first
    df.to_csv(path, index=False)
    r = swb("ingest", "--source", "csv", "--path", path)
    assert r.returncode == 1 and r.stderr.splitlines() == [
        f"swb: error: {path} row 8: date='13{sep}09{sep}2022' is day-first but row 21: date='09{sep}30{sep}2022' is month-first: one date order per column"], r.stderr
    assert tree_digest(home / "data") == before
