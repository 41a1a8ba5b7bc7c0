"swb news replay -> Redis -> swb stream on the real Redis: per-minute sentiment published, duplicates once, no headline text in any key"
import json, math, os, subprocess
import numpy as np, pandas as pd, pytest
from conftest import BIN, swb
from test_cli import one_line_error
from stock_workbench.config import Settings
from stock_workbench.ticks import MINUTE_MS, shard_of, synthetic_ticks, tick_frame
from stock_workbench.replay import last_daily_bars, publish_ticks
from stock_workbench.newsflow import (NEWS_1M_HALF_LIFE_MIN, news1m_key, news_key, news_minute_features, news_stream_entries, publish_news)

SYMS = ["SYN000", "SYN001"]
PERSONAL = ["jane.doe@example.com", "212-555-0143", "@jane_doe", "Jane Doe"]


def run_stream(*args):
    p = subprocess.run([str(BIN / "swb"), "stream", *map(str, args)], capture_output=True, text=True, timeout=180, env=dict(os.environ))
    assert p.returncode == 0 and "Traceback" not in p.stderr, p.stderr
    return p


def session_ticks(s):
    "A session of ticks for SYMS, and one tick per shard an hour later so every candle closes"
    ticks = synthetic_ticks(last_daily_bars(s, SYMS, None), 120, seed=5)
    t = int(ticks["event_ms"].max()) + 3_600_000
    ends = {shard_of(x, s.stream_shards): x for x in SYMS}
    end = tick_frame(list(ends.values()), [t] * len(ends), [1.0] * len(ends), [1] * len(ends), [f"end-{x}" for x in ends.values()])
    return ticks, pd.concat([ticks, end], ignore_index=True)


def news1m(r, s, sym):
    return {k.decode(): v.decode() for k, v in r.hgetall(news1m_key(s, sym)).items()}


def expected_at(news, sym, minute_ms):
    "count, mean, decayed of `sym` for the minute starting at `minute_ms`, straight from the definition"
    x = news[news["symbols"].str.split(",").map(lambda l: sym in l)].drop_duplicates("id")
    t = pd.to_datetime(x["published_at"], utc=True).dt.tz_localize(None).astype("datetime64[ms]").astype("int64").to_numpy()
    v, end = x["sentiment"].to_numpy(), minute_ms + MINUTE_MS
    inm = v[(t >= minute_ms) & (t < end)]
    dec = float(np.sum(np.where(t < end, v * np.exp2(-(end - t) / (NEWS_1M_HALF_LIFE_MIN * MINUTE_MS)), 0.0)))
    return len(inm), (float(inm.mean()) if len(inm) else math.nan), dec


def check_news1m(r, s, news):
    "Each symbol's news1m hash equals the batch definition at its latest minute with news"
    ref = news_minute_features(news)
    for sym in SYMS:
        got, want = news1m(r, s, sym), ref[ref["symbol"] == sym].iloc[-1]
        assert got["minute"] == f"{want['minute']:%Y-%m-%d %H:%M}", (got, want)
        assert int(got["news_1m_count"]) == want["news_1m_count"]
        assert float(got["news_1m_mean"]) == pytest.approx(want["news_1m_mean"], abs=1e-12)
        assert float(got["news_1m_decayed"]) == pytest.approx(want["news_1m_decayed"], abs=1e-12)


