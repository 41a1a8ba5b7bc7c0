"Issue 10, kind 6: the CSV shapes people actually have (yfinance, pandas, other vendors' names), as a user runs `swb` on them"
import csv, datetime as dt
from pathlib import Path
import pandas as pd, pytest
from conftest import FIELD, sample, swb, tree_digest, write_yahoo_csv
from stock_workbench.config import Settings
from stock_workbench.store import OhlcvStore

EXPECTED = "expected Date, Open, High, Low, Close[, Adj Close], Volume"
FIELDS = ["open", "high", "low", "close", "volume"]


def stored(home) -> pd.DataFrame:
    return OhlcvStore.from_settings(Settings(home)).read().sort_values(["symbol", "date"]).reset_index(drop=True)


def ok(r):
    "A success: exit 0 and nothing on stderr (SWB_QUIET is set: no progress lines)"
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stderr == "", r.stderr
    return r


def refused(r, line: str):
    "The exact one-line refusal"
    assert r.returncode != 0, r.stdout
    assert r.stderr == f"swb: error: {line}\n", r.stderr
    assert "Traceback" not in r.stdout


def rows_of(path: Path, skip: int = 1) -> list[dict]:
    "A file's data rows by (lower-cased) header name, read by hand with the csv module"
    with open(path, newline="", encoding="utf-8-sig") as f: lines = list(csv.reader(f))
    return [dict(zip([h.strip().lower() for h in lines[skip - 1]], r)) for r in lines[skip:] if any(r)]


def assert_stored(got: pd.DataFrame, symbol: str, days: list[str], rows: list[dict], names: dict, adj: str | None):
    "`got`'s rows of `symbol` are exactly `rows` (file strings through float); adj_close is the close when `adj` is None"
    g = got[got.symbol == symbol].reset_index(drop=True)
    assert g.date.dt.strftime("%Y-%m-%d").tolist() == days
    for c in FIELDS: assert g[c].tolist() == [float(r[names.get(c, c)]) for r in rows], c
    assert g.adj_close.tolist() == (g.close.tolist() if adj is None else [float(r[adj]) for r in rows])


# --- the field files -------------------------------------------------------------------------------------

def test_yf_download_multiindex(home):
    "Price / Ticker / Date header rows, no Adj Close: symbol ACME from the Ticker row, adj_close = close"
    f = FIELD / "yf_multiindex.csv"
    ok(swb("validate", "--path", f))
    r = ok(swb("ingest", "--source", "csv", "--path", f))
    assert "84 rows, 1 symbol(s)" in r.stdout
    with open(f) as fh: lines = list(csv.reader(fh))
    fields = [h.lower() for h in lines[0]]
    rows = [dict(zip(fields, l)) for l in lines[3:]]
    got = stored(home)
    assert got.symbol.unique().tolist() == ["ACME"]
    assert_stored(got, "ACME", [r["price"] for r in rows], rows, {}, None)
    assert got.date.iloc[0] == pd.Timestamp("2022-09-01")


def test_no_adj_close(home):
    f = FIELD / "yf_no_adjclose.csv"
    ok(swb("validate", "--path", f, "--symbol", "ACME"))
    ok(swb("ingest", "--source", "csv", "--path", f, "--symbol", "ACME"))
    rows = rows_of(f)
    assert_stored(stored(home), "ACME", [r["date"] for r in rows], rows, {}, None)


def test_history_with_utc_offsets(home):
    "yfinance history(): `2022-09-01 00:00:00-04:00` is the New York session of 2022-09-01"
    f = FIELD / "yf_history_tz_single.csv"
    ok(swb("validate", "--path", f, "--symbol", "ACME"))
    ok(swb("ingest", "--source", "csv", "--path", f, "--symbol", "ACME"))
    rows = rows_of(f)
    assert_stored(stored(home), "ACME", [r["date"][:10] for r in rows], rows, {}, "adj close")


def test_integer_yyyymmdd_dates(home):
    f = FIELD / "int_dates_yyyymmdd.csv"
    ok(swb("validate", "--path", f, "--symbol", "ACME"))
    ok(swb("ingest", "--source", "csv", "--path", f, "--symbol", "ACME"))
    rows = rows_of(f)
    days = [f"{r['date'][:4]}-{r['date'][4:6]}-{r['date'][6:]}" for r in rows]
    assert_stored(stored(home), "ACME", days, rows, {}, "adj close")
    assert days[0] == "2022-09-01"


