"Checks that see what is already stored (issue 10, kind 3): jumps, gaps and order across the stored boundary, restatements, --replace-history, the EOD store update"
import json
import numpy as np, pandas as pd, pytest
from conftest import FIELD, sample, swb, tree_digest, write_yahoo_csv
from test_cli import info, one_line_error
from stock_workbench.config import Settings
from stock_workbench.sources import read_csv_ohlcv
from stock_workbench.store import OhlcvStore

PRICES = ["open", "high", "low", "close", "adj_close"]


def ingest(path, *args):
    return swb("ingest", "--source", "csv", "--path", path, *args)


def stored(home, sym=None):
    return OhlcvStore.from_settings(Settings(home)).read([sym] if sym else None)


def rescaled(df, ratio, cols=PRICES):
    "Prices times `ratio` (volume divided by it when every price moves: a split), rounded as a CSV keeps them"
    out = df.copy()
    out[cols] = (out[cols] * ratio).round(6)
    if cols == PRICES: out["volume"] = (out["volume"] / ratio).round()
    return out


def write_no_adj(df, path):
    "A CSV without an Adj Close column, as many sources write it"
    write_yahoo_csv(df, path)
    pd.read_csv(path).drop(columns="Adj Close").to_csv(path, index=False)
    return path


# --- the field case: one history in two files, the second at a post-split level --------------------------------

def test_field_history_in_two_files_is_refused_at_the_split(home):
    assert ingest(FIELD / "incr_part1.csv", "--symbol", "INC").returncode == 0
    before = tree_digest(home / "data")
    r = ingest(FIELD / "incr_part2_postsplit.csv", "--symbol", "INC")
    line = one_line_error(r, "validation failed", "|daily return of adj_close| <= max_abs_return=0.5",
                          "row 1 of incr_part2_postsplit.csv: INC 2022-07-01  adj_return_1d=-0.747978",
                          "after stored row 2022-06-30", "matches a 4:1 split", "nothing was written")
    assert "FAIL |daily return of adj_close| <= max_abs_return=0.5 [adj_return_1d] (next to stored rows): 1 row(s)" in r.stdout
    assert "(with 1 stored row(s) next to them): FAILED 1 of 43 checks" in r.stdout
    assert tree_digest(home / "data") == before
    # validate says what ingest would decide, against the current store
    r = swb("validate", "--path", FIELD / "incr_part2_postsplit.csv", "--symbol", "INC", "--json")
    rep = json.loads(r.stdout)
    assert r.returncode == 1 and rep["stored_rows"] == 1 and rep["store_version"] == 0
    row = rep["failures"][0]["rows"][0]
    assert (row["row"], row["date"], row["adj_return_1d"], row["after_row"], row["after"]) == (1, "2022-07-01", "-0.747978", "stored", "2022-06-30 adj_close=63.797")
    # the same rows in one file were always refused; the two files alone each pass
    assert swb("validate", "--path", FIELD / "incr_part2_postsplit.csv", "--symbol", "NEW").returncode == 0
    assert tree_digest(home / "data") == before


def test_field_files_in_reverse_order_name_the_stored_row(home):
    "New rows dated before the stored ones: checked in date order, so the stored row after them carries the jump"
    assert ingest(FIELD / "incr_part2_postsplit.csv", "--symbol", "INC").returncode == 0
    before = tree_digest(home / "data")
    r = ingest(FIELD / "incr_part1.csv", "--symbol", "INC")
    one_line_error(r, "validation failed", "stored row: INC 2022-07-01  adj_return_1d=-0.747978", "nothing was written")
    assert "(after row 376 of incr_part1.csv 2022-06-30 adj_close=63.797)" in r.stdout
    assert tree_digest(home / "data") == before


