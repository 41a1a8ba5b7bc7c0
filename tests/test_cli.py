"The swb CLI end to end, as a user runs it: ingest (csv, synthetic), validate, info, upsert, fail closed, SIGTERM/SIGINT"
import json, os, re, signal, subprocess, time
import numpy as np, pandas as pd, pytest
from conftest import BIN, sample, swb, tree_digest, write_yahoo_csv
from stock_workbench.config import Settings
from stock_workbench.store import OhlcvStore


def info(**kw):
    "`swb info --json` without its time-travel line (see test_info_states_time_travel)"
    r = swb("info", "--json", **kw)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    out.pop("time_travel", None)
    return out


def one_line_error(r, *needles):
    "A failure: non-zero exit, exactly one line on stderr, no traceback, naming what went wrong"
    assert r.returncode != 0, r.stdout
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("swb: "), r.stderr
    assert "Traceback" not in r.stdout + r.stderr
    for n in needles: assert n in lines[0], (n, lines[0])
    return lines[0]


# --- ingest csv, info -------------------------------------------------------------------------------

def test_ingest_csv_file_then_info(home, tmp_path):
    df = sample("ABC", 60)
    f = write_yahoo_csv(df, tmp_path / "abc.csv")
    r = swb("ingest", "--source", "csv", "--path", f)
    assert r.returncode == 0, r.stderr
    assert "all 40 checks passed" in r.stdout and "stored version 0: 60 inserted" in r.stdout
    got = info()
    assert got == {"version": 0, "symbols": {"ABC": {"rows": 60, "first": df.date.min().strftime("%Y-%m-%d"),
                                                     "last": df.date.max().strftime("%Y-%m-%d")}}}
    stored = OhlcvStore.from_settings(Settings(home)).read()
    pd.testing.assert_frame_equal(stored[["open", "close", "adj_close"]], df[["open", "close", "adj_close"]].round(10), rtol=1e-12)


def test_symbol_flag_overrides_file_name(home, tmp_path):
    f = write_yahoo_csv(sample(), tmp_path / "download (1).csv")
    one_line_error(swb("ingest", "--source", "csv", "--path", f), "not a valid symbol")
    assert swb("ingest", "--source", "csv", "--path", f, "--symbol", "brk.b").returncode == 0
    assert list(info()["symbols"]) == ["BRK.B"]


def test_ingest_folder_takes_symbols_from_file_names(home, tmp_path):
    for s in ["aaa", "bbb", "ccc"]: write_yahoo_csv(sample(s.upper(), 40), tmp_path / "csvs" / f"{s}.csv")
    r = swb("ingest", "--source", "csv", "--path", tmp_path / "csvs")
    assert r.returncode == 0, r.stderr
    got = info()
    assert sorted(got["symbols"]) == ["AAA", "BBB", "CCC"] and all(v["rows"] == 40 for v in got["symbols"].values())


def test_info_human_and_empty(home):
    r = swb("info")
    assert r.returncode == 0 and "is empty" in r.stdout
    assert info() == {"version": None, "symbols": {}}
    assert swb("ingest", "--source", "synthetic", "--symbols", 2, "--years", 0.5).returncode == 0
    r = swb("info")
    assert "version 0" in r.stdout and "SYN001" in r.stdout and "126" in r.stdout


def test_long_name_console_script(home):
    r = swb("info", "--json", exe="stock-workbench")
    assert r.returncode == 0 and json.loads(r.stdout)["version"] is None


# --- upsert -----------------------------------------------------------------------------------------