# --- variants: yfinance's download with several tickers ------------------------------------------------------

def _canonical(symbols=("AAA", "BBB"), days=30) -> dict[str, pd.DataFrame]:
    "Valid synthetic rows per symbol, prices rounded so a CSV round trip is exact"
    out = {}
    for i, s in enumerate(symbols):
        df = sample(s, days, seed=11 + i)
        df[["open", "high", "low", "close", "adj_close"]] = df[["open", "high", "low", "close", "adj_close"]].round(4)
        df["volume"] = df["volume"].round()
        out[s] = df.reset_index(drop=True)
    return out


def write_yf_download(frames: dict, path: Path, adj=True, index_name=True, group_by="column") -> Path:
    "What `yf.download([...]).to_csv()` writes: a (Price, Ticker) column MultiIndex over a Date index"
    cols = {"Adj Close": "adj_close", "Close": "close", "High": "high", "Low": "low", "Open": "open", "Volume": "volume"}
    if not adj: cols.pop("Adj Close")
    wide = pd.concat({s: df.set_index("date")[list(cols.values())].set_axis(list(cols), axis=1) for s, df in frames.items()},
                     axis=1, names=["Ticker", "Price"])
    wide = wide.swaplevel(axis=1) if group_by == "column" else wide
    if group_by == "column": wide = wide[[c for c in cols]]  # Price-major, as yfinance writes it
    wide.index.name = "Date" if index_name else None
    wide.to_csv(path)
    return path


@pytest.mark.parametrize("adj,index_name,group_by", [(True, True, "column"), (False, True, "column"),
                                                      (True, False, "column"), (True, True, "ticker")])
def test_yf_download_two_tickers(home, tmp_path, adj, index_name, group_by):
    "Each ticker of the Ticker row is one symbol, whatever the file is called"
    frames = _canonical(("AAA", "BF-B"))
    f = write_yf_download(frames, tmp_path / "download.csv", adj, index_name, group_by)
    header = f.read_text().splitlines()[:3]
    assert header[0].split(",")[0] == ("Price" if group_by == "column" else "Ticker")
    ok(swb("ingest", "--source", "csv", "--path", f))
    got = stored(home)
    assert sorted(got.symbol.unique()) == ["AAA", "BF-B"]
    for s, df in frames.items():
        g = got[got.symbol == s].reset_index(drop=True)
        assert g.date.tolist() == df.date.tolist()
        for c in FIELDS: assert g[c].tolist() == df[c].tolist(), (s, c)
        assert g.adj_close.tolist() == (df.adj_close if adj else df.close).tolist()


def test_yf_download_ticker_listed_later(home, tmp_path):
    "A ticker's blank cells before its first bar are no rows, not rows of nulls"
    frames = _canonical(("AAA", "BBB"))
    frames["BBB"] = frames["BBB"].iloc[10:]
    ok(swb("ingest", "--source", "csv", "--path", write_yf_download(frames, tmp_path / "d.csv")))
    got = stored(home)
    assert got.groupby("symbol").size().to_dict() == {"AAA": 30, "BBB": 20}
    assert got[got.symbol == "BBB"].date.min() == frames["BBB"].date.min()


def test_yf_download_refusals(home, tmp_path):
    frames = _canonical(("AAA", "BBB"))
    ok(swb("ingest", "--source", "csv", "--path", write_yf_download({"AAA": frames["AAA"]}, tmp_path / "a.csv")))
    before = tree_digest(home / "data")
    f = write_yf_download(frames, tmp_path / "d.csv")
    refused(swb("ingest", "--source", "csv", "--path", f, "--symbol", "ZZZ"),
            f"{f}: 2 tickers (AAA, BBB) cannot take one symbol (ZZZ); each is named by its ticker")
    bad = tmp_path / "bad.csv"
    lines = f.read_text().splitlines()
    cells = lines[3].split(",")
    assert lines[0].split(",")[1] == "Adj Close" and lines[1].split(",")[1] == "AAA"
    bad.write_text("\n".join(lines[:3] + [",".join(cells[:1] + ["n/a"] + cells[2:])] + lines[4:]) + "\n")
    refused(swb("ingest", "--source", "csv", "--path", bad), f"{bad} AAA row 1: adj_close='n/a' is not a number")
    empty = tmp_path / "empty.csv"
    bbb = [t == "BBB" for t in lines[1].split(",")]
    empty.write_text("\n".join(lines[:3] + [",".join("" if b else v for v, b in zip(l.split(","), bbb)) for l in lines[3:]]) + "\n")
    refused(swb("ingest", "--source", "csv", "--path", empty), f"{empty}: no rows for ticker BBB (every value of its columns is blank)")
    assert tree_digest(home / "data") == before