def test_stream_publishes_per_minute_sentiment_beside_the_candles(home, rkeys):
    r, keys = rkeys
    s = Settings(home)
    ticks, all_ticks = session_ticks(s)
    m0 = int(ticks["event_ms"].min()); m0 -= m0 % MINUTE_MS
    at = lambda minutes, sec: pd.Timestamp(m0 + minutes * MINUTE_MS + sec * 1000, unit="ms", tz="UTC")
    news = pd.DataFrame({"id": ["n1", "n2", "n3", "n4", "n5"], "published_at": [at(1, 5), at(1, 40), at(3, 0), at(30, 59), at(250, 1)],
                         "symbols": ["SYN000", "SYN000,SYN001", "SYN001", "SYN000", "SYN001"], "sentiment": [0.5, -0.25, 0.75, -1.0, 0.125],
                         "source": ["local"] * 5})
    entries = news_stream_entries(news)
    publish_news(r, entries + entries[:1], news_key(s))                  # n1 twice: it counts once
    r.xadd(news_key(s), {"id": "bad", "published_at": "yesterday", "symbols": "SYN000", "sentiment": "0.1", "source": "local"})
    publish_ticks(r, all_ticks, keys, s.stream_shards)
    p = run_stream("--idle-exit", "2")
    assert "news: 5 headline(s) read" in p.stderr and "(1 duplicate, 1 malformed)" in p.stderr, p.stderr
    check_news1m(r, s, news)
    assert news1m(r, s, "SYN000")["news_headlines"] == "3"
    # each latest hash: the features of its last closed candle's minute, beside the candle's own
    for sym in SYMS:
        lat = {k.decode(): v.decode() for k, v in r.hgetall(keys.latest(sym)).items()}
        m = int(pd.Timestamp(lat["minute"]).value // 10**6)
        c, mean, dec = expected_at(news, sym, m)
        assert int(lat["news_1m_count"]) == c and float(lat["news_1m_decayed"]) == pytest.approx(dec, abs=1e-12), (sym, lat)
        assert (math.isnan(mean) and lat["news_1m_mean"] == "nan") or float(lat["news_1m_mean"]) == pytest.approx(mean), lat
        assert {"close", "vwap", "ret_1m"} & set(lat), lat
    # the minute the test sets up with two headlines: SYN000 at m0 + 1 min
    from stock_workbench.newsflow import NewsMinutes
    nm = NewsMinutes()
    for e in entries: nm.add_entry(e)
    test = nm.at("SYN000", m0 + MINUTE_MS)
    assert test[0] == 2 and test[1] == pytest.approx(0.125)
    # a second run rebuilds the same state from the stream: same hashes, nothing counted twice
    before = {x: {k: v for k, v in news1m(r, s, x).items() if k != "updated_ms"} for x in SYMS}
    run_stream("--idle-exit", "1")
    assert {x: {k: v for k, v in news1m(r, s, x).items() if k != "updated_ms"} for x in SYMS} == before
    # the stream's Prometheus metrics count the entries it read by outcome
    from stock_workbench.stream import StreamJob
    job = StreamJob(Settings(home), model=False)
    job.run(idle_exit_s=1)
    got = {o: job.registry.get_sample_value("swb_stream_news_headlines_total", {"outcome": o}) for o in ("new", "duplicate", "malformed")}
    assert got == {"new": 5.0, "duplicate": 1.0, "malformed": 1.0}, got


def test_no_news_stream_no_news_fields(home, rkeys):
    r, keys = rkeys
    s = Settings(home)
    _, all_ticks = session_ticks(s)
    publish_ticks(r, all_ticks, keys, s.stream_shards)
    p = run_stream("--idle-exit", "1.5")
    assert "news:" not in p.stderr
    lat = {k.decode() for k in r.hgetall(keys.latest("SYN000"))}
    assert lat and not any(k.startswith("news_") for k in lat), lat
    assert not list(r.scan_iter(f"{keys.prefix}:news*"))


NEWS_JSONL = [
    {"time": "2020-01-02T15:31:10Z", "source": "local", "symbols": ["SYN000"],
     "title": "SYN000 beats estimates on strong gains, says Jane Doe (jane.doe@example.com)", "body": "Call 212-555-0143 or @jane_doe."},
    {"time": "2020-01-02T15:31:50Z", "source": "local", "symbols": ["SYN000", "SYN001"],
     "title": "SYN001 warns of losses and weak demand", "body": "Litigation and decline."},
    {"time": "2020-01-02T15:45:00Z", "source": "local", "symbols": ["SYN001"], "title": "SYN001 improvement lifts outlook", "body": ""},
    {"time": "2020-01-02T16:00:00Z", "source": "local", "title": "Markets drift in quiet trade", "body": "no symbols here"},
]


@pytest.fixture
def news_file(tmp_path):
    f = tmp_path / "items.jsonl"
    f.write_text("".join(json.dumps(x) + "\n" for x in NEWS_JSONL))
    return f


def all_values(r, prefix):
    "Every key and value under `prefix`, as text (hashes, streams, strings, lists)"
    out = []
    for k in r.scan_iter(f"{prefix}:*", count=1000):
        t = r.type(k).decode(); out.append(k.decode())
        if t == "hash": out += [x.decode("utf-8", "replace") for kv in r.hgetall(k).items() for x in kv]
        elif t == "stream": out += [x.decode("utf-8", "replace") for _, f in r.xrange(k) for kv in f.items() for x in kv]
        elif t == "string": out.append(r.get(k).decode("utf-8", "replace"))
        elif t == "list": out += [x.decode("utf-8", "replace") for x in r.lrange(k, 0, -1)]
    return "\n".join(out)


def test_replay_stored_headlines_to_the_stream_without_their_text(home, rkeys, news_file, monkeypatch):
    monkeypatch.setenv("SWB_SYMBOLS", "SYN000,SYN001")   # given symbols are kept only if in the universe
    from stock_workbench.news import NewsStore
    r, keys = rkeys
    s = Settings(home)
    assert swb("news", "ingest", "--path", news_file).returncode == 0
    stored = NewsStore.from_settings(s).read()
    assert len(stored) == 4
    rep = swb("news", "replay", "--json")
    assert rep.returncode == 0, rep.stderr
    out = json.loads(rep.stdout)
    assert (out["read"], out["published"], out["market_wide"], out["key"]) == (4, 3, 1, news_key(s)), out
    fields = [{k.decode(): v.decode() for k, v in f.items()} for _, f in r.xrange(news_key(s))]
    assert all(set(f) == {"id", "published_at", "symbols", "sentiment", "source"} for f in fields), fields
    want = stored[stored["symbols"] != ""]
    assert [f["id"] for f in fields] == list(want["id"]) and [float(f["sentiment"]) for f in fields] == list(want["sentiment"])
    p = run_stream("--idle-exit", "1.5")
    assert "news: 3 headline(s) read" in p.stderr, p.stderr
    check_news1m(r, s, stored)
    # replayed twice: the stream counts each headline once
    assert swb("news", "replay", "--start", "2020-01-02", "--end", "2020-01-02").returncode == 0
    p = run_stream("--idle-exit", "1")
    assert "news: 3 headline(s) read" in p.stderr and "(3 duplicate" in p.stderr, p.stderr
    check_news1m(r, s, stored)
    # nothing of any headline's text, author or personal data in any key of the prefix
    text = all_values(r, keys.prefix)
    for x in PERSONAL + ["beats estimates", "weak demand", "improvement lifts", "Markets drift", "Litigation"]:
        assert x not in text, x


def test_replay_path_is_scrubbed_and_scored_like_ingest(home, rkeys, news_file, monkeypatch):
    monkeypatch.setenv("SWB_SYMBOLS", "SYN000,SYN001")   # given symbols are kept only if in the universe
    from stock_workbench.news import NewsStore
    r, keys = rkeys
    s = Settings(home)
    rep = swb("news", "replay", "--path", news_file, "--json")
    assert rep.returncode == 0, rep.stderr
    assert json.loads(rep.stdout)["published"] == 3
    got = {f[b"id"].decode(): float(f[b"sentiment"]) for _, f in r.xrange(news_key(s))}
    assert NewsStore.from_settings(s).read().empty                      # --path publishes; it stores nothing
    assert swb("news", "ingest", "--path", news_file).returncode == 0    # the same file through ingest: same ids, same scores
    st = NewsStore.from_settings(s).read()
    assert got == dict(zip(st[st["symbols"] != ""]["id"], st[st["symbols"] != ""]["sentiment"])), (got, st[["id", "sentiment"]])
    text = all_values(r, keys.prefix)
    for x in PERSONAL + ["beats estimates"]: assert x not in text, x
    for x in PERSONAL: assert x not in rep.stdout + rep.stderr


def test_replay_errors_are_one_line(home, rkeys, tmp_path):
    one_line_error(swb("news", "replay", env={"SWB_REDIS_URL": "redis://127.0.0.1:1/0"}), "cannot reach Redis at 127.0.0.1:1/0")
    one_line_error(swb("news", "replay", "--speed", "-1"), "--speed must be 0")
    one_line_error(swb("news", "replay", "--path", tmp_path / "nope.jsonl"), "nope.jsonl")
    one_line_error(swb("news", "replay", "--start", "soon"), "--start soon")
    r = swb("news", "replay", "--json")                                 # no news store yet: nothing to publish, not an error
    assert r.returncode == 0 and json.loads(r.stdout)["published"] == 0, r.stderr