def test_reingest_overlap_upserts_without_duplicates(home, tmp_path):
    full = sample("ABC", 80)
    first, second = full.iloc[:50], full.iloc[30:].copy()
    second.loc[second.index[:5], ["close", "adj_close"]] *= 1.01   # revised closes on 5 overlapping days
    second.loc[second.index[:5], "high"] = second.loc[second.index[:5], ["high", "close"]].max(axis=1)
    assert swb("ingest", "--source", "csv", "--path", write_yahoo_csv(first, tmp_path / "a" / "abc.csv")).returncode == 0
    before = tree_digest(home / "data")
    # revised stored rows are a restatement: refused, with old and new values, and nothing written
    r = swb("ingest", "--source", "csv", "--path", write_yahoo_csv(second, tmp_path / "b" / "abc.csv"))
    one_line_error(r, "validation failed", "stored rows unchanged (no restatement)", "row 1 of abc.csv: ABC", "--replace-history",
                   "nothing was written")
    assert "ABC: 5 of 20 overlapping row(s) restated (high, close, adj_close), by no constant ratio" in r.stdout, r.stdout
    assert f"close={second.close.iloc[0]:.6g} (stored {first.close.iloc[30]:.6g})" in r.stdout
    assert tree_digest(home / "data") == before and info()["version"] == 0
    # asked to replace the history whole, the revised history lands in one new version
    revised = pd.concat([full.iloc[:30], second])
    r = swb("ingest", "--source", "csv", "--path", write_yahoo_csv(revised, tmp_path / "c" / "abc.csv"), "--replace-history", "--json")
    assert r.returncode == 0, r.stderr
    w = json.loads(r.stdout)
    assert (w["version"], w["inserted"], w["updated"], w["unchanged"], w["deleted"]) == (1, 30, 5, 45, 0)
    stored = OhlcvStore.from_settings(Settings(home)).read()
    assert len(stored) == 80 and not stored.duplicated(["symbol", "date"]).any()
    np.testing.assert_allclose(stored.close.to_numpy()[30:35], second.close.to_numpy()[:5])
    # the same file again changes nothing: no new version
    r = swb("ingest", "--source", "csv", "--path", tmp_path / "b" / "abc.csv", "--json")
    assert json.loads(r.stdout)["unchanged"] == 50 and info()["version"] == 1


# --- synthetic ----------------------------------------------------------------------------------------

def test_synthetic_is_deterministic_by_seed(home, tmp_path, monkeypatch):
    r = swb("ingest", "--source", "synthetic", "--symbols", 4, "--years", 1, "--seed", 7)
    assert r.returncode == 0, r.stderr
    a = OhlcvStore.from_settings(Settings(home)).read()
    other = tmp_path / "other"; other.mkdir()
    assert swb("ingest", "--source", "synthetic", "--symbols", 4, "--years", 1, "--seed", 7, env={"SWB_HOME": str(other)}).returncode == 0
    pd.testing.assert_frame_equal(a, OhlcvStore(other / "data").read())
    third = tmp_path / "third"; third.mkdir()
    assert swb("ingest", "--source", "synthetic", "--symbols", 4, "--years", 1, "--seed", 8, env={"SWB_HOME": str(third)}).returncode == 0
    assert not np.allclose(a.close, OhlcvStore(third / "data").read().close)
    assert len(a) == 4 * 252 and a.symbol.nunique() == 4


def test_synthetic_defaults_come_from_settings(home):
    (home / "settings.ini").write_text("[universe]\nsynthetic_symbols = 3\nsynthetic_years = 0.5\n")
    assert swb("ingest", "--source", "synthetic").returncode == 0
    assert len(info()["symbols"]) == 3
    one_line_error(swb("ingest", "--source", "synthetic", "--symbols", "A,B"), "is a count")


# --- fail closed: malformed files ---------------------------------------------------------------------

GOOD = "Date,Open,High,Low,Close,Adj Close,Volume\n2024-01-02,10,11,9,10.5,10.4,1000\n2024-01-03,10.5,12,10,11.5,11.4,1200\n"
MALFORMED = {
    "missing_column": (GOOD.replace(",Volume", "").replace(",1000", "").replace(",1200", ""), "no volume column"),
    "text_in_numeric": (GOOD.replace("11.5,11.4", "eleven,11.4"), "close='eleven' is not a number"),
    "bad_date": (GOOD.replace("2024-01-03", "2024-13-45"), "is not a date"),
    "empty_file": ("", "empty file"),
    "header_only": ("Date,Open,High,Low,Close,Adj Close,Volume\n", "no rows"),
    "ragged_long": (GOOD + "2024-01-04,1,2,3,4,5,6,7\n", "line 4: 8 fields, the header has 7"),
    "ragged_short": (GOOD + "2024-01-04,1,2\n", "line 4: 3 fields, the header has 7"),
    "binary": (None, "not a text file"),
}