# --- variants: other names and layouts ------------------------------------------------------------------

def _one(days=30) -> pd.DataFrame:
    return _canonical(("ACME",), days)["ACME"]


def _write(df: pd.DataFrame, path: Path, names: dict, index=False, date_fmt="%Y-%m-%d") -> Path:
    "`df`'s columns under other `names` (canonical -> header; None drops the column)"
    out = df.drop(columns="symbol").assign(date=df.date.dt.strftime(date_fmt))
    out = out[[c for c in names if names[c] is not None]].rename(columns=names)
    if index: out = out.set_index(out.columns[0]).rename_axis(None)
    out.to_csv(path, index=index)
    return path


YAHOO = {"date": "Date", "open": "Open", "high": "High", "low": "Low", "close": "Close", "adj_close": "Adj Close", "volume": "Volume"}


@pytest.mark.parametrize("case", ["unnamed_index", "row_numbers", "unnamed_0", "lower", "adj_dot", "upper_vol", "yahoo_web", "order"])
def test_column_name_variants(home, tmp_path, case):
    df = _one()
    names, index, adj = dict(YAHOO), False, True
    if case in ("unnamed_index", "unnamed_0"): names["adj_close"], index, adj = None, True, False  # DataFrame.to_csv, a date index
    if case == "lower": names = {k: v.lower() for k, v in names.items()}
    if case == "adj_dot": names["adj_close"] = "Adj. Close"
    if case == "upper_vol": names = {**{k: v.upper() for k, v in names.items()}, "volume": "Vol", "adj_close": "ADJ_CLOSE"}
    if case == "yahoo_web": names.update(close="Close*", adj_close="Adj Close**")
    if case == "order": names = {k: names[k] for k in ["volume", "close", "date", "low", "adj_close", "high", "open"]}
    f = _write(df, tmp_path / "acme.csv", names, index)
    if case == "row_numbers": pd.read_csv(f).to_csv(f)                    # to_csv with its default index=True
    if case == "unnamed_0": pd.read_csv(f).to_csv(f, index=False)         # read back, written without the index
    first = {"unnamed_index": ",Open,", "row_numbers": ",Date,", "unnamed_0": "Unnamed: 0,Open,"}.get(case, "")
    assert f.read_text().startswith(first)
    ok(swb("ingest", "--source", "csv", "--path", f))
    g = stored(home)
    assert g.date.tolist() == df.date.tolist()
    for c in FIELDS: assert g[c].tolist() == df[c].tolist(), c
    assert g.adj_close.tolist() == (df.adj_close if adj else df.close).tolist()


def test_backtesting_goog(home):
    "Real prices that ship with the `backtesting` package: unnamed date column, no Adj Close"
    import backtesting as bt  # a dev dependency: never skipped
    f = Path(bt.__file__).parent / "test" / "GOOG.csv"
    r = swb("ingest", "--source", "csv", "--path", f, "--symbol", "GOOG")
    assert r.returncode == 0, r.stdout + r.stderr
    rows = rows_of(f)
    g = stored(home)
    assert len(g) == len(rows) == 2148
    assert g.date.dt.strftime("%Y-%m-%d").tolist() == [r[""] for r in rows]
    for c in FIELDS: assert g[c].tolist() == [float(r[c]) for r in rows], c
    assert g.adj_close.tolist() == g.close.tolist()


# --- variants: dates with UTC offsets, and dates out of range --------------------------------------------

def _stamps(days: pd.Series, case: str) -> list[str]:
    "Session dates written as sources with a time zone write them"
    ny = days.dt.tz_localize("America/New_York")
    if case == "ny_midnight_dst": return [d.isoformat(sep=" ") for d in ny]  # -05:00, then -04:00 after March 8
    if case == "utc_midnight_z": return [d.strftime("%Y-%m-%dT00:00:00Z") for d in days]
    if case == "utc_midnight_offset": return [d.strftime("%Y-%m-%d 00:00:00+00:00") for d in days]
    if case == "close_in_utc": return [(d + pd.Timedelta(hours=16)).tz_convert("UTC").isoformat() for d in ny]
    if case == "ny_midnight_in_berlin": return [d.tz_convert("Europe/Berlin").isoformat(sep=" ") for d in ny]
    raise ValueError(case)


