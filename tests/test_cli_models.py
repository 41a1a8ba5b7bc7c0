"swb features / evaluate / train / predict end to end on a small synthetic store, with MLflow on the workbench's sqlite store"
import json, shutil, subprocess, sys
import numpy as np, pandas as pd, pytest
from conftest import swb
from test_cli import one_line_error

def _client(home):
    from mlflow import MlflowClient
    return MlflowClient(f"sqlite:///{home}/mlflow.db")


def _runs(home, experiment):
    c = _client(home)
    return c.search_runs([c.get_experiment_by_name(experiment).experiment_id])


FAST = {"SWB_TRAIN_DAYS": "252", "SWB_REFIT_DAYS": "126"}   # small windows keep these tests quick


@pytest.fixture
def market(home):
    r = swb("ingest", "--source", "synthetic", "--symbols", 6, "--years", 3, "--seed", 11)
    assert r.returncode == 0, r.stderr
    return home


def test_features_csv_and_parquet(market, tmp_path):
    r = swb("features", "--symbols", "SYN000,SYN001", "--output", tmp_path / "f.csv")
    assert r.returncode == 0, r.stderr
    csv = pd.read_csv(tmp_path / "f.csv")
    assert len(csv) == 2 * 756 and set(csv.symbol) == {"SYN000", "SYN001"}
    for c in ["rsi_14", "macd", "macd_signal", "macd_hist", "bb_upper", "bb_middle", "bb_lower", "atr_14", "sma_50", "sma_200", "ema_20"]:
        assert c in csv.columns, c
    assert not any(c.startswith("target") for c in csv.columns)        # features only: no look-ahead columns
    r = swb("features", "--output", tmp_path / "all.parquet", "--start", "2017-01-03")
    assert r.returncode == 0, r.stderr
    pq = pd.read_parquet(tmp_path / "all.parquet")
    assert pq.symbol.nunique() == 6 and pq.date.min() == pd.Timestamp("2017-01-03")
    # the windows still used earlier history: the 200-day SMA is filled on the first written day
    assert pq.loc[pq.date == pq.date.min(), "sma_200"].notna().all()


def test_features_bad_input(market, tmp_path, home):
    one_line_error(swb("features", "--symbols", "NOPE", "--output", tmp_path / "f.csv"), "unknown symbol(s) NOPE")
    one_line_error(swb("features", "--output", tmp_path / "f.xlsx"), "must end in .csv or .parquet")
    assert not (tmp_path / "f.csv").exists()


def test_empty_store_is_one_line(home, tmp_path):
    one_line_error(swb("features", "--output", tmp_path / "f.csv"), "is empty: run `swb ingest` first")
    one_line_error(swb("train", "--model", "naive"), "is empty")


def test_evaluate_json_against_random_walk(market):
    r = swb("evaluate", "--model", "gbm", "--symbols", "SYN000,SYN001,SYN002,SYN003", "--json", env=FAST)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert list(res["models"]) == ["naive", "volq", "ewma", "garch", "gbm"]     # every baseline, then the model
    assert res["baselines"] == ["naive", "volq", "ewma", "garch"] and "bootstrap" in res["method"] and "0.05" in res["verdict_rule"]
    pins = {b: res["models"][b]["overall"]["pinball"] for b in res["baselines"]}
    for name, e in res["models"].items():
        for block in ("overall", "calm", "high_vol"):
            b = e[block]
            for k in ["mae", "rmse", "hit_rate", "hit_rate_ci95", "share_up", "coverage_80", "pinball", "skill_vs_rw", "skill_vs_rw_ci95",
                      "dm_pvalue", "mae_skill_vs_rw", "best_baseline", "skill_vs_best", "skill_vs_best_ci95", "dm_pvalue_vs_best",
                      "calibration", "ic", "rank_ic", "n"]:
                assert k in b, (name, block, k)
            assert set(b["calibration"]) == {"below_p10", "below_p50", "below_p90"}
        overall = e["overall"]
        assert 0 <= overall["coverage_80"] <= 1 and overall["mae"] > 0
        assert overall["best_baseline"] == min(pins, key=pins.get)
        assert abs(overall["skill_vs_best"] - (1 - overall["pinball"] / pins[overall["best_baseline"]])) < 1e-12
        lo, hi = overall["hit_rate_ci95"]
        assert lo <= overall["hit_rate"] <= hi
        won = overall["skill_vs_best"] > 0 and overall["dm_pvalue_vs_best"] is not None and overall["dm_pvalue_vs_best"] < 0.05
        assert ("beats" in e["verdict"]) == won, e["verdict"]
    assert "count" in res["models"]["garch"]["fallbacks"]
    text = swb("evaluate", "--model", "drift", "--symbols", "SYN000,SYN001,SYN002", env=FAST)
    assert text.returncode == 0 and "random walk" in text.stdout and "Against the best baseline" in text.stdout
    assert "Verdict rule: 'beats' only for a comparison won with skill > 0" in text.stdout and "moving-block bootstrap" in text.stdout
    runs = _runs(market, "swb-evaluate")
    assert len(runs) == 2 and {r.data.params["model"] for r in runs} == {"gbm", "drift"}
    gbm = next(r for r in runs if r.data.params["model"] == "gbm")
    assert gbm.data.params["data.store_version"] == "0" and gbm.data.metrics["gbm.overall.pinball"] > 0
    arts = {a.path for a in _client(market).list_artifacts(gbm.info.run_id)}
    assert {"pinball_vs_random_walk.png", "fan_SYN000.png", "report.txt", "evaluation.json"} <= arts, arts