@pytest.fixture
def stored_home(home, tmp_path):
    "A home whose store already holds one symbol (two versions), and the digest of every byte of it"
    store = OhlcvStore.from_settings(Settings(home))
    old = sample("OLD", 30)
    store.write(old.iloc[:20]); store.write(old)
    assert store.version == 1
    return home, tree_digest(home / "data")


@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_malformed_file_is_refused_and_store_unchanged(stored_home, tmp_path, case):
    home, before = stored_home
    text, needle = MALFORMED[case]
    f = tmp_path / "abc.csv"
    f.write_bytes(b"\x89PNG\r\n\x1a\n\x00\xff\xfe" * 10) if text is None else f.write_text(text)
    one_line_error(swb("ingest", "--source", "csv", "--path", f), str(f), needle)
    one_line_error(swb("validate", "--path", f), needle)
    assert tree_digest(home / "data") == before


def test_missing_file_and_missing_source(stored_home):
    home, before = stored_home
    one_line_error(swb("ingest", "--source", "csv", "--path", "/nonexistent/abc.csv"), "no such file")
    one_line_error(swb("ingest", "--source", "csv"), "needs --path")
    one_line_error(swb("ingest"), "ingest needs --source")
    assert tree_digest(home / "data") == before


# --- fail closed: invalid data --------------------------------------------------------------------------

def _break(df, kind):
    df = df.copy()
    i = 10
    if kind == "high_below_close": df.loc[i, "high"] = df.loc[i, "close"] * 0.9; return df, ("high >= close", "high")
    if kind == "low_above_open": df.loc[i, "low"] = df.loc[i, "open"] * 1.1; return df, ("low <= open", "low")
    if kind == "negative_price": df.loc[i, ["low", "close"]] = -1.0; return df, ("close > 0", "close=-1")
    if kind == "zero_open": df.loc[i, "open"] = 0.0; return df, ("open > 0", "open=0")
    if kind == "negative_volume": df.loc[i, "volume"] = -5; return df, ("volume >= 0", "volume=-5")
    if kind == "null_close": df.loc[i, "close"] = np.nan; return df, ("close present", "close=null")
    if kind == "duplicate_date": return pd.concat([df.iloc[:i + 1], df.iloc[i:]], ignore_index=True), ("one row per symbol and date", "")
    # two rows out of order (a wholly newest-first file is read oldest first: see test_field_formats)
    if kind == "decreasing_dates": return df.iloc[np.r_[0:i, i + 1, i, i + 2:len(df)]].reset_index(drop=True), ("dates increase within each symbol", "")
    if kind == "holiday": df.loc[i, "date"] = pd.Timestamp("2015-01-19"); return df, ("date is an exchange session", "2015-01-19")
    if kind == "weekend": df.loc[i, "date"] = pd.Timestamp("2015-01-17"); return df, ("date is an exchange session", "2015-01-17")
    if kind == "jump": df.loc[i:, ["open", "high", "low", "close", "adj_close"]] *= 1.8; return df, ("|daily return of adj_close| <= max_abs_return=0.5", "adj_return_1d=0.8")
    if kind == "gap": return df.drop(index=range(10, 20)).reset_index(drop=True), ("at most max_missing_sessions=5 sessions skipped", "sessions_skipped=10")
    raise ValueError(kind)


INVALID = ["high_below_close", "low_above_open", "negative_price", "zero_open", "negative_volume", "null_close",
           "duplicate_date", "decreasing_dates", "holiday", "weekend", "jump", "gap"]


@pytest.mark.parametrize("kind", INVALID)
def test_invalid_data_fails_closed_with_report(stored_home, tmp_path, kind):
    home, before = stored_home
    df, (check, detail) = _break(sample("ABC", 40), kind)
    f = write_yahoo_csv(df, tmp_path / "abc.csv")
    r = swb("ingest", "--source", "csv", "--path", f)
    line = one_line_error(r, "validation failed", "nothing was written")
    assert f"FAIL {check}" in r.stdout, r.stdout          # the report names the failed expectation ...
    assert "row " in r.stdout and "ABC" in r.stdout and detail in r.stdout   # ... with offending rows: date, column, value
    assert tree_digest(home / "data") == before
    r = swb("validate", "--path", f, "--json")
    rep = json.loads(r.stdout)
    assert r.returncode == 1 and rep["success"] is False and check in [x["check"] for x in rep["failures"]]