def test_field_split_adjusted_history_replaces_the_stored_one_in_one_version(home, tmp_path):
    assert ingest(FIELD / "incr_part1.csv", "--symbol", "INC").returncode == 0
    assert ingest(FIELD / "incr_part2_postsplit.csv", "--symbol", "INC").returncode == 1
    p1 = read_csv_ohlcv(FIELD / "incr_part1.csv", "INC")
    p2 = read_csv_ohlcv(FIELD / "incr_part2_postsplit.csv", "INC")
    whole = pd.concat([rescaled(p1, 0.25), p2], ignore_index=True)      # the history split-adjusted, as a provider re-sends it
    f = write_yahoo_csv(whole, tmp_path / "inc.csv")
    before = tree_digest(home / "data")
    r = ingest(f)                                                      # without the flag: a restatement, refused
    one_line_error(r, "stored rows unchanged (no restatement)", "row 1 of inc.csv: INC 2021-01-04",
                   "INC: 376 of 376 overlapping row(s) restated, ratio 0.25: looks like a 4:1 split re-adjustment", "--replace-history")
    assert tree_digest(home / "data") == before
    r = ingest(f, "--replace-history", "--json")
    assert r.returncode == 0, r.stderr
    w = json.loads(r.stdout)
    assert (w["version"], w["inserted"], w["updated"], w["deleted"], w["replaced_history"]) == (1, 127, 376, 0, True)
    got = stored(home)
    pd.testing.assert_frame_equal(got, read_csv_ohlcv(f), check_like=True)   # exactly the new file's rows
    h = OhlcvStore.from_settings(Settings(home)).history()
    assert len(h) == 2 and h[0]["replaced"] == ["INC"] and h[0]["source"].endswith("inc.csv")
    r = ingest(f, "--replace-history", "--json")                         # the same history again: no new version
    assert json.loads(r.stdout)["version"] == 1 and info()["version"] == 1


def test_same_file_twice_is_a_no_op(home):
    assert ingest(FIELD / "incr_part1.csv", "--symbol", "INC").returncode == 0
    before = tree_digest(home / "data")
    r = ingest(FIELD / "incr_part1.csv", "--symbol", "INC")
    assert r.returncode == 0, r.stderr
    assert "stored version 0: 0 inserted, 0 updated, 376 unchanged" in r.stdout
    assert "(with 376 stored row(s) next to them): all 43 checks passed" in r.stdout
    assert tree_digest(home / "data") == before and info()["version"] == 0


# --- variants: other split ratios, restatements, gaps, order -------------------------------------------------------

@pytest.mark.parametrize("ratio, split", [(0.5, "2:1 split"), (10.0, "1:10 reverse split")])
def test_other_split_ratios_across_files(home, tmp_path, ratio, split):
    h = sample("SPL", 60)
    assert ingest(write_yahoo_csv(h.iloc[:40], tmp_path / "a" / "spl.csv")).returncode == 0
    before = tree_digest(home / "data")
    r = ingest(write_yahoo_csv(rescaled(h.iloc[40:], ratio), tmp_path / "b" / "spl.csv"))
    day = h.date.iloc[40].strftime("%Y-%m-%d")
    one_line_error(r, "|daily return of adj_close|", f"row 1 of spl.csv: SPL {day}", f"matches a {split}",
                   f"--allow-jump SPL:{day}", "nothing was written")
    assert tree_digest(home / "data") == before
    # a real split in unadjusted prices: the note says so; allowed by day, it is stored and the lineage says unadjusted
    other = tmp_path / "home2"; other.mkdir()
    env = {"SWB_HOME": str(other)}
    assert swb("ingest", "--source", "csv", "--path", write_no_adj(h.iloc[:40], tmp_path / "c" / "spl.csv"), env=env).returncode == 0
    f = write_no_adj(rescaled(h.iloc[40:], ratio), tmp_path / "d" / "spl.csv")
    r = swb("ingest", "--source", "csv", "--path", f, env=env)
    one_line_error(r, f"prices are unadjusted (no Adj Close) and x", f"matches a {split}", f"pass --allow-jump SPL:{day} to keep it")
    r = swb("ingest", "--source", "csv", "--path", f, "--allow-jump", f"SPL:{day}", env=env)
    assert r.returncode == 0, r.stdout + r.stderr
    hist = OhlcvStore(other / "data").history()
    assert hist[0]["unadjusted"] == ["SPL"] and OhlcvStore(other / "data").unadjusted_symbols() == {"SPL"}


