"Issue 10, kind 4: degenerate but real series (zero or constant volume, a price that never moves, a listing shorter than every window, a single row) through train, evaluate, predict and the EOD job"
import json
import numpy as np, pandas as pd, pytest
from conftest import FIELD, built_once, sample, swb, tree_digest, write_yahoo_csv
from test_cli import one_line_error
from stock_workbench.ledger import PredictionLedger
from stock_workbench.synthetic import synthetic_market

SMALL = {"SWB_TRAIN_DAYS": "200", "SWB_REFIT_DAYS": "100"}   # short windows keep each command to seconds
PRICES = ["open", "high", "low", "close", "adj_close"]


def _ingest(path, *args):
    r = swb("ingest", "--source", "csv", "--path", path, *args)
    assert r.returncode == 0, r.stderr
    return r


def _predictions(env=None, *args):
    r = swb("predict", "--json", *args, env=env)
    assert r.returncode == 0, r.stderr
    rows = json.loads(r.stdout)["predictions"]             # strict JSON: no NaN band slips through as a forecast
    for p in rows:
        for h in (1, 5):
            q = [p[f"p10_{h}d"], p[f"p50_{h}d"], p[f"p90_{h}d"]]
            assert np.isfinite(q).all() and q[0] <= q[1] <= q[2], p
            assert np.isfinite(p[f"price_p10_{h}d"]) and p[f"price_p10_{h}d"] > 0, p
    return {p["symbol"]: p for p in rows}


def _variant(kind, tmp_path, days=300):
    "A Yahoo-style CSV of one degenerate symbol; returns (path, symbol)"
    df = sample(kind, days, seed=len(kind))
    if kind == "FLAT": df[PRICES] = 25.0                      # a price that never moves (a money-market fund)
    if kind == "CONSTVOL": df["volume"] = 1000.0                # the same volume every day
    if kind == "ZEROVOL": df["volume"] = 0.0                    # an index, an FX rate
    if kind == "ONE": df = df.head(1)
    return write_yahoo_csv(df, tmp_path / f"{kind}.csv"), kind


# --- the field file -----------------------------------------------------------------------------------

def _zero_volume_gbm(folder):
    "The zero-volume field file ingested as IDX and gbm trained on it, progress on; the train's exit code and output"
    import os
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWB_")} | {"SWB_HOME": str(folder / "home"), "SWB_QUIET": "1"}
    r = swb("ingest", "--source", "csv", "--path", FIELD / "zero_volume_4y.csv", "--symbol", "IDX", env=env)
    assert r.returncode == 0, r.stderr
    r = swb("train", "--model", "gbm", env={**env, "SWB_QUIET": ""})   # progress on: the warning is said, once
    return dict(returncode=r.returncode, stdout=r.stdout, stderr=r.stderr)


@pytest.fixture
def zero_volume(home, tmp_path_factory):
    "This test's home: a copy of the zero-volume home with gbm trained (built once per test run); the train's output"
    import shutil
    folder, train = built_once(tmp_path_factory, "zero-volume-gbm", _zero_volume_gbm)
    shutil.rmtree(home); shutil.copytree(folder / "home", home)
    return train


def test_field_zero_volume_train_evaluate_predict(zero_volume):
    r = zero_volume
    assert r["returncode"] == 0, r["stderr"]
    assert "internal error" not in r["stderr"]
    warn = [l for l in r["stderr"].splitlines() if l.startswith("warning:")]
    assert warn == ["warning: IDX: volume is 0 on every row: vwap_20, volume_z_20, dist_vwap_20 are NaN"], r["stderr"]
    assert "registered stock-forecaster version 1 as champion" in r["stdout"]
    p = _predictions()
    assert list(p) == ["IDX"] and p["IDX"]["date"] == "2022-12-30"
    r = swb("evaluate", "--model", "gbm", "--json", env={"SWB_TRAIN_DAYS": "252", "SWB_REFIT_DAYS": "252"})
    assert r.returncode == 0 and r.stderr == "", r.stderr
    res = json.loads(r.stdout)
    assert res["symbols"] == 1 and res["rows"] > 500 and 0 < res["models"]["gbm"]["overall"]["pinball"] < 0.05
    for m in ("naive", "drift", "volq"):                       # the baselines have nothing to do with volume
        assert swb("train", "--model", m).returncode == 0, m