@pytest.mark.parametrize("case", ["ny_midnight_dst", "utc_midnight_z", "utc_midnight_offset", "close_in_utc", "ny_midnight_in_berlin"])
def test_dates_with_other_offsets(home, tmp_path, case):
    "A midnight in its own zone is that date; any other time is the New York session it falls in"
    df = _one(60)
    stamps = _stamps(df.date, case)
    if case == "ny_midnight_dst": assert stamps[0].endswith("-05:00") and stamps[-1].endswith("-04:00")
    f = tmp_path / "acme.csv"
    df.drop(columns="symbol").rename(columns=YAHOO).assign(Date=stamps).to_csv(f, index=False)
    ok(swb("ingest", "--source", "csv", "--path", f))
    g = stored(home)
    assert g.date.tolist() == df.date.tolist()
    assert g.close.tolist() == df.close.tolist()


@pytest.mark.parametrize("bad,why", [("1899-12-29", "is before 1900"), ("18991229", "is before 1900"),
                                     ("next_year", "is more than a day in the future"), ("2015-13-01", "is not a date")])
def test_dates_out_of_range_refused(home, tmp_path, bad, why):
    df = _one()
    ok(swb("ingest", "--source", "csv", "--path", write_yahoo_csv(df, tmp_path / "acme.csv")))
    before = tree_digest(home / "data")
    if bad == "next_year": bad = f"{dt.date.today().year + 1}-01-04"
    f = write_yahoo_csv(df, tmp_path / "new" / "acme.csv")
    lines = f.read_text().splitlines()
    lines[3] = bad + lines[3][10:]
    f.write_text("\n".join(lines) + "\n")
    refused(swb("ingest", "--source", "csv", "--path", f), f"{f} row 3: date={bad!r} {why}")
    refused(swb("validate", "--path", f), f"{f} row 3: date={bad!r} {why}")
    assert tree_digest(home / "data") == before


def test_unreadable_names_what_was_expected(home, tmp_path):
    df = _one()
    ok(swb("ingest", "--source", "csv", "--path", write_yahoo_csv(df, tmp_path / "acme.csv")))
    before = tree_digest(home / "data")
    (tmp_path / "new").mkdir()
    f = _write(df, tmp_path / "new" / "acme.csv", {**YAHOO, "close": "Settle", "adj_close": None})
    refused(swb("ingest", "--source", "csv", "--path", f),
            f"{f}: no close column ({EXPECTED}; found: Date, Open, High, Low, Settle, Volume)")
    g = tmp_path / "new" / "headless.csv"
    g.write_text("\n".join(f.read_text().splitlines()[1:]) + "\n")
    refused(swb("ingest", "--source", "csv", "--path", g, "--symbol", "ACME"),
            f"{g} line 1: data, not a header ({EXPECTED}; found: {f.read_text().splitlines()[1].replace(',', ', ')})")
    assert tree_digest(home / "data") == before


# --- what the frame tells the store: unadjusted symbols, split days ------------------------------------------

def test_frames_name_their_unadjusted_symbols(tmp_path):
    from stock_workbench.sources import SPLIT_DAYS_ATTR, UNADJUSTED_ATTR, read_csv_folder, read_csv_ohlcv
    assert read_csv_ohlcv(FIELD / "yf_multiindex.csv").attrs[UNADJUSTED_ATTR] == ["ACME"]
    assert read_csv_ohlcv(FIELD / "yf_no_adjclose.csv", "acme").attrs[UNADJUSTED_ATTR] == ["ACME"]
    tz = read_csv_ohlcv(FIELD / "yf_history_tz_single.csv", "acme")
    assert tz.attrs == {UNADJUSTED_ATTR: [], SPLIT_DAYS_ATTR: []}   # its Stock Splits column is all 0
    text = (FIELD / "yf_history_tz_single.csv").read_text().splitlines()
    text[5] = text[5][:-len("0.0,0.0")] + "0.0,4.0"
    (tmp_path / "split.csv").write_text("\n".join(text) + "\n")
    assert read_csv_ohlcv(tmp_path / "split.csv", "acme").attrs[SPLIT_DAYS_ATTR] == [["ACME", text[5][:10]]]
    d = tmp_path / "folder"
    d.mkdir()
    frames = _canonical(("AAA", "BBB"))
    write_yf_download(frames, d / "download.csv", adj=False)
    write_yahoo_csv(_one(), d / "acme.csv")
    (d / "goog.csv").write_text((FIELD / "yf_no_adjclose.csv").read_text())
    f = read_csv_folder(d)
    assert sorted(f.symbol.unique()) == ["AAA", "ACME", "BBB", "GOOG"]
    assert f.attrs[UNADJUSTED_ATTR] == ["AAA", "BBB", "GOOG"]


