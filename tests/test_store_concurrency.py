"Several `swb ingest` at once into one home: every one lands (commit races retried, checks re-run), the store holds exactly the right rows"
import subprocess
from pathlib import Path
import pandas as pd, pytest
from conftest import BIN, swb, write_yahoo_csv
from stock_workbench.config import Settings
from stock_workbench.store import OhlcvStore
from stock_workbench.synthetic import synthetic_market

WRITERS = 4
MARKET = synthetic_market(WRITERS + 2, 1, seed=11)     # 252 sessions of 7 symbols: one each, two shared by every writer
OWN = sorted(MARKET["symbol"].unique())[:WRITERS]
SHARED = sorted(MARKET["symbol"].unique())[WRITERS:]


def _folders(tmp: Path, rows: pd.DataFrame, overlapping: bool) -> list[Path]:
    "One CSV folder per writer: its own symbol, and (overlapping) the shared symbols' rows too, identical in every folder"
    out = []
    for i, sym in enumerate(OWN):
        d = tmp / f"w{i}"
        for s in [sym] + (SHARED if overlapping else []):
            write_yahoo_csv(rows[rows["symbol"] == s], d / f"{s}.csv")
        out.append(d)
    return out


def _ingest_together(folders: list[Path]) -> list[subprocess.CompletedProcess]:
    "Start one `swb ingest --source csv` per folder at once; wait for all"
    ps = [subprocess.Popen([str(BIN / "swb"), "ingest", "--source", "csv", "--path", str(d)], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True) for d in folders]
    return [(p, *p.communicate(timeout=300)) for p in ps]


def _expect(store: OhlcvStore, want: pd.DataFrame):
    got = store.read()
    assert not got.duplicated(["symbol", "date"]).any(), "duplicated (symbol, date) rows"
    want = want.sort_values(["symbol", "date"], ignore_index=True)
    assert got.groupby("symbol").size().to_dict() == want.groupby("symbol").size().to_dict()
    pd.testing.assert_frame_equal(got[["symbol", "date"]], want[["symbol", "date"]])
    pd.testing.assert_series_equal(got["close"], want["close"], rtol=1e-6)


def _check_all_landed(results):
    for p, out, err in results:
        assert p.returncode == 0, f"exit {p.returncode}: {err.strip()}"
        assert "internal error" not in err


@pytest.mark.parametrize("overlapping", [False, True], ids=["disjoint", "overlapping"])
def test_concurrent_ingests_into_empty_store(home, tmp_path, overlapping):
    store = OhlcvStore.from_settings(Settings(home))
    results = _ingest_together(_folders(tmp_path, MARKET, overlapping))
    _check_all_landed(results)
    want = MARKET[MARKET["symbol"].isin(OWN + (SHARED if overlapping else []))]
    _expect(store, want)


@pytest.mark.parametrize("overlapping", [False, True], ids=["disjoint", "overlapping"])
def test_concurrent_ingests_into_existing_store(home, tmp_path, overlapping):
    "The first half of every symbol stored; then every writer at once adds the second half: the gap checks run against stored rows"
    store = OhlcvStore.from_settings(Settings(home))
    first = MARKET.groupby("symbol").head(126)
    store.write(first, source="first half")
    second = MARKET.drop(first.index)
    results = _ingest_together(_folders(tmp_path, second, overlapping))
    _check_all_landed(results)
    _expect(store, MARKET if overlapping else MARKET[MARKET["symbol"].isin(OWN) | (MARKET.index.isin(first.index))])
    # each commit names the writer that made it: every writer's commit is in the history (or found nothing new to write)
    landed = [h for h in store.history() if h["source"].startswith("csv:")]
    assert {s for h in landed for s in h["symbols"]} >= set(OWN)


def test_concurrent_ingest_rechecks_against_the_winner(home, tmp_path):
    """Two writers send different values for the same new sessions: the one that loses the race is checked again against the
    winner's rows and refused as a restatement, not written blind over them and not a commit-conflict error"""
    store = OhlcvStore.from_settings(Settings(home))
    one = MARKET[MARKET["symbol"] == OWN[0]]
    store.write(one.iloc[:100], source="start")
    a = tmp_path / "a"; write_yahoo_csv(one.iloc[100:200], a / f"{OWN[0]}.csv")
    revised = one.iloc[100:200].copy(); revised[["open", "high", "low", "close", "adj_close"]] *= 1.002
    b = tmp_path / "b"; write_yahoo_csv(revised, b / f"{OWN[0]}.csv")
    results = _ingest_together([a, b])
    codes = sorted(p.returncode for p, _, _ in results)
    assert codes[0] == 0 and codes[1] != 0, [(p.returncode, e) for p, _, e in results]
    failed = [e for p, _, e in results if p.returncode != 0][0]
    assert "restat" in failed.lower() and "internal error" not in failed, failed
    got = store.read()
    assert len(got) == 200 and not got.duplicated(["symbol", "date"]).any()
    winner = [d for (p, _, _), d in zip(results, (one.iloc[100:200], revised)) if p.returncode == 0][0]
    pd.testing.assert_series_equal(got["close"].iloc[100:].reset_index(drop=True), winner["close"].reset_index(drop=True), rtol=1e-6)