def test_dividend_readjustment_is_a_restatement_with_its_ratio(home, tmp_path):
    h = sample("DIV", 60)
    assert ingest(write_yahoo_csv(h.iloc[:50], tmp_path / "a" / "div.csv")).returncode == 0
    before = tree_digest(home / "data")
    new = h.iloc[30:].copy()
    new.loc[new.index[:25], "adj_close"] = (new.loc[new.index[:25], "adj_close"] * 0.98).round(6)   # ex-date: the 26th new row
    f = write_yahoo_csv(new, tmp_path / "b" / "div.csv")
    r = ingest(f)
    one_line_error(r, "stored rows unchanged (no restatement)", "DIV: 20 of 20 overlapping row(s) restated, ratio 0.98: looks like a dividend re-adjustment",
                   "--replace-history", "nothing was written")
    old, new0 = h.adj_close.iloc[30], new.adj_close.iloc[0]
    assert f"row 1 of div.csv: DIV {h.date.iloc[30]:%Y-%m-%d}  adj_close={new0:.6g} (stored {old:.6g})" in r.stdout
    assert tree_digest(home / "data") == before
    r = swb("validate", "--path", f, "--json")
    assert r.returncode == 1 and json.loads(r.stdout)["failures"][0]["check"] == "stored rows unchanged (no restatement)"


def test_revised_rows_without_a_constant_ratio(home, tmp_path):
    h = sample("REV", 50)
    assert ingest(write_yahoo_csv(h.iloc[:40], tmp_path / "a" / "rev.csv")).returncode == 0
    before = tree_digest(home / "data")
    new = h.iloc[20:].copy()
    for i, k in zip(new.index[[2, 5, 9]], [1.01, 0.97, 1.002]):
        new.loc[i, ["close", "adj_close"]] *= k
        new.loc[i, "high"] = new.loc[i, ["high", "close"]].max(); new.loc[i, "low"] = new.loc[i, ["low", "close"]].min()
    r = ingest(write_yahoo_csv(new, tmp_path / "b" / "rev.csv"))
    one_line_error(r, "stored rows unchanged (no restatement)", "row 3 of rev.csv: REV", "REV: 3 of 20 overlapping row(s) restated", "by no constant ratio")
    assert "FAIL stored rows unchanged (no restatement)" in r.stdout and "(against stored rows): 3 row(s)" in r.stdout
    assert tree_digest(home / "data") == before


def test_gap_of_twenty_sessions_after_the_stored_end(home, tmp_path):
    h = sample("GAP", 80)
    assert ingest(write_yahoo_csv(h.iloc[:40], tmp_path / "a" / "gap.csv")).returncode == 0
    before = tree_digest(home / "data")
    r = ingest(write_yahoo_csv(h.iloc[60:], tmp_path / "b" / "gap.csv"))      # sessions 40..59 never delivered
    one_line_error(r, "at most max_missing_sessions=5 sessions skipped", f"row 1 of gap.csv: GAP {h.date.iloc[60]:%Y-%m-%d}  sessions_skipped=20",
                   "nothing was written")
    assert f"(after stored row {h.date.iloc[39]:%Y-%m-%d})" in r.stdout
    assert tree_digest(home / "data") == before
    # the missing sessions delivered: they fill the hole, checked against both stored neighbours
    assert ingest(write_yahoo_csv(h.iloc[40:60], tmp_path / "c" / "gap.csv")).returncode == 0
    assert ingest(write_yahoo_csv(h.iloc[60:], tmp_path / "b" / "gap.csv")).returncode == 0
    pd.testing.assert_frame_equal(stored(home)[["date", "close"]], h[["date", "close"]].reset_index(drop=True), rtol=1e-12)


def test_new_rows_dated_before_the_stored_ones(home, tmp_path):
    h = sample("OLD", 80)
    assert ingest(write_yahoo_csv(h.iloc[40:], tmp_path / "a" / "old.csv")).returncode == 0
    before = tree_digest(home / "data")
    # an older history at another price level: the stored first row is where it breaks
    r = ingest(write_yahoo_csv(rescaled(h.iloc[:40], 3.0), tmp_path / "b" / "old.csv"))
    one_line_error(r, f"stored row: OLD {h.date.iloc[40]:%Y-%m-%d}  adj_return_1d=", "matches a 3:1 split", "nothing was written")
    # an older history that ends 20 sessions before the stored start
    r = ingest(write_yahoo_csv(h.iloc[:20], tmp_path / "c" / "old.csv"))
    one_line_error(r, "sessions skipped", f"stored row: OLD {h.date.iloc[40]:%Y-%m-%d}  sessions_skipped=20")
    assert tree_digest(home / "data") == before
    # the same older history, joining cleanly: a backfill, stored in date order
    r = ingest(write_yahoo_csv(h.iloc[:40], tmp_path / "d" / "old.csv"))
    assert r.returncode == 0, r.stdout + r.stderr
    got = stored(home)
    assert len(got) == 80 and got.date.is_monotonic_increasing and info()["version"] == 1