def test_failed_ingest_json_report_is_json(stored_home, tmp_path):
    home, before = stored_home
    f = write_yahoo_csv(_break(sample("ABC", 40), "negative_price")[0], tmp_path / "abc.csv")
    r = swb("ingest", "--source", "csv", "--path", f, "--json")
    one_line_error(r, "validation failed")
    rep = json.loads(r.stdout)
    assert rep["success"] is False and "close > 0" in [x["check"] for x in rep["failures"]]
    assert tree_digest(home / "data") == before


def test_one_bad_file_in_a_folder_writes_nothing(stored_home, tmp_path):
    home, before = stored_home
    write_yahoo_csv(sample("GOOD", 30), tmp_path / "csvs" / "good.csv")
    write_yahoo_csv(_break(sample("BAD", 30), "negative_price")[0], tmp_path / "csvs" / "bad.csv")
    one_line_error(swb("ingest", "--source", "csv", "--path", tmp_path / "csvs"), "validation failed")
    assert tree_digest(home / "data") == before and "GOOD" not in info()["symbols"]


def test_allowed_jump_by_flag_and_by_setting(home, tmp_path):
    df, _ = _break(sample("ABC", 40), "jump")
    day = df.date[10].strftime("%Y-%m-%d")
    f = write_yahoo_csv(df, tmp_path / "abc.csv")
    assert swb("ingest", "--source", "csv", "--path", f).returncode == 1
    r = swb("ingest", "--source", "csv", "--path", f, "--allow-jump", f"ABC:{day}")
    assert r.returncode == 0, r.stdout + r.stderr
    assert swb("validate", "--path", f, env={"SWB_ALLOWED_JUMPS": f"ABC:{day}"}).returncode == 0
    assert swb("validate", "--path", f, env={"SWB_MAX_ABS_RETURN": "0.9"}).returncode == 0
    one_line_error(swb("validate", "--path", f, "--allow-jump", "ABC"), "is not SYM:YYYY-MM-DD")


def test_validate_good_file(home, tmp_path):
    f = write_yahoo_csv(sample("ABC", 40), tmp_path / "abc.csv")
    r = swb("validate", "--path", f)
    assert r.returncode == 0 and "40 rows, 1 symbol(s)" in r.stdout and "all 40 checks passed" in r.stdout
    assert not (home / "data").exists()   # validate never writes


def test_bad_settings_are_one_line_errors(home):
    (home / "settings.ini").write_text("[validation]\nmax_abs_retrun = 0.8\n")
    one_line_error(swb("info"), "unknown setting [validation] max_abs_retrun")
    (home / "settings.ini").write_text("")
    one_line_error(swb("info", env={"SWB_MAX_ABS_RETURN": "lots"}), "SWB_MAX_ABS_RETURN")


def test_validate_failing_file_prints_the_one_line_error(home, tmp_path):
    df = sample("ABC", 40)
    df.loc[5, "close"] = -2.0
    f = write_yahoo_csv(df, tmp_path / "abc.csv")
    r = swb("validate", "--path", f)
    line = one_line_error(r, "swb: error: validation failed: ", "close > 0", f"row 6 of abc.csv: ABC {df.date[5]:%Y-%m-%d}  close=-2")
    assert r.returncode == 1 and "nothing was written" not in line and "FAIL close > 0" in r.stdout
    assert not (home / "data").exists()


def test_info_states_time_travel(home):
    assert swb("ingest", "--source", "synthetic", "--symbols", 2, "--years", 0.2).returncode == 0
    r = swb("info")
    assert r.returncode == 0 and re.search(r"^time travel: versions 0 \(.* UTC\) to 0 restorable", r.stdout, re.M), r.stdout


# --- SIGTERM and SIGINT: one line saying what had been committed -------------------------------------------

LINE = re.compile(r"swb: interrupted by (SIGTERM|SIGINT); (?:nothing had been committed|committed before it: (.+))")


