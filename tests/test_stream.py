"swb replay / swb stream on the real Redis: stream equals batch, predictions and alerts, the stream's drift, SIGKILL mid-stream, Redis outages, metrics"
import json, os, signal, socket, subprocess, sys, threading, time, urllib.request
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
import numpy as np, pandas as pd, pytest, redis
from conftest import BIN, swb
from test_cli import one_line_error
from stock_workbench.config import Settings
from stock_workbench.ticks import (INTRADAY_FEATURES, MINUTE_MS, candle_features, candles_from_ticks, late_ticks, shard_of,
                                   synthetic_ticks, tick_frame)
from stock_workbench.leases import StreamKeys
from stock_workbench.candles import CandleStore, read_candles
from stock_workbench.replay import last_daily_bars as _last_bars, publish_ticks

URL = "redis://127.0.0.1:6379/0"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); return s.getsockname()[1]




def start_stream(*args, env=None):
    return subprocess.Popen([str(BIN / "swb"), "stream", *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**os.environ, **(env or {})})


def end_ticks(ticks, shards):
    "One tick per shard an hour after the session: every watermark passes every candle of the session"
    t = int(ticks["event_ms"].max()) + 3_600_000
    syms = {shard_of(s, shards): s for s in sorted(set(ticks["symbol"]))}
    return tick_frame(list(syms.values()), [t] * len(syms), [1.0] * len(syms), [1] * len(syms), [f"end-{s}" for s in syms.values()])


def batch(ticks, settings):
    "The batch path on the same ticks: duplicates out, late ticks out, candles, features"
    t = ticks.drop_duplicates("tick_id", keep="first").reset_index(drop=True)
    t = t[~late_ticks(t, int(settings.allowed_lateness_s * 1000), settings.stream_shards)]
    c = candles_from_ticks(t)
    return c, candle_features(c)


class Hook(BaseHTTPRequestHandler):
    got = []
    def do_POST(self):
        Hook.got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"])))["text"])
        self.send_response(200); self.end_headers()
    def log_message(self, *a): pass


def champion(home, reference=False):
    "Register a drift forecaster as champion, fitted on the sample market (fast); `reference`: with its drift reference, as `swb train` logs it"
    from stock_workbench import registry as reg
    from stock_workbench.features import MODEL_FEATURES, add_targets, build_features
    from stock_workbench.lifecycle import fit_latest, training_reference
    from stock_workbench.synthetic import synthetic_market
    s = Settings(home)
    data = add_targets(build_features(synthetic_market(3, s.synthetic_years, s.synthetic_seed)), (1, 5))
    models, spans = fit_latest(data, "drift", (1, 5), 252)
    ref = training_reference(data, list(MODEL_FEATURES), spans) if reference else None
    r = reg.log_forecaster(s, models, data[data["date"] == data["date"].max()], list(MODEL_FEATURES), {"symbols": 3, **spans},
                           drift_reference=ref)
    reg.set_alias(s, "champion", r["version"])
    return r["version"]


def pending(r, keys, s):
    "Ticks read and not acknowledged, over all shards"
    n = 0
    for k in range(s.stream_shards):
        try: n += r.xpending(keys.ticks(k), s.stream_group)["pending"]
        except redis.ResponseError: pass   # no group yet
    return n


def test_replay_dead_redis_is_one_line_error(home):
    r = swb("replay", "--universe", "2", "--ticks", "10", env={"SWB_REDIS_URL": "redis://127.0.0.1:1/0"})
    one_line_error(r, "cannot reach Redis at 127.0.0.1:1/0")