# --- the EOD job's store update follows the same rule ----------------------------------------------------------------

def test_eod_store_update_refuses_a_restated_csv(home, tmp_path, monkeypatch):
    h = sample("EOD", 120)
    folder = tmp_path / "csv"
    assert ingest(write_yahoo_csv(h.iloc[:-1], folder / "EOD.csv")).returncode == 0     # all but the last day
    before = tree_digest(home / "data")
    write_yahoo_csv(rescaled(h, 0.98, ["adj_close"]), folder / "EOD.csv")              # re-adjusted for a dividend, plus the new day
    monkeypatch.setenv("SWB_EOD_SOURCE", "csv"); monkeypatch.setenv("SWB_EOD_CSV_PATH", str(folder))
    last = str(h.date.iloc[-1].date())
    line = one_line_error(swb("run", "eod", "--date", last), "failed: ValidationFailed: validation failed", "stored rows unchanged (no restatement)",
                          "ratio 0.98: looks like a dividend re-adjustment")
    html = (home / "reports" / "eod" / last / "eod.html").read_text()
    assert "FAIL stored rows unchanged (no restatement)" in html and "EOD" in html and str(home / "reports" / "eod" / last / "eod.html") in line
    assert tree_digest(home / "data") == before
    q = json.loads((home / "quality" / "latest.json").read_text())
    assert q["success"] is False and q["validation"]["failures"][0]["check"] == "stored rows unchanged (no restatement)"


# --- round 2: split-sized moves below max_abs_return, more split ratios, rounded re-exports, EOD remedies -----------

def scaled_field_part2(tmp_path, k):
    "The field's second file at another post-split level: every price times `k`"
    d = pd.read_csv(FIELD / "incr_part2_postsplit.csv")
    cols = ["Open", "High", "Low", "Close", "Adj Close"]
    d[cols] = (d[cols] * k).round(6)
    d.to_csv(tmp_path / "part2.csv", index=False)
    return tmp_path / "part2.csv"


@pytest.mark.parametrize("k, ret, split", [(2.0, "-0.495956", "2:1 split"), (8 / 3, "-0.327941", "3:2 split")])
def test_split_sized_move_below_max_abs_return_is_refused_at_the_boundary(home, tmp_path, k, ret, split):
    assert ingest(FIELD / "incr_part1.csv", "--symbol", "INCR").returncode == 0
    before = tree_digest(home / "data")
    f = scaled_field_part2(tmp_path, k)
    r = ingest(f, "--symbol", "INCR")
    one_line_error(r, "validation failed: 1 of 43 checks (no split-sized move: |daily return| >= split_check_min_move=0.3 within 1.5 % of a split ratio)",
                   f"row 1 of part2.csv: INCR 2022-07-01  adj_return_1d={ret}", f"matches a {split}", "--allow-jump INCR:2022-07-01",
                   "nothing was written")
    assert tree_digest(home / "data") == before
    r = ingest(f, "--symbol", "INCR", "--allow-jump", "INCR:2022-07-01")
    assert r.returncode == 0 and "127 inserted" in r.stdout, r.stdout + r.stderr


def test_reverse_split_one_for_twenty_gets_the_hint(home, tmp_path):
    h = sample("REV", 60)
    assert ingest(write_yahoo_csv(h.iloc[:40], tmp_path / "a" / "rev.csv")).returncode == 0
    r = ingest(write_yahoo_csv(rescaled(h.iloc[40:], 20.0), tmp_path / "b" / "rev.csv"))
    one_line_error(r, "|daily return of adj_close|", "matches a 1:20 reverse split", f"--allow-jump REV:{h.date.iloc[40]:%Y-%m-%d}")