def test_ingest_folder_of_shapes(home, tmp_path):
    "A folder mixing a yfinance download, a Yahoo file and a file without Adj Close: one symbol per ticker or file"
    d = tmp_path / "folder"
    d.mkdir()
    frames = _canonical(("AAA", "BBB"))
    write_yf_download(frames, d / "download.csv")
    write_yahoo_csv(_one(), d / "acme.csv")
    (d / "zzz.csv").write_text((FIELD / "yf_no_adjclose.csv").read_text())
    ok(swb("ingest", "--source", "csv", "--path", d))
    g = stored(home)
    assert g.groupby("symbol").size().to_dict() == {"AAA": 30, "ACME": 30, "BBB": 30, "ZZZ": 84}
    z = g[g.symbol == "ZZZ"]
    assert z.adj_close.tolist() == z.close.tolist()


# --- round 2: values no market quotes, newest-first exports, `$` prices, --symbol against the file's ticker ---

HEADER = "Date,Open,High,Low,Close,Adj Close,Volume\n"


@pytest.mark.parametrize("row,line", [
    ("2022-12-28,10,inf,9,10,10,inf", "row 1: high='inf' is not a finite number"),   # the tester's file
    ("2022-12-28,10,11,9,10,10,-inf", "row 1: volume='-inf' is not a finite number"),
    ("2022-12-28,10,Infinity,9,10,10,5", "row 1: high='inf' is not a finite number"),  # pandas reads Infinity as inf
    ("2022-12-28,10,1e308,9,10,10,5", "row 1: high='1e+308' is out of range (a price is at most 1e+09: a unit or parse error?)"),
    ("2022-12-28,10,11,9,10,2e9,5", "row 1: adj_close='2000000000.0' is out of range (a price is at most 1e+09: a unit or parse error?)"),
    ("2022-12-28,10,11,9,10,10,2e15", "row 1: volume='2000000000000000.0' is out of range (a volume is at most 1e+15: a unit or parse error?)"),
])
def test_non_finite_and_absurd_values_refused(home, tmp_path, row, line):
    ok(swb("ingest", "--source", "csv", "--path", write_yahoo_csv(_one(), tmp_path / "acme.csv")))
    before = tree_digest(home / "data")
    f = tmp_path / "x.csv"
    f.write_text(HEADER + "2022-12-27,10,11,9,10,10,5\n" + row + "\n")
    n = line.replace("row 1", "row 2")
    refused(swb("ingest", "--source", "csv", "--path", f, "--symbol", "X"), f"{f} {n}")
    refused(swb("validate", "--path", f, "--symbol", "X"), f"{f} {n}")
    y = tmp_path / "yf.csv"   # the same through a yfinance two-level header
    cells = row.split(",")
    y.write_text("Price,Close,High,Low,Open,Volume\nTicker,X,X,X,X,X\nDate,,,,,\n"
                 + ",".join([cells[0], cells[4], cells[2], cells[3], cells[1], cells[6]]) + "\n")
    if "adj_close" not in line: refused(swb("ingest", "--source", "csv", "--path", y), f"{y} {line}")
    assert tree_digest(home / "data") == before


def test_bounds_themselves_pass(home, tmp_path):
    f = tmp_path / "x.csv"
    f.write_text(HEADER + "2022-12-28,1e9,1e9,1e9,1e9,1e9,1e15\n")
    ok(swb("ingest", "--source", "csv", "--path", f))
    g = stored(home)
    assert g[FIELDS].values.tolist() == [[1e9, 1e9, 1e9, 1e9, 1e15]]