def test_evaluate_bad_input(market):
    one_line_error(swb("evaluate", "--model", "oracle", env=FAST), "oracle")
    one_line_error(swb("evaluate", "--model", "naive", "--symbols", "NOPE", env=FAST), "unknown symbol(s) NOPE")
    one_line_error(swb("evaluate", "--model", "naive", env={"SWB_TRAIN_DAYS": "5000"}), "need")


def test_train_register_predict(market, tmp_path):
    r = swb("train", "--model", "gbm", "--json", env=FAST)
    assert r.returncode == 0, r.stderr
    t1 = json.loads(r.stdout)
    assert (t1["version"], t1["alias"], t1["store_version"]) == ("1", "champion", 0)
    t2 = json.loads(swb("train", "--model", "naive", "--json", env=FAST).stdout)
    assert (t2["version"], t2["alias"]) == ("2", "challenger")
    run = _client(market).get_run(t1["run_id"])
    assert run.data.params["data.store_version"] == "0" and run.data.params["model"] == "gbm"
    arts = {a.path for a in _client(market).list_artifacts(t1["run_id"])}
    assert {"fan_1d_SYN000.png", "fan_5d_SYN000.png", "features.txt"} <= arts, arts

    r = swb("predict", "--json")
    assert r.returncode == 0, r.stderr
    p = json.loads(r.stdout)
    last = json.loads(swb("info", "--json").stdout)["symbols"]["SYN000"]["last"]
    assert (p["version"], p["model"], p["date"]) == ("1", "gbm", last)
    assert len(p["predictions"]) == 6
    for row in p["predictions"]:
        for h in (1, 5):
            assert row[f"p10_{h}d"] <= row[f"p50_{h}d"] <= row[f"p90_{h}d"]
            assert row[f"price_p10_{h}d"] <= row["close"] * np.exp(row[f"p50_{h}d"]) + 1e-9 <= row[f"price_p90_{h}d"] + 2e-9
    r = swb("predict", "--model", "challenger", "--date", "2017-06-01", "--json")
    assert r.returncode == 0, r.stderr
    q = json.loads(r.stdout)
    assert (q["version"], q["model"], q["date"]) == ("2", "naive", "2017-06-01")
    text = swb("predict")
    assert text.returncode == 0 and "version 1 (gbm, champion)" in text.stdout and "SYN005" in text.stdout
    one_line_error(swb("predict", "--date", "2017-07-04"), "no stored data on 2017-07-04")
    one_line_error(swb("predict", "--model", "9"), "cannot load stock-forecaster version 9")


def test_champion_loads_in_a_fresh_process(market):
    assert swb("train", "--model", "gbm", env=FAST).returncode == 0
    code = (
        "import os, mlflow, pandas as pd\n"
        "from stock_workbench.store import OhlcvStore\n"
        "from stock_workbench.features import build_features\n"
        "mlflow.set_tracking_uri(f\"sqlite:///{os.environ['SWB_HOME']}/mlflow.db\")\n"
        "m = mlflow.pyfunc.load_model('models:/stock-forecaster@champion')\n"
        "f = build_features(OhlcvStore(os.environ['SWB_HOME'] + '/data').read())\n"
        "p = m.predict(f[m.metadata.get_input_schema().input_names()])\n"
        "last = p[p.date == p.date.max()]\n"
        "assert len(last) == 6 and last.p50_1d.notna().all() and (last.p10_5d <= last.p90_5d).all()\n"
        "print('ok', len(p))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.startswith("ok"), r.stderr[-2000:]


def test_missing_or_unloadable_model(market, home):
    one_line_error(swb("predict"), "no champion model registered")
    assert swb("train", "--model", "naive", env=FAST).returncode == 0
    shutil.rmtree(home / "mlartifacts")     # the registry still names version 1, its files are gone
    one_line_error(swb("predict", "--model", "1"), "cannot load stock-forecaster version 1")   # asked by number: no fallback
    r = swb("predict", env={"SWB_QUIET": ""})   # the champion's files are gone: the rule-based baseline serves, with a warning
    assert r.returncode == 0 and "warning:" in r.stderr and "champion" in r.stderr, r.stderr


def test_train_too_little_history(home):
    assert swb("ingest", "--source", "synthetic", "--symbols", 2, "--years", 1).returncode == 0
    one_line_error(swb("train", "--model", "naive"), "too little history to train: need 757 sessions")
