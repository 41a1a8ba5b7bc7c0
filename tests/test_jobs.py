"swb run eod / retrain through papermill, and swb schedule: reports, idempotency, parameter checks, fail-closed validation, alerts"
import fcntl, json, re, threading, uuid
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
import numpy as np, pandas as pd, pytest
from conftest import swb, tree_digest, write_yahoo_csv
from test_cli import one_line_error
from stock_workbench.config import Settings
from stock_workbench.ledger import PredictionLedger
from stock_workbench.synthetic import market_sessions, synthetic_market

# a small sample market and short windows keep each job to seconds
FAST = {"SWB_SYNTHETIC_SYMBOLS": "6", "SWB_SYNTHETIC_YEARS": "3", "SWB_TRAIN_DAYS": "252", "SWB_REFIT_DAYS": "126",
        "SWB_PROMOTE_EVAL_DAYS": "126", "SWB_BACKTEST_DAYS": "126"}
SESSIONS = market_sessions("2015-01-02", 756)   # the FAST sample market's sessions
LAST = str(SESSIONS[-1].date())


@pytest.fixture
def fast(home, monkeypatch):
    for k, v in FAST.items(): monkeypatch.setenv(k, v)
    monkeypatch.setenv("SWB_STREAM_PREFIX", f"swbtest-jobs-{uuid.uuid4().hex[:8]}")   # the EOD job publishes to Redis: no collisions
    yield home
    import redis
    from stock_workbench.config import Settings
    try:
        s = Settings()
        redis.Redis.from_url(s.redis_url).delete(f"{s.stream_prefix}:forecasts", f"{s.stream_prefix}:exposures")
    except redis.RedisError: pass


def _versions(home):
    from mlflow import MlflowClient
    c = MlflowClient(f"sqlite:///{home}/mlflow.db")
    rm = c.get_registered_model("stock-forecaster")
    return sorted(int(v.version) for v in c.search_model_versions("name='stock-forecaster'")), {k: str(v) for k, v in rm.aliases.items()}


def _outputs(nb_path: Path) -> str:
    "All text the executed notebook printed or displayed"
    out = []
    for c in json.loads(nb_path.read_text())["cells"]:
        for o in c.get("outputs", []):
            if "text" in o: out.append("".join(o["text"]))
            for k in ("text/plain", "text/markdown", "text/html"):
                if k in o.get("data", {}): out.append("".join(o["data"][k]))
    return "\n".join(out)


class _Hook(BaseHTTPRequestHandler):
    got = []
    def do_POST(self):
        type(self).got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
        self.send_response(200); self.end_headers()
    def log_message(self, *a): pass