def _nasdaq(df: pd.DataFrame, path: Path, money=True) -> Path:
    "Nasdaq.com's export: newest first, MM/DD/YYYY, Close/Last, `$` prices"
    d = "${:.2f}" if money else "{:.2f}"
    lines = ["Date,Close/Last,Volume,Open,High,Low"] + [
        f"{r.date:%m/%d/%Y},{d.format(r.close)},{int(r.volume)},{d.format(r.open)},{d.format(r.high)},{d.format(r.low)}"
        for r in df.iloc[::-1].itertuples()]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("money", [True, False])
def test_newest_first_nasdaq_export(home, tmp_path, money):
    "Dates strictly decreasing: read oldest first; `$` stripped from prices; Close/Last is the close"
    df = _one()
    df[FIELDS] = df[FIELDS].round(2)
    f = _nasdaq(df, tmp_path / "acme.csv", money)
    ok(swb("validate", "--path", f))
    ok(swb("ingest", "--source", "csv", "--path", f))
    g = stored(home)
    assert g.symbol.unique().tolist() == ["ACME"]
    assert g.date.tolist() == df.date.tolist()
    for c in FIELDS: assert g[c].tolist() == [float(f"{v:.2f}") if c != "volume" else float(int(v)) for v in df[c]], c
    assert g.adj_close.tolist() == g.close.tolist()


def test_newest_first_yahoo_and_money_variants(home, tmp_path):
    "A Yahoo-shaped file written newest first, and `$` with thousands separators and blanks, read as written oldest first"
    f = tmp_path / "zzz.csv"
    f.write_text(HEADER + '2022-12-29," $1,001.50 ","$1,003",$999,1002,1002,"1,500"\n'
                 + '2022-12-28,"$1,000",1001,999,1000,1000,500\n')
    ok(swb("ingest", "--source", "csv", "--path", f))
    g = stored(home)
    assert g.date.dt.strftime("%Y-%m-%d").tolist() == ["2022-12-28", "2022-12-29"]
    assert g[FIELDS].values.tolist() == [[1000, 1001, 999, 1000, 500], [1001.5, 1003, 999, 1002, 1500]]


def test_unordered_dates_still_refused(home, tmp_path):
    ok(swb("ingest", "--source", "csv", "--path", write_yahoo_csv(_one(), tmp_path / "acme.csv")))
    before = tree_digest(home / "data")
    f = tmp_path / "x.csv"
    f.write_text(HEADER + "2022-12-28,10,11,9,10,10,5\n2022-12-30,10,11,9,10,10,5\n2022-12-29,10,11,9,10,10,5\n")
    refused(swb("ingest", "--source", "csv", "--path", f),
            f"validation failed: 1 of 40 checks (dates increase within each symbol); e.g. row 3 of {f.name}: X 2022-12-29  days_since_prev=-1; nothing was written")
    assert tree_digest(home / "data") == before


def test_symbol_must_match_the_files_ticker(home, tmp_path):
    "--symbol differing from the yfinance Ticker row (or a symbol column) is refused; the same ticker in any case is fine"
    f = FIELD / "yf_multiindex.csv"
    ok(swb("ingest", "--source", "csv", "--path", write_yahoo_csv(_one(), tmp_path / "other.csv")))
    before = tree_digest(home / "data")
    refused(swb("ingest", "--source", "csv", "--path", f, "--symbol", "FOO"), f"{f}: names its ticker ACME; --symbol FOO differs: drop --symbol")
    refused(swb("validate", "--path", f, "--symbol", "FOO"), f"{f}: names its ticker ACME; --symbol FOO differs: drop --symbol")
    s = tmp_path / "sym.csv"
    s.write_text("Symbol,Date,Open,High,Low,Close,Volume\nACME,2022-12-28,10,11,9,10,5\nacme,2022-12-29,10,11,9,10,5\n")
    refused(swb("ingest", "--source", "csv", "--path", s, "--symbol", "FOO"), f"{s}: names its ticker ACME; --symbol FOO differs: drop --symbol")
    s2 = tmp_path / "sym2.csv"
    s2.write_text("Symbol,Date,Open,High,Low,Close,Volume\nACME,2022-12-28,10,11,9,10,5\nBBB,2022-12-28,10,11,9,10,5\n")
    refused(swb("ingest", "--source", "csv", "--path", s2, "--symbol", "ACME"), f"{s2}: names its tickers ACME, BBB; --symbol ACME differs: drop --symbol")
    assert tree_digest(home / "data") == before
    ok(swb("ingest", "--source", "csv", "--path", f, "--symbol", "acme"))
    assert sorted(stored(home).symbol.unique()) == ["ACME", "OTHER"]
