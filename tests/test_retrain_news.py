"Retrain keeps the champion's feature set: a base+news champion's challenger reads the news features too, unless `-p features=base` says otherwise"
import json, os, shutil
import numpy as np, pytest
from conftest import built_once, swb
from stock_workbench.config import Settings
from stock_workbench.newsfeatures import NEWS_FEATURES, synthetic_news, write_news_jsonl

FAST = {"SWB_TRAIN_DAYS": "252", "SWB_REFIT_DAYS": "126", "SWB_PROMOTE_EVAL_DAYS": "126"}   # small windows keep the walk-forward quick


def _env(home): return {"SWB_HOME": str(home), "SWB_QUIET": "1", "MLFLOW_DISABLE_TELEMETRY": "true", **FAST}


def _make(folder):
    "6 symbols x 4 years, synthetic news through `swb news ingest`, and a gbm champion trained with --features base+news"
    home = folder / "home"
    r = swb("ingest", "--source", "synthetic", "--symbols", 6, "--years", 4, "--seed", 13, env=_env(home))
    assert r.returncode == 0, r.stderr
    from stock_workbench.store import OhlcvStore
    panel = OhlcvStore.from_settings(Settings(home=home, env={})).read()
    n = write_news_jsonl(synthetic_news(panel, signal=0.3, seed=7, per_day=0.5, market_per_day=1.0), folder / "news.jsonl")
    r = swb("news", "ingest", "--path", folder / "news.jsonl", "--json", env=_env(home))
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["stored"] == n
    r = swb("train", "--model", "gbm", "--features", "base+news", "--json", env=_env(home))
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)["version"]


@pytest.fixture(scope="module")
def champion_home(tmp_path_factory):
    "The built home (shared, never changed: each test copies it)"
    with pytest.MonkeyPatch.context() as mp:   # this module's homes only, never the caller's settings
        for k in [k for k in os.environ if k.startswith("SWB_")]: mp.delenv(k)
        mp.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
        folder, version = built_once(tmp_path_factory, "retrain-news", _make)
        assert version == "1"
        yield folder / "home"


@pytest.fixture
def home(champion_home, tmp_path, monkeypatch):
    "A copy of the home with a base+news champion, this test's own"
    for k in [k for k in os.environ if k.startswith("SWB_")]: monkeypatch.delenv(k)
    monkeypatch.setenv("MLFLOW_DISABLE_TELEMETRY", "true")
    h = tmp_path / "home"
    shutil.copytree(champion_home, h)
    return h


def _version(home, v):
    "(input columns, decision.json) of registered version `v`"
    from stock_workbench import registry as reg
    s = Settings(home=home, env={})
    lm = reg.load_version(s, v)
    dj = json.load(open(reg.client(s).download_artifacts(lm.model_id, "decision.json")))
    return lm.model.metadata.get_input_schema().input_names(), dj


def _report(out): return open(out["report"], encoding="utf-8").read()


def test_retrain_keeps_the_news_features(home):
    r = swb("run", "retrain", "-p", "model=gbm", "--json", env=_env(home))
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    cols, dj = _version(home, "2")
    assert [c for c in cols if c.startswith("news_")] == NEWS_FEATURES   # the challenger reads the news features, as the champion does
    assert dj["feature_sets"] == {"challenger": "base+news", "champion": "base+news"} and dj["features"] == "champion"
    assert dj["news_features"] == NEWS_FEATURES and dj["lineage"]["feature_set"] == "base+news"
    assert dj["same_spec"] is True and dj["decision"] == "promoted"   # the same specification on the same features: a scheduled refit
    html = _report(out)
    assert "challenger features" in html and "base+news (news_count" in html and "), the champion's<" in html
    r = swb("predict", "--json", env=_env(home))                        # the new champion forecasts with its news features
    assert r.returncode == 0, r.stderr
    pred = json.loads(r.stdout)
    assert pred["version"] == "2" and len(pred["predictions"]) == 6 and all(np.isfinite(p["p50_1d"]) for p in pred["predictions"])


def test_retrain_override_to_base(home):
    r = swb("run", "retrain", "-p", "model=gbm", "-p", "features=base", "--json", env=_env(home))
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    cols, dj = _version(home, "2")
    assert not [c for c in cols if c.startswith("news_")]               # the challenger reads the base features only
    assert dj["feature_sets"] == {"challenger": "base", "champion": "base+news"} and dj["features"] == "base"
    assert dj["same_spec"] is False                                     # other features: the challenger must earn its place
    assert {"champion", "challenger"} <= set(dj["scores"])              # both arms evaluated walk-forward, on the same rows
    assert dj["evidence"]["rows"] > 0 and dj["scores"]["champion"]["pinball"] != dj["scores"]["challenger"]["pinball"]
    html = _report(out)
    assert "as asked (features=base)" in html and "champion features" in html


def test_retrain_without_the_news_store_is_one_line(home):
    shutil.rmtree(home / "news")
    r = swb("run", "retrain", "-p", "model=gbm", env=_env(home))
    assert r.returncode == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.stderr, r.stderr
    assert "champion version 1 reads the news features" in lines[0] and "swb news ingest" in lines[0], lines[0]
    from stock_workbench import registry as reg
    assert reg.alias_version(Settings(home=home, env={}), "challenger") is None   # nothing registered
    r = swb("run", "retrain", "-p", "model=gbm", "-p", "features=news", env=_env(home))
    assert r.returncode == 1 and "-p features=news: must be champion, base or base+news" in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