def test_unadjusted_split_sized_move_inside_a_file_is_refused(home, tmp_path):
    h = sample("UNA", 60)
    new = pd.concat([h.iloc[:30], rescaled(h.iloc[30:], 2 / 3)])            # a 3:2 split on day 31, prices not adjusted
    day = f"{h.date.iloc[30]:%Y-%m-%d}"
    f = write_no_adj(new, tmp_path / "una.csv")
    r = ingest(f)
    one_line_error(r, "no split-sized move", f"row 31 of una.csv: UNA {day}", "prices are unadjusted", "matches a 3:2 split",
                   f"--allow-jump UNA:{day}")
    assert not (home / "data").exists()
    assert ingest(f, "--allow-jump", f"UNA:{day}").returncode == 0
    # the same move in adjusted prices (with Adj Close) is an ordinary day below max_abs_return: accepted
    assert swb("validate", "--path", write_yahoo_csv(new, tmp_path / "adj" / "una.csv"), "--symbol", "ADJ").returncode == 0


@pytest.mark.parametrize("places", [4, 2])
def test_rounded_reexport_of_the_same_history_is_no_change(home, tmp_path, places):
    assert ingest(FIELD / "^GSPC.csv").returncode == 0
    before, old = tree_digest(home / "data"), stored(home)
    pd.read_csv(FIELD / "^GSPC.csv").round(places).to_csv(tmp_path / "g.csv", index=False)
    r = ingest(tmp_path / "g.csv", "--symbol", "^GSPC")
    assert r.returncode == 0 and r.stderr.count("\n") <= 1, r.stderr
    assert "all 43 checks passed" in r.stdout and "stored version 0: 0 inserted, 0 updated, 503 unchanged" in r.stdout
    assert tree_digest(home / "data") == before                               # the stored, finer values are kept
    pd.testing.assert_frame_equal(stored(home), old)
    # a genuine change at that precision is still a restatement
    d = pd.read_csv(FIELD / "^GSPC.csv").round(places)
    d.loc[100, "Close"] += 2 * 10.0 ** -places
    d.to_csv(tmp_path / "g2.csv", index=False)
    r = ingest(tmp_path / "g2.csv", "--symbol", "^GSPC")
    one_line_error(r, "stored rows unchanged (no restatement)", "row 101 of g2.csv: ^GSPC 2021-05-27", "^GSPC: 1 of 503 overlapping row(s) restated")
    assert tree_digest(home / "data") == before


def test_ratio_one_restatement_is_not_called_a_dividend(home, tmp_path):
    h = sample("ONE", 40)
    assert ingest(write_yahoo_csv(h, tmp_path / "a" / "one.csv")).returncode == 0
    new = h.copy()
    new[PRICES] = new[PRICES].round(6) + 2e-6                                 # every price nudged, ratio 1
    r = ingest(write_yahoo_csv(new, tmp_path / "b" / "one.csv"))
    line = one_line_error(r, "ONE: 40 of 40 overlapping row(s) restated, ratio 1: the values changed without any re-adjustment")
    assert "dividend" not in line


def test_eod_restatement_names_the_ingest_command(home, tmp_path, monkeypatch):
    h = sample("EOD", 120)
    f = tmp_path / "csv" / "EOD.csv"
    assert ingest(write_yahoo_csv(h.iloc[:-1], f)).returncode == 0
    write_yahoo_csv(rescaled(h, 0.98, ["adj_close"]), f)
    monkeypatch.setenv("SWB_EOD_SOURCE", "csv"); monkeypatch.setenv("SWB_EOD_CSV_PATH", str(f))
    last = str(h.date.iloc[-1].date())
    line = one_line_error(swb("run", "eod", "--date", last), "row 1 of the 12 EOD row(s) from EOD.csv: EOD")
    q = json.loads((home / "quality" / "latest.json").read_text())
    note = q["validation"]["failures"][0]["note"]
    assert note.endswith(f"to replace the stored history whole with the new rows: `swb ingest --source csv --path {f} --replace-history`"), note
    assert "ratio 0.98" in line
