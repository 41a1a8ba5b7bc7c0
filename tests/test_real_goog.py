"""Real data: daily GOOG prices 2004-2013 as the `backtesting` package ships them (unnamed date column, no Adj Close),
read from the installed package, through ingest, features, the walk-forward of every baseline, train and predict"""
import json
from pathlib import Path
import backtesting  # a dev dependency: never skipped
import numpy as np, pandas as pd, pytest
from conftest import built_once, swb

GOOG = Path(backtesting.__file__).parent / "test" / "GOOG.csv"
BASELINES = ("naive", "volq", "ewma", "garch")


def ok(r):
    assert r.returncode == 0, r.stdout + r.stderr
    return r


def _env(h):
    import os
    return {k: v for k, v in os.environ.items() if not k.startswith("SWB_")} | {"SWB_HOME": str(h), "SWB_QUIET": "1"}


def _ingested(folder):
    ok(swb("ingest", "--source", "csv", "--path", GOOG, "--symbol", "GOOG", env=_env(folder)))


@pytest.fixture(scope="module")
def goog(tmp_path_factory):
    "One home with GOOG ingested, built once per test run and shared by the tests (each reads it; train works on a copy)"
    h = built_once(tmp_path_factory, "goog", _ingested)[0]
    return h, _env(h)


def run(goog, *args):
    import subprocess, sys
    h, env = goog
    return subprocess.run([str(Path(sys.executable).parent / "swb"), *map(str, args)], capture_output=True, text=True,
                          env=env, timeout=900)


def _copy(goog, folder):
    "A copy of the GOOG home in `folder` (evaluate and train log to MLflow in the home: each into its own)"
    import shutil
    shutil.copytree(goog[0], folder / "home")
    return folder / "home", _env(folder / "home")


@pytest.fixture(scope="module")
def evaluation(goog, tmp_path_factory):
    "`swb evaluate --model gbm --json` on the whole GOOG history, horizon 1 (run once per test run)"
    make = lambda folder: json.loads(ok(run(_copy(goog, folder), "evaluate", "--model", "gbm", "--json")).stdout)
    return built_once(tmp_path_factory, "goog-evaluation", make)[1]


def test_ingest_and_features(goog, tmp_path):
    info = json.loads(ok(run(goog, "info", "--json")).stdout)
    g = info["symbols"]["GOOG"]
    assert (g["first"], g["last"], g["rows"]) == ("2004-08-19", "2013-03-01", 2148)
    out = tmp_path / "f.csv"
    ok(run(goog, "features", "--output", out))
    f = pd.read_csv(out, parse_dates=["date"])
    assert len(f) == 2148 and set(f.symbol) == {"GOOG"}
    # point in time: the 1-session return on a row is that day's close over the previous one
    raw = pd.read_csv(GOOG, index_col=0, parse_dates=True)
    lr = np.log(raw["Close"]).diff()
    assert np.allclose(f.set_index("date")["ret_1d"].iloc[1:], lr.iloc[1:].to_numpy())


def test_every_baseline_is_evaluated_and_judged(evaluation):
    r = evaluation
    assert set(BASELINES) | {"gbm"} <= set(r["models"]), list(r["models"])
    assert r["rows"] > 1000 and r["symbols"] == 1
    for m, e in r["models"].items():
        o = e["overall"]
        assert o["n"] == r["rows"], m                        # every model scored on the same rows
        assert 0.6 < o["coverage_80"] < 0.95, (m, o["coverage_80"])  # a band that is at least roughly an 80% band
        cal = o["calibration"]
        assert cal["below_p10"] < cal["below_p50"] < cal["below_p90"], (m, cal)
        assert o["best_baseline"] in BASELINES
        # the best baseline is the one with the lowest pinball on these rows
        best = min(BASELINES, key=lambda b: r["models"][b]["overall"]["pinball"])
        assert o["best_baseline"] == best
        assert abs(o["skill_vs_best"] - (1 - o["pinball"] / r["models"][best]["overall"]["pinball"])) < 1e-9
        assert abs(o["mae_skill_vs_rw"] - (1 - o["mae"] / r["models"]["naive"]["overall"]["mae"])) < 1e-9
        lo, hi = o["hit_rate_ci95"]
        assert lo <= o["hit_rate"] <= hi
        # "beats" only for a comparison won with skill > 0 and DM p below the alpha
        if "beats" in e["verdict"].replace("does not beat", ""):
            assert (o["skill_vs_best"] > 0 and o["dm_pvalue_vs_best"] < 0.05) or (o["skill_vs_rw"] > 0 and o["dm_pvalue"] < 0.05), e["verdict"]
    assert r["models"]["naive"]["overall"]["hit_rate"] == 0.5   # p50 = 0 calls no direction
    # the fixed-std random walk is not the strongest volatility baseline on real prices
    assert r["models"]["garch"]["overall"]["pinball"] < r["models"]["naive"]["overall"]["pinball"]


def test_evaluate_report_states_method_and_verdicts(goog, tmp_path):
    text = ok(run(_copy(goog, tmp_path), "evaluate", "--model", "ewma")).stdout
    assert "best baseline" in text.lower() and "bootstrap" in text.lower(), text
    assert "ewma" in text and "garch" in text


def test_train_and_predict(goog, tmp_path):
    goog = _copy(goog, tmp_path)
    ok(run(goog, "train", "--model", "garch"))
    p = json.loads(ok(run(goog, "predict", "--json")).stdout)
    assert (p["model"], p["date"]) == ("garch", "2013-03-01")
    (row,) = p["predictions"]
    assert row["symbol"] == "GOOG"
    for h in (1, 5):
        assert row[f"p10_{h}d"] < row[f"p50_{h}d"] < row[f"p90_{h}d"]
        assert row[f"p50_{h}d"] == 0.0
    # the 5-session band is wider than the 1-session one, roughly by sqrt(5) for a persistent variance
    w1, w5 = row["p90_1d"] - row["p10_1d"], row["p90_5d"] - row["p10_5d"]
    assert 1.5 < w5 / w1 < 3.0, (w1, w5)