def test_stream_equals_batch_with_predictions_alerts_and_metrics(home, rkeys, monkeypatch, tmp_path):
    r, keys = rkeys
    version = champion(home)
    srv = HTTPServer(("127.0.0.1", 0), Hook); threading.Thread(target=srv.serve_forever, daemon=True).start()
    Hook.got = []
    port = free_port()
    monkeypatch.setenv("SWB_ALERT_WEBHOOK_URL", f"http://127.0.0.1:{srv.server_port}/hook")
    monkeypatch.setenv("SWB_ALERT_MOVE_PCT", "0.000001")      # every prediction is an alert: one per symbol and horizon
    monkeypatch.setenv("SWB_MOVE_ALERT_PCT", "0.4"); monkeypatch.setenv("SWB_MOVE_ALERT_MINUTES", "5")
    monkeypatch.setenv("SWB_METRICS_PORT", str(port)); monkeypatch.setenv("SWB_STREAM_PREDICT_S", "0.2")
    s = Settings(home)
    bars = _last_bars(s, ["SYN000", "SYN001", "SYN002"], None)
    ticks = synthetic_ticks(bars, 600, seed=7)
    dup, late = ticks.iloc[[100, 900]], ticks.iloc[[50]].assign(tick_id="late-1")   # resent ticks, and one 50 rows too late
    ticks = pd.concat([ticks.iloc[:1000], dup, ticks.iloc[1000:1200], late, ticks.iloc[1200:]], ignore_index=True)
    csv = tmp_path / "ticks.csv"
    ticks.assign(event_time=ticks["event_ms"]).drop(columns="event_ms").to_csv(csv, index=False)
    assert swb("replay", "--csv", csv).returncode == 0
    publish_ticks(r, end_ticks(ticks, s.stream_shards), keys, s.stream_shards)
    p = start_stream("--idle-exit", "2")
    text = ""
    for _ in range(100):    # the endpoint serves while the job runs
        try: text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
        except OSError: time.sleep(0.1); continue
        if "swb_stream_tick_to_prediction_seconds_count" in text and 'swb_stream_ticks_total{outcome="read"} 0.0' not in text: break
        time.sleep(0.1)
    out, err = p.communicate(timeout=90)
    assert p.returncode == 0, err
    for m in ("swb_stream_ticks_total", "swb_stream_ticks_per_second", "swb_stream_consumer_lag", "swb_stream_tick_to_prediction_seconds_bucket"):
        assert m in text, m
    assert "Traceback" not in err and "late tick late-1" in err, err
    ref_c, ref_f = batch(ticks, s)
    got = read_candles(r, keys, ["SYN000", "SYN001", "SYN002"])
    pd.testing.assert_frame_equal(got, ref_c)                            # candles: stream == batch, bit for bit
    pd.testing.assert_frame_equal(CandleStore.from_settings(s).read(), ref_c)   # and the offline store holds them once the job stopped
    assert r.llen(keys.export) == 0
    stats = {k.decode(): int(v) for k, v in r.hgetall(keys.stats).items()}
    assert stats == {"merged": len(ticks) - 3, "late": 1, "duplicate": 2, "candles": len(ref_c)}, stats
    for sym in ("SYN000", "SYN001", "SYN002"):
        lat = {k.decode(): v.decode() for k, v in r.hgetall(keys.latest(sym)).items()}
        last = ref_f[ref_f["symbol"] == sym].iloc[-1]
        for f in INTRADAY_FEATURES:                                      # features: stream == batch
            assert float(lat[f]) == last[f] or (np.isnan(float(lat[f])) and np.isnan(last[f])), (sym, f)
        assert lat["minute"] == f"{last['minute']:%Y-%m-%d %H:%M}" and lat["model_version"] == version
        assert {"pred_p50_1d", "pred_p50_5d", "pred_move_pct_1d", "pred_close_5d"} <= set(lat), lat
    # the forecast feed: every prediction written to a `latest` hash is also an entry of <prefix>:forecasts, source stream
    from stock_workbench.routing import feed_key, parse_feed
    feed = [parse_feed(f) for _, f in r.xrange(feed_key(s))]
    assert feed and {f["source"] for f in feed} == {"stream"} and {f["model_version"] for f in feed} == {version}
    for sym in ("SYN000", "SYN001", "SYN002"):
        lat = {k.decode(): v.decode() for k, v in r.hgetall(keys.latest(sym)).items()}
        last = [f for f in feed if f["symbol"] == sym][-1]
        assert last["p50_1d"] == float(lat["pred_p50_1d"]) and last["p90_5d"] == float(lat["pred_p90_5d"]), (last, lat)
        assert last["as_of"] == pd.Timestamp(lat["pred_minute"]).strftime("%Y-%m-%dT%H:%M"), (last, lat)
    # alerts: one per symbol and horizon for predictions, one per price-move event
    time.sleep(1.5)
    pred = [t for t in Hook.got if "predicted" in t]
    assert len(pred) == 6 and len(set(pred)) == 6, Hook.got
    moves = [t for t in Hook.got if " moved " in t]
    assert moves and len(moves) == len(set(moves)) == expected_move_events(ref_c, 0.4, 5), moves
    n = len(Hook.got)
    assert start_stream("--idle-exit", "1").wait(60) == 0       # a second run: nothing new, nothing sent again
    time.sleep(0.5)
    assert len(Hook.got) == n
    srv.shutdown()