def test_eod_from_nothing_twice_gives_one_report_and_the_same_forecasts(fast):
    srv = HTTPServer(("127.0.0.1", 0), _Hook); threading.Thread(target=srv.serve_forever, daemon=True).start()
    secret = "T0KEN-s3cret"
    nodb = f"postgresql://postgres@127.0.0.1:5432/swbt_none_{uuid.uuid4().hex[:8]}"   # a server that answers, a database never created
    env = {"SWB_ALERT_WEBHOOK_URL": f"http://127.0.0.1:{srv.server_port}/hooks/{secret}", "SWB_ALERT_MOVE_PCT": "0.01", "SWB_PORTFOLIO_DB_URL": nodb}
    try:
        r = swb("run", "eod", env=env)            # no date: the sample market's last session; no champion: retrain first
        assert r.returncode == 0, r.stderr
        out = fast / "reports" / "eod" / LAST
        assert r.stdout.strip() == f"eod {LAST}: done. Report: {out / 'eod.html'}"
        html = (out / "eod.html").read_text()
        for section in ["Data: store update and validation", "Forecasts from the champion", "running record",
                        "Backtest of the forecast signal", "Alerts", "Serving", "Drift window of champion version 1",
                        "published to the forecast feed", "Model and data lineage", "40 of 40", "buy_and_hold"]:
            assert section in html, section
        assert "EodJob(" not in html and "import " not in html          # no code cells in the analyst's report
        assert html.count("data:image/png;base64") >= 3                # fan chart, calibration, equity curve
        assert f"Portfolios section skipped: <code>the portfolio database {nodb} does not exist: run swb db upgrade</code>" in html   # the job ran on; fault text shown as code
        from stock_workbench.pipeline import report_portfolios
        assert report_portfolios(out / "eod.ipynb") == {"status": "skipped", "reason": f"the portfolio database {nodb} does not exist: run swb db upgrade", "books": []}
        led = PredictionLedger(fast / "predictions")
        first = led.read(source="eod")
        assert sorted(first["symbol"].unique()) == [f"SYN{i:03d}" for i in range(6)] and set(first["horizon"]) == {1, 5}
        assert (first["date"] == pd.Timestamp(LAST)).all()
        assert _versions(fast) == ([1], {"champion": "1"})              # the first version is champion only, never also challenger
        assert set(first["model_version"]) == {"1", "baseline"}         # the rule-based baseline is recorded beside the champion
        drift = json.loads((fast / "serving" / "drift.json").read_text())
        assert (drift["as_of"], drift["model_version"], drift["fallback_level"]) == (LAST, "1", 0) and drift["features"], drift
        assert json.loads((fast / "serving" / "ladder.json").read_text())["as_of"] == LAST
        posts = len(_Hook.got)
        assert posts > 0 and all(p["text"].startswith(f"stock_workbench EOD {LAST}: SYN") for p in _Hook.got)
        store_v, led_v = tree_digest(fast / "data"), led.version
        drift_ladder_before = json.loads((fast / "serving" / "ladder.json").read_text())["before"]

        r = swb("run", "eod", "--date", LAST, env=env)   # the same session again
        assert r.returncode == 0, r.stderr
        pd.testing.assert_frame_equal(led.read(source="eod"), first)    # the same forecasts ...
        assert led.version == led_v and tree_digest(fast / "data") == store_v   # ... and nothing rewritten
        assert len(_Hook.got) == posts                                  # no alert sent twice
        assert sorted(p.name for p in (fast / "reports" / "eod").iterdir()) == [LAST]   # one report, no leftovers
        assert sorted(p.name for p in out.iterdir()) == ["eod.html", "eod.ipynb"]
        assert _versions(fast)[0] == [1]                                 # the champion existed: no second retrain
        assert json.loads((fast / "serving" / "ladder.json").read_text())["before"] == drift_ladder_before   # one observation per session
        seen = r.stdout + r.stderr + html + (out / "eod.ipynb").read_text() + (out / "eod.html").read_text()
        assert secret not in seen and "/hooks/" not in seen               # the webhook address is a secret
    finally:
        srv.shutdown()


def test_eod_scores_yesterday_then_retrain_decides(fast):
    d1, d2 = str(SESSIONS[-2].date()), LAST
    assert swb("run", "eod", "--date", d1).returncode == 0
    r = swb("run", "eod", "--date", d2, "--json")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["ok"] and res["session"] == d2 and Path(res["report"]).exists()
    text = _outputs(Path(res["notebook"]))
    assert "forecast(s) realized at this close" in text
    sc = PredictionLedger(fast / "predictions").read(source="eod", horizon=1)
    assert sorted(sc["date"].unique()) == [pd.Timestamp(d1), pd.Timestamp(d2)]
    # d1's 1-session forecasts were scored in d2's report: the accuracy table has a live (eod) row for version 1
    # (model_version, [model_id,] model, source, horizon): the model's identity column came with issue 17
    assert any(re.match(r"\s*\d+\s+1\s+(?:[0-9a-f]{32}\s+)?gbm\s+eod\s+1\s", l) for l in text.splitlines()), text[-3000:]

    # the champion learned from data up to d1; d2 is fine, but an earlier session would be forecast in sample
    one_line_error(swb("run", "eod", "--date", str(SESSIONS[-3].date())), f"learned from data up to {d1}", "in sample")

    r = swb("run", "retrain", "-p", "model=naive", "--date", d2)   # another model: promoted only on evidence
    assert r.returncode == 0, r.stderr
    nb = fast / "reports" / "retrain" / d2 / "retrain.ipynb"
    text = _outputs(nb)
    versions, aliases = _versions(fast)
    decided = "promoted" if aliases["champion"] == "2" else "kept"
    assert versions == [1, 2] and aliases.get("challenger") == (None if decided == "promoted" else "2")   # never both aliases
    assert f"Decision: {decided}." in text and "Diebold-Mariano" in text
    assert aliases.get("previous_champion") == ("1" if decided == "promoted" else None)
    from mlflow import MlflowClient
    c = MlflowClient(f"sqlite:///{fast}/mlflow.db")
    run = c.get_run(c.get_model_version("stock-forecaster", "2").run_id)
    assert run.data.tags["swb.decision"] == decided and run.data.tags["swb.previous_champion"] == "1"
    assert json.load(open(c.download_artifacts(run.info.run_id, "decision.json")))["decision"] == decided