def test_gbm_leaves_out_what_a_symbol_cannot_have(zero_volume):
    from stock_workbench.config import Settings
    from stock_workbench.lifecycle import fitted_models
    from stock_workbench.registry import load_forecaster
    assert zero_volume["returncode"] == 0, zero_volume["stderr"]
    m = fitted_models(load_forecaster(Settings(), "champion")[0])[1]
    assert m.dropped_features_ == ["volume_z_20", "dist_vwap_20"]   # no value in training: not fitted on, not read
    assert "volume_z_20" in m.features_ and "volume_z_20" not in m.used_features_


# --- generated variants -------------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["FLAT", "CONSTVOL", "ZEROVOL"])
def test_degenerate_series_train_predict_evaluate(home, tmp_path, kind):
    path, sym = _variant(kind, tmp_path)
    _ingest(path)
    before = tree_digest(home / "data")
    r = swb("train", "--model", "gbm", env=SMALL)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    p = _predictions()[sym]
    if kind == "FLAT":   # nothing ever moved: a zero-width band at the price, not a NaN
        assert p["p10_1d"] == p["p90_1d"] == 0 and p["price_p50_1d"] == 25.0
    r = swb("evaluate", "--model", "gbm", "--json", env=SMALL)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert json.loads(r.stdout)["rows"] > 0
    assert tree_digest(home / "data") == before


def test_flat_price_each_baseline(home, tmp_path):
    _ingest(_variant("FLAT", tmp_path)[0])
    for m in ("naive", "drift"):
        assert swb("train", "--model", m, env=SMALL).returncode == 0, m
    assert _predictions()["FLAT"]["p50_5d"] == 0
    one_line_error(swb("train", "--model", "volq", env=SMALL),
                   "swb: error: volq: no training row with a positive rvol_20 (FLAT: the price did not move, "
                   "or too few sessions for the window); use naive or drift")
    one_line_error(swb("evaluate", "--model", "volq", env=SMALL), "volq: no training row with a positive rvol_20 (FLAT")


@pytest.mark.parametrize("days", [30, 1])
def test_short_listing_is_refused_in_one_line(home, tmp_path, days):
    df = sample("NEW", 30, seed=6).head(days)
    _ingest(write_yahoo_csv(df, tmp_path / "NEW.csv"))
    s = "session" if days == 1 else "sessions"
    for m in ("gbm", "naive"):
        one_line_error(swb("train", "--model", m),
                       f"swb: error: NEW: {days} {s}, {m} needs at least 757 to train (756 training + 1 horizon; "
                       "the setting train_days sets the window)")
    one_line_error(swb("evaluate", "--model", "gbm"), f"swb: error: NEW: {days} {s}, too few to evaluate: ")
    one_line_error(swb("predict"), "no champion model registered")


def test_short_listing_trains_on_a_window_it_has(home, tmp_path):
    _ingest(write_yahoo_csv(sample("NEW", 30, seed=6), tmp_path / "NEW.csv"))
    r = swb("train", "--model", "gbm", env={"SWB_TRAIN_DAYS": "20"})   # 20 + 5 sessions fit in 30
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert list(_predictions()) == ["NEW"]


# --- mixed panels -------------------------------------------------------------------------------------

@pytest.fixture
def mixed(home, tmp_path):
    "Two normal symbols beside a zero-volume index, a flat fund, a 30-session listing and one listed on the last day"
    folder = tmp_path / "mixed"
    m = synthetic_market(2, 300 / 252, seed=9)
    for s, g in m.groupby("symbol"): write_yahoo_csv(g, folder / f"{s}.csv")
    g = m[m.symbol == "SYN000"]
    write_yahoo_csv(g.assign(volume=0.0, symbol="IDX"), folder / "IDX.csv")
    write_yahoo_csv(g.assign(**dict.fromkeys(PRICES, 10.0), symbol="MMF"), folder / "MMF.csv")
    write_yahoo_csv(g.tail(30).assign(symbol="NEW"), folder / "NEW.csv")
    write_yahoo_csv(g.tail(1).assign(symbol="ONE"), folder / "ONE.csv")      # every own feature NaN on the forecast date
    _ingest(folder)
    return home