def expected_move_events(c, pct, minutes):
    "Onsets of runs of candles that moved at least `pct`% against a candle of the previous `minutes` minutes, per symbol"
    n = 0
    for _, g in c.groupby("symbol"):
        t, cl, on = g["minute"].to_numpy().astype("datetime64[ms]").astype("int64"), g["close"].to_numpy(), False
        for i in range(len(g)):
            ref = [j for j in range(i) if t[i] - minutes * MINUTE_MS <= t[j]]
            hit = bool(ref) and max(abs(cl[i] / cl[j] - 1) for j in ref) * 100 >= pct
            n += hit and not on; on = hit
    return n


def stream_drift_run(r, keys, s, bars, home, tmp_path):
    "One session of ticks from the daily `bars` replayed by `swb replay --csv` at 5,000 x real time into a running `swb stream`; its drift record"
    for k in r.scan_iter(f"{keys.prefix}:*", count=1000): r.delete(k)   # a fresh stream: the same minutes again are no late ticks
    (home / "serving" / "drift_stream.json").unlink(missing_ok=True)
    ticks = synthetic_ticks(bars, 300, seed=11)
    csv = tmp_path / "drift-ticks.csv"
    ticks.assign(event_time=ticks["event_ms"]).drop(columns="event_ms").to_csv(csv, index=False)
    p = start_stream("--idle-exit", "3")
    assert swb("replay", "--csv", csv, "--speed", "5000").returncode == 0   # ~4.7 s: the stream predicts (and keeps rows) all along
    publish_ticks(r, end_ticks(ticks, s.stream_shards), keys, s.stream_shards)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 0 and "Traceback" not in err and "stream drift not written" not in err and "predictions failed" not in err, err
    return json.loads((home / "serving" / "drift_stream.json").read_text())


def test_stream_drift_per_champion_feature_calm_and_shifted(home, rkeys, monkeypatch, tmp_path):
    from stock_workbench import registry as reg
    from stock_workbench.drift import read_drift
    from stock_workbench.features import MODEL_FEATURES
    r, keys = rkeys
    version = champion(home, reference=True)
    monkeypatch.setenv("SWB_STREAM_PREDICT_S", "0.2")
    s = Settings(home)
    ref = reg.drift_reference(s, version)
    assert ref and set(ref) <= set(MODEL_FEATURES)
    bars = _last_bars(s, None, 10)
    day = f"{pd.Timestamp(bars['date'].iloc[0]):%Y-%m-%d}"
    calm = stream_drift_run(r, keys, s, bars, home, tmp_path)
    assert (calm["source"], calm["ladder"], calm["judged"], calm["model_version"], calm["as_of"]) == ("stream", "eod only", False, version, day), calm
    psi = {f["feature"]: f["psi"] for f in calm["features"]}
    assert list(psi) == list(ref) and all(v is not None and v >= 0 for v in psi.values()), psi   # a PSI per champion feature of the reference
    w = calm["window"]
    assert w["symbols"] == 10 and w["minutes"] >= 3 and w["rows"] >= 20 and w["first_minute"].startswith(day) and w["first_minute"] < w["last_minute"], w
    got = read_drift(s)
    assert got["stream"] == calm and "as_of" not in got, got     # what /v1/models and the dashboard read: no EOD window yet, the stream's under `stream`
    up = {c: bars[c] * 1.3 for c in ("open", "high", "low", "close")}   # the session opens and trades 30 % above the stored history
    shifted = stream_drift_run(r, keys, s, bars.assign(**up), home, tmp_path)
    spsi = {f["feature"]: f["psi"] for f in shifted["features"]}
    assert spsi["ret_1d"] > psi["ret_1d"] + 1 and shifted["status"] == "alert", (psi["ret_1d"], spsi["ret_1d"], shifted["status"])
    assert np.mean(list(spsi.values())) > np.mean(list(psi.values())), (psi, spsi)