def test_bad_parameters_are_refused_before_any_work(fast):
    sat = next(d for d in pd.date_range("2016-03-01", periods=7) if d.dayofweek == 5).date()
    for args, needle in [(["-p", "colour=red"], "unknown parameter 'colour' for eod; known: date, symbols, source, model"),
                         (["-p", "symbols"], "expected key=value"),
                         (["-p", "date=2016-03-01"], "give the date as --date"),
                         (["--date", "2016-02-30"], "'2016-02-30' is not a date (YYYY-MM-DD)"),
                         (["--date", str(sat)], "is not a XNYS session"),
                         (["--date", "2030-01-02"], "is after it"),
                         (["--symbols", "SYN001,NOPE"], "unknown symbol(s) NOPE"),
                         (["-p", "source=ftp"], "unknown source 'ftp'")]:
        one_line_error(swb("run", "eod", *args), needle)
    one_line_error(swb("run", "retrain"), "is empty")
    assert [f for f in tree_digest(fast) if not f.endswith(".lock")] == []   # nothing written but the job locks


def test_a_failed_check_stops_the_job_and_writes_nothing(fast, tmp_path, monkeypatch):
    df = synthetic_market(2, 1.2, seed=5)
    folder = tmp_path / "csv"
    for s, g in df.groupby("symbol"): write_yahoo_csv(g.iloc[:-1], folder / f"{s}.csv")   # all but the last day
    assert swb("ingest", "--source", "csv", "--path", folder).returncode == 0
    before = tree_digest(fast / "data")
    last = df["date"].max()
    bad = df[df["symbol"] == "SYN000"].copy()
    bad.loc[bad["date"] == last, "high"] = bad.loc[bad["date"] == last, "low"] / 2    # high below low on the new day
    write_yahoo_csv(bad, folder / "SYN000.csv")
    monkeypatch.setenv("SWB_EOD_SOURCE", "csv"); monkeypatch.setenv("SWB_EOD_CSV_PATH", str(folder))
    line = one_line_error(swb("run", "eod", "--date", str(last.date())), "failed: ValidationFailed: validation failed")
    report = fast / "reports" / "eod" / str(last.date())
    assert str(report / "eod.html") in line
    html = (report / "eod.html").read_text()
    assert "An Exception was encountered" in html and "FAIL" in html and "SYN000" in html    # the cause, at the top, and the rows
    assert html.index("An Exception was encountered") < html.index("FAIL")
    assert "Forecasts from the champion" in html and "Top" not in _outputs(report / "eod.ipynb")  # nothing downstream ran
    assert tree_digest(fast / "data") == before
    assert not (fast / "predictions").exists() and not (fast / "mlflow.db").exists()


def test_a_running_job_blocks_a_second(fast):
    from stock_workbench.schedule import job_lock
    with job_lock(Settings(), "eod"):
        one_line_error(swb("run", "eod"), "job eod is already running")
    assert not (fast / "reports").exists()


def test_schedule_dry_run_lists_trading_day_fires(home):
    r = swb("schedule", "--dry-run", "--next", "7")
    assert r.returncode == 0, r.stderr
    eod = [l for l in r.stdout.splitlines() if l.startswith("eod ") and "(session " in l]
    assert len(eod) == 7 and all("16:30" in l for l in eod)
    days = [pd.Timestamp(l.split("(session ")[1].rstrip(")")) for l in eod]
    assert all(d.dayofweek < 5 for d in days) and days == sorted(days)
    assert any(l.startswith("retrain ") and "18:00" in l for l in r.stdout.splitlines())
    one_line_error(swb("schedule", "--dry-run", env={"SWB_EOD_TIME": "25:00"}), "eod_time")
