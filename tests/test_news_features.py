"Point-in-time news features end to end: synthetic market and news through `swb news ingest`, `--features base+news` in evaluate and train, predict"
import json, os, shutil
import numpy as np, pandas as pd, pytest
from conftest import swb
from stock_workbench.config import Settings
from stock_workbench.newsfeatures import NEWS_FEATURES, add_news_features, news_cutoffs, read_news, synthetic_news, write_news_jsonl

FAST = {"SWB_TRAIN_DAYS": "252", "SWB_REFIT_DAYS": "126"}   # small windows keep these tests quick


def _env(home): return {"SWB_HOME": str(home), "SWB_QUIET": "1", **FAST}


@pytest.fixture(scope="module")
def news_home(tmp_path_factory):
    "A home with a synthetic market (4 symbols x 3 years) and synthetic news with a signal, ingested by `swb news ingest`"
    with pytest.MonkeyPatch.context() as mp:   # this module's homes only, never the caller's settings
        for k in [k for k in os.environ if k.startswith("SWB_")]: mp.delenv(k)
        mp.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        yield _build(tmp_path_factory.mktemp("newshome"))


def _build(home):
    r = swb("ingest", "--source", "synthetic", "--symbols", 4, "--years", 3, "--seed", 11, env=_env(home))
    assert r.returncode == 0, r.stderr
    from stock_workbench.store import OhlcvStore
    panel = OhlcvStore.from_settings(Settings(home=home, env={})).read()
    items = synthetic_news(panel, signal=0.3, seed=5, per_day=1.0, market_per_day=1.0)
    path = home.parent / "news.jsonl"
    n = write_news_jsonl(items, path)
    r = swb("news", "ingest", "--path", path, "--json", env=_env(home))
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["stored"] == n, {k: summary[k] for k in ("read", "stored", "duplicates", "skipped_by_reason")}
    return home


def test_stored_news_features_no_look_ahead(news_home):
    "Features from the store; a headline published at or after t's cut-off (here: every one after it rescored, plus new ones) moves nothing at t"
    s = Settings(home=news_home, env={})
    news = read_news(s)
    from stock_workbench.store import OhlcvStore
    panel = OhlcvStore.from_settings(s).read()[["symbol", "date"]]
    full = add_news_features(panel, news, s)
    assert full["news_count"].sum() > 0 and full["news_mkt_count"].gt(0).mean() > 0.5
    days = np.sort(panel["date"].unique())
    cuts = news_cutoffs(days[0], days[-1], s.exchange, s.news_latency_min).set_index("session")["cutoff"]
    rng = np.random.default_rng(0)
    for t in days[[10, 300, 700]]:
        after = news["published_at"] >= cuts[t]
        extra = pd.DataFrame({"published_at": [cuts[t], cuts[t] + pd.Timedelta(hours=30)], "symbols": ["SYN000", ""], "sentiment": [-1.0, 1.0]})
        junk = pd.concat([news.assign(sentiment=np.where(after, rng.uniform(-1, 1, len(news)), news["sentiment"])), extra], ignore_index=True)
        f = add_news_features(panel, junk, s)
        before = (panel["date"] <= t).to_numpy()
        pd.testing.assert_frame_equal(f[before], full[before], check_exact=True)
        assert not f.loc[~before, NEWS_FEATURES].equals(full.loc[~before, NEWS_FEATURES])


def test_evaluate_with_news_features(news_home):
    r = swb("evaluate", "--model", "gbm", "--features", "base+news", "--json", env=_env(news_home))
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["feature_set"] == "base+news" and res["news_features"] == NEWS_FEATURES
    gbm = res["models"]["gbm"]
    assert gbm["verdict"] and {"naive", "volq", "ewma", "garch"} <= set(res["models"])
    r = swb("evaluate", "--model", "gbm", "--json", env=_env(news_home))   # the default: base, no news columns
    assert r.returncode == 0, r.stderr
    base = json.loads(r.stdout)
    assert base["feature_set"] == "base" and base["news_features"] == []


def test_train_news_then_predict(news_home, tmp_path):
    home = tmp_path / "home"
    shutil.copytree(news_home, home)
    r = swb("train", "--model", "gbm", "--features", "base+news", "--json", env=_env(home))
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["feature_set"] == "base+news"
    from stock_workbench.registry import load_forecaster
    model, _ = load_forecaster(Settings(home=home, env={}), "champion")
    cols = model.metadata.get_input_schema().input_names()
    assert [c for c in cols if c.startswith("news_")] == NEWS_FEATURES       # its MLflow input schema lists the news columns
    r = swb("predict", "--json", env=_env(home))                             # predict adds them from the news store
    assert r.returncode == 0, r.stderr
    pred = json.loads(r.stdout)
    assert len(pred["predictions"]) == 4 and all(np.isfinite(p["p50_1d"]) for p in pred["predictions"])
    from stock_workbench.pipeline import score_symbols                      # the EOD job's and serve's on-demand path
    from stock_workbench.registry import load_champion
    fc = score_symbols(Settings(home=home, env={}), load_champion(Settings(home=home, env={})), None)
    np.testing.assert_allclose(fc.sort_values("symbol")["p50_1d"], [p["p50_1d"] for p in sorted(pred["predictions"], key=lambda p: p["symbol"])])
    shutil.rmtree(home / "news")                                             # no news store: one line, no traceback
    r = swb("predict", env=_env(home))
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "no news store" in lines[0] and "Traceback" not in r.stderr, r.stderr