def test_sigkill_mid_stream_loses_nothing_counts_nothing_twice(home, rkeys, monkeypatch):
    r, keys = rkeys
    monkeypatch.setenv("SWB_STREAM_LEASE_MS", "1000"); monkeypatch.setenv("SWB_STREAM_BATCH", "200")
    monkeypatch.setenv("SWB_CANDLE_EXPORT_S", "0.3")       # c1 exports while it runs, so the kill may land mid-export
    s = Settings(home)
    bars = _last_bars(s, None, 12)
    ticks = synthetic_ticks(bars, 800, seed=3)              # 9,600 ticks over a session
    p1 = start_stream("--consumer", "c1")
    rep = subprocess.Popen([str(BIN / "swb"), "replay", "--universe", "12", "--ticks", str(len(ticks)), "--seed", "3", "--speed", "6000"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for _ in range(300):   # wait until c1 has closed candles AND holds unacknowledged ticks: a real mid-stream crash
        pend = pending(r, keys, s)
        if int(r.hget(keys.stats, "candles") or 0) > 50 and pend > 0: break
        time.sleep(0.05)
    assert pend > 0 and rep.poll() is None
    p1.send_signal(signal.SIGKILL); p1.wait()
    p2 = start_stream("--consumer", "c2", "--idle-exit", "2")   # another consumer: takes the leases when they expire, XAUTOCLAIMs c1's ticks
    assert rep.wait(60) == 0, rep.stderr.read()
    publish_ticks(r, end_ticks(ticks, s.stream_shards), keys, s.stream_shards)
    out, err = p2.communicate(timeout=90)
    assert p2.returncode == 0 and "Traceback" not in err, err
    ref_c, _ = batch(ticks, s)
    pd.testing.assert_frame_equal(read_candles(r, keys, sorted(bars["symbol"])), ref_c)
    pd.testing.assert_frame_equal(CandleStore.from_settings(s).read(), ref_c)   # offline: c1's exports and what c2 exported, each once
    stats = {k.decode(): int(v) for k, v in r.hgetall(keys.stats).items()}
    assert stats == {"merged": len(ticks), "candles": len(ref_c)}, stats   # none lost, none twice, none late
    assert pending(r, keys, s) == len(end_ticks(ticks, s.stream_shards))   # only the end ticks, in their still-open candles


def test_redis_outage_retries_with_backoff_then_resumes(home, rkeys):
    r, keys = rkeys
    port = free_port()
    env = {"SWB_REDIS_URL": f"redis://127.0.0.1:{port}/0", "SWB_REDIS_RETRY_MAX_S": "1"}
    p = start_stream("--consumer", "c1", env=env)
    time.sleep(3.5)
    assert p.poll() is None                                   # still running: it waits, it does not exit
    srv = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        r2 = redis.Redis(port=port)
        for _ in range(100):
            try: r2.ping(); break
            except redis.ConnectionError: time.sleep(0.05)
        s = Settings(home, env={**os.environ, **env})
        t = synthetic_ticks(_last_bars(s, ["SYN000"], None), 200, seed=1)
        publish_ticks(r2, pd.concat([t, end_ticks(t, s.stream_shards)], ignore_index=True), keys, s.stream_shards)
        for _ in range(100):
            if int(r2.hget(keys.stats, "merged") or 0) == len(t): break
            time.sleep(0.1)
        p.send_signal(signal.SIGTERM)
        out, err = p.communicate(timeout=30)
    finally:
        srv.terminate(); srv.wait()
    assert p.returncode == 0 and "Traceback" not in err, err
    lines = err.strip().splitlines()
    retries = [l for l in lines if "unavailable" in l]
    assert retries[0] == f"swb: stream: Redis at 127.0.0.1:{port}/0 unavailable (ConnectionError); retry 1 in 0.5 s", retries
    assert 2 <= len(retries) <= 8, retries                    # 0.5 s, then 1 s apart (capped): no spinning
    assert any("is back" in l for l in lines), lines
    assert "201 ticks read" in out, out