def test_mixed_panel_every_model_forecasts_the_others(mixed):
    everyone = {"IDX", "MMF", "NEW", "ONE", "SYN000", "SYN001"}
    r = swb("train", "--model", "gbm", env=SMALL)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert set(_predictions()) == everyone - {"ONE"}   # ONE has no feature of its own yet: no band from market and calendar alone
    r = swb("evaluate", "--model", "gbm", "--json", env=SMALL)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["symbols"] == 5        # ONE has no realized outcome to score yet
    r = swb("train", "--model", "volq", env=SMALL)     # no volatility to scale for the flat fund and the new listing: no forecast for them
    assert r.returncode == 0, r.stderr
    r = swb("predict", "--json", "--model", "2", env={"SWB_QUIET": ""})
    assert r.returncode == 0, r.stderr
    assert {p["symbol"] for p in json.loads(r.stdout)["predictions"]} == everyone - {"MMF", "ONE"}
    assert "warning: MMF: volq has no forecast from " in r.stderr
    assert "warning: ONE: 1 session of history, no feature of its own on " in r.stderr
    assert "internal error" not in r.stderr
    assert set(_predictions(None, "--model", "2")) == everyone - {"MMF", "ONE"}


@pytest.mark.parametrize("field", [True, False])
def test_one_row_symbol_gets_no_forecast(home, tmp_path, field):
    "A one-session listing beside a long symbol: every feature of its own is NaN, so no band built from the market and the calendar"
    if field: _ingest(FIELD / "zero_volume_4y.csv", "--symbol", "IDX"); other, env = "IDX", None
    else: _ingest(write_yahoo_csv(sample("LONG", 300, seed=4), tmp_path / "LONG.csv")); other, env = "LONG", SMALL
    last = pd.to_datetime(pd.read_csv(FIELD / "zero_volume_4y.csv")["Date"]).max() if field else sample("LONG", 300, seed=4)["date"].max()
    one = sample("ONE", 2, seed=8).head(1).assign(date=pd.Timestamp(last))
    _ingest(write_yahoo_csv(one, tmp_path / "ONE.csv"))
    assert swb("train", "--model", "gbm", env=env).returncode == 0
    d = str(pd.Timestamp(last).date())
    r = swb("predict", "--json", env={"SWB_QUIET": ""})
    assert r.returncode == 0, r.stderr
    assert [p["symbol"] for p in json.loads(r.stdout)["predictions"]] == [other]
    warn = [l for l in r.stderr.splitlines() if "ONE" in l and "forecast" in l]
    assert warn == [f"warning: ONE: 1 session of history, no feature of its own on {d}: no forecast"], r.stderr
    r = swb("predict")                                            # the table leaves it out too
    assert r.returncode == 0 and "ONE" not in r.stdout and other in r.stdout, r.stdout


def test_partial_features_keep_the_forecast(home, tmp_path):
    "Two sessions: ret_1d is its own, the 200-session average is not yet: an honest forecast from what it has"
    long = sample("LONG", 300, seed=4)
    _ingest(write_yahoo_csv(long, tmp_path / "LONG.csv"))
    _ingest(write_yahoo_csv(sample("TWO", 2, seed=8).assign(date=long["date"].tail(2).to_numpy()), tmp_path / "TWO.csv"))
    assert swb("train", "--model", "gbm", env=SMALL).returncode == 0
    assert set(_predictions()) == {"LONG", "TWO"}


# --- the EOD job ----------------------------------------------------------------------------------------

EOD = {"SWB_TRAIN_DAYS": "252", "SWB_REFIT_DAYS": "126", "SWB_PROMOTE_EVAL_DAYS": "126", "SWB_BACKTEST_DAYS": "126"}


def test_eod_with_a_zero_volume_symbol(home, tmp_path, monkeypatch):
    df = synthetic_market(2, 1.6, seed=5)
    df.loc[df.symbol == "SYN001", "volume"] = 0.0
    df = df.replace({"symbol": {"SYN001": "IDX"}})
    folder = tmp_path / "csv"
    for s, g in df.groupby("symbol"): write_yahoo_csv(g.iloc[:-1], folder / f"{s}.csv")   # all but the last day
    _ingest(folder)
    for s, g in df.groupby("symbol"): write_yahoo_csv(g, folder / f"{s}.csv")             # the last day arrives
    for k, v in {**EOD, "SWB_EOD_SOURCE": "csv", "SWB_EOD_CSV_PATH": str(folder)}.items(): monkeypatch.setenv(k, v)
    last = str(df["date"].max().date())
    r = swb("run", "eod", "--date", last)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().startswith(f"eod {last}: done.") and r.stderr == "", r.stderr
    led = PredictionLedger(home / "predictions").read(source="eod")
    assert sorted(led["symbol"].unique()) == ["IDX", "SYN000"] and set(led["horizon"]) == {1, 5}
    assert led[["p10", "p50", "p90"]].notna().all().all()
    html = (home / "reports" / "eod" / last / "eod.html").read_text()
    assert "Backtest of the forecast signal" in html and "IDX" in html