def _signal_ingest(home, sig, when):
    "Start an ingest big enough to take seconds; send `sig` after `when` seconds, or (`when` = 'commit') as soon as its commit file appears"
    p = subprocess.Popen([str(BIN / "swb"), "ingest", "--source", "synthetic", "--symbols", "40", "--years", "5"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=os.environ.copy())
    if when == "commit":
        log = home / "data" / "_delta_log"
        while p.poll() is None and not (log.is_dir() and any(f.suffix == ".json" for f in log.iterdir())): time.sleep(0.002)
    else: time.sleep(when)
    p.send_signal(sig)
    out, err = p.communicate(timeout=120)
    return p.returncode, err


def _check_line(home, rc, err, sig):
    "Exit 143/130 and one line; the store is at the version the line names (or empty when it names none)"
    from stock_workbench.config import Settings
    from stock_workbench.store import OhlcvStore
    version = OhlcvStore.from_settings(Settings(home)).version
    if rc == 0: assert version == 0; return None   # it finished before the signal came
    lines = err.strip().splitlines()
    assert rc == {signal.SIGTERM: 143, signal.SIGINT: 130}[sig] and len(lines) == 1, (rc, err)
    m = LINE.fullmatch(lines[0])
    assert m and m[1] == sig.name, lines
    if m[2] is None: assert version is None, (lines[0], version)
    else: assert m[2] == f"store {home / 'data'} version {version}", (lines[0], version)
    return m[2]


@pytest.mark.parametrize("sig,when", [(signal.SIGTERM, 2.5), (signal.SIGINT, 2.5), (signal.SIGTERM, "commit"), (signal.SIGINT, "commit")])
def test_signal_during_ingest_says_what_was_committed(home, sig, when):
    rc, err = _signal_ingest(home, sig, when)
    said = _check_line(home, rc, err, sig)
    if when == "commit":   # the next run works, and adds nothing when the interrupted one had committed
        r = swb("ingest", "--source", "synthetic", "--symbols", "40", "--years", "5", "--json")
        assert r.returncode == 0 and json.loads(r.stdout)["inserted"] == (0 if said or rc == 0 else 50400), r.stdout + r.stderr


def test_store_commands_are_wired(home):
    "`swb store drop|restore|check` reach storecare.cmd_store: a dropped symbol comes back with the version before the drop"
    assert swb("ingest", "--source", "synthetic", "--symbols", 2, "--years", 0.2).returncode == 0
    assert swb("store", "drop", "--symbols", "SYN001").returncode == 0 and list(info()["symbols"]) == ["SYN000"]
    r = swb("store", "restore", "--version", 0)
    assert r.returncode == 0, r.stderr
    assert sorted(info()["symbols"]) == ["SYN000", "SYN001"]
    r = swb("store", "check", "--json")
    assert r.returncode == 0 and json.loads(r.stdout) and str(home / "data") in r.stdout, r.stdout + r.stderr


def test_sigint_after_the_store_moved_names_the_commit(home):
    "Before: `swb: interrupted; the store keeps its previous version` though the EOD job had committed the store"
    env = {**os.environ, "SWB_SYNTHETIC_SYMBOLS": "3", "SWB_SYNTHETIC_YEARS": "2", "SWB_TRAIN_DAYS": "252", "SWB_REFIT_DAYS": "126",
           "SWB_PROMOTE_EVAL_DAYS": "126", "SWB_BACKTEST_DAYS": "126", "MLFLOW_DISABLE_TELEMETRY": "true"}
    p = subprocess.Popen([str(BIN / "swb"), "run", "eod"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    log = home / "data" / "_delta_log"
    while p.poll() is None and not (log.is_dir() and any(f.suffix == ".json" for f in log.iterdir())): time.sleep(0.02)
    time.sleep(1.0)   # the job goes on: training, forecasting
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=120)
    lines = err.strip().splitlines()
    assert p.returncode == 130 and len(lines) == 1, (p.returncode, err)
    assert lines[0].startswith(f"swb: interrupted by SIGINT; committed before it: store {home / 'data'} version 0"), lines
    assert info()["version"] == 0
