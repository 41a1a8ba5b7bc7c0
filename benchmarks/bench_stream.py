"""The streaming job on the real Redis: sustained throughput of one consumer next to a bare XREADGROUP+XACK loop, and
tick-to-online-store latency at a steady rate.

Prints measured figures and ratios; asserts nothing. Usage: python benchmarks/bench_stream.py [--symbols 500] [--dense 25] [--ticks 100000] [--repeat 3]
    [--rate 5000] [--seconds 20] [--batch 1000] [--no-model] [--latency-only]
1. Throughput: the same ticks (4 shards) are published to two key prefixes, three ways: the latency scenario's ticks (--rate ticks/s
   over --symbols symbols for --seconds of a live session, about 200 ticks per candle) read as fast as possible; --ticks ticks of a
   whole session over --dense symbols (about 10 ticks per candle); and --ticks ticks of a whole session over --symbols symbols (about
   every tick closes a 1-minute candle: the worst case). The reference is a bare loop (XREADGROUP over the shards, COUNT --batch/4 per
   stream as the job reads, one pipelined XACK per read, nothing else); the job is one `StreamJob` consumer with the same batch size
   doing everything: late/duplicate checks, candles, features, the atomic commit that writes them and acknowledges, the latest state,
   the offline-store queue, and predictions of the champion (a drift forecaster registered in a temporary home) refreshed every
   `stream_predict_s`. Its one-time start (model load, daily history of the symbols) is done before the clock starts. Bare and job
   alternate --repeat times; medians are printed with every run.
2. Latency: --rate ticks/s over --symbols symbols in real time (a session's ticks squeezed into --seconds of event time from 09:30:50,
   so a minute ends and every symbol's candle closes mid-run), published at speed 1 by a separate producer process while one consumer
   runs; each tick's latency is from its XADD (the stream entry id, Redis' clock) to the end of the commit that put its price in
   `swb:latest:<SYM>`.
Every key lives under a random prefix, deleted at the end.
"""
import argparse, math, os, statistics, subprocess, sys, tempfile, threading, time, uuid
from pathlib import Path
import numpy as np, pandas as pd, redis

ap = argparse.ArgumentParser()
ap.add_argument("--symbols", type=int, default=500)
ap.add_argument("--ticks", type=int, default=100_000)
ap.add_argument("--repeat", type=int, default=3, help="alternating bare and job runs; medians printed (a shared machine is noisy)")
ap.add_argument("--rate", type=int, default=5000)
ap.add_argument("--seconds", type=float, default=20)
ap.add_argument("--batch", type=int, default=1000)
ap.add_argument("--dense", type=int, default=25, help="symbols of the second throughput run (more ticks per candle)")
ap.add_argument("--no-model", action="store_true", help="no champion: candles and features only")
ap.add_argument("--latency-only", action="store_true")
a = ap.parse_args()

home = Path(tempfile.mkdtemp())
os.environ.update(SWB_HOME=str(home), SWB_QUIET="1", SWB_METRICS_PORT="0", SWB_STREAM_BATCH=str(a.batch), SWB_STREAM_SHARDS="4")
from stock_workbench.config import Settings
from stock_workbench.stream import StreamJob
from stock_workbench.leases import StreamKeys, connect_redis
from stock_workbench.replay import last_daily_bars as _last_bars, publish_ticks
from stock_workbench.ticks import synthetic_ticks

R = redis.Redis.from_url(Settings().redis_url)
tag = uuid.uuid4().hex[:8]

def cleanup(prefix):
    for k in R.scan_iter(f"{prefix}:*", count=5000): R.delete(k)

def champion():
    from stock_workbench import registry as reg
    from stock_workbench.features import MODEL_FEATURES, add_targets, build_features
    from stock_workbench.lifecycle import fit_latest
    from stock_workbench.synthetic import synthetic_market
    s = Settings()
    data = add_targets(build_features(synthetic_market(a.symbols, s.synthetic_years, s.synthetic_seed)), (1, 5))
    models, spans = fit_latest(data, "drift", (1, 5), 252)
    v = reg.log_forecaster(s, models, data[data["date"] == data["date"].max()].head(5), list(MODEL_FEATURES), {"symbols": a.symbols, **spans})["version"]
    reg.set_alias(s, "champion", v)

def job(prefix, symbols):
    "A consumer with its one-time start done: model loaded, daily history read"
    os.environ["SWB_STREAM_PREFIX"] = prefix
    s = Settings()
    j = StreamJob(s, "bench", model=False)
    if not a.no_model: j.predictor.load_model(); j.predictor.history_of(symbols)
    return j

def percentile(x, q): return float(np.percentile(np.asarray(x), q)) if len(x) else float("nan")

print(f"Redis {R.info('server')['redis_version']} at {Settings().redis_url}; {os.cpu_count()} cores; batch {a.batch}, 4 shards")
if not a.no_model:
    t = time.perf_counter(); champion(); print(f"champion registered in {time.perf_counter() - t:.1f} s (drift, {a.symbols} symbols)")

# 1. throughput ------------------------------------------------------------------------------------------------------------------
def session_ticks(n_symbols, n_ticks, seed=1):
    "`n_ticks` synthetic ticks of `n_symbols` sample-market symbols spread over their whole session"
    bars = _last_bars(Settings(), None, n_symbols)
    return bars, synthetic_ticks(bars, math.ceil(n_ticks / n_symbols), seed=seed).iloc[:n_ticks]

def live_ticks(n_symbols, rate, seconds, seed=2):
    "`rate` ticks/s over `n_symbols` symbols for `seconds` of a live session: a session's ticks squeezed into `seconds` of event time from 09:30:50"
    bars, tk = session_ticks(n_symbols, int(rate * seconds), seed)
    t = tk["event_ms"].to_numpy("int64")
    t0 = int(pd.Timestamp(bars["date"].max()).value // 10**6) + (9 * 3600 + 30 * 60 + 50) * 1000
    return bars, tk.assign(event_ms=t0 + (t - t.min()) * int(seconds * 1000) // max(1, t.max() - t.min()))

def throughput(what, bars, ticks):
    "The same ticks through the bare loop and through the job, alternately --repeat times; median ticks/s of each"
    syms = sorted(bars["symbol"])
    bares, fulls = [], []
    for rep in range(a.repeat):
        kb, kj = StreamKeys(f"swbbench-{tag}-bare{rep}"), StreamKeys(f"swbbench-{tag}-job{rep}")
        for k in (kb, kj): publish_ticks(R, ticks, k, 4)
        for k in range(4): R.xgroup_create(kb.ticks(k), "bare", id="0")
        streams = {kb.ticks(k): ">" for k in range(4)}
        n, t = 0, time.perf_counter()
        while n < len(ticks):   # COUNT per stream as the job reads: at most --batch ticks per read
            resp = R.xreadgroup("bare", "c", streams, count=max(1, a.batch // 4), block=100)
            p = R.pipeline(transaction=False)
            for st, msgs in resp:
                p.xack(st, "bare", *[m[0] for m in msgs]); n += len(msgs)
            p.execute()
        bares.append(n / (time.perf_counter() - t))
        j = job(kj.prefix, syms)
        t = time.perf_counter(); res = j.run(max_ticks=len(ticks)); fulls.append(res["ticks"] / (time.perf_counter() - t))
        cleanup(kb.prefix); cleanup(kj.prefix)
    bare, full = statistics.median(bares), statistics.median(fulls)
    print(f"throughput, {what}: {len(ticks):,} ticks of {len(syms)} symbols ({len(ticks) / max(res['candles'], 1):.1f} ticks per candle), median of {a.repeat}: "
          f"bare XREADGROUP+XACK {bare:,.0f} ticks/s | stream job {full:,.0f} ticks/s = {full / bare:.0%} of bare (target >= 50%) | "
          f"runs: bare {', '.join(f'{x:,.0f}' for x in bares)}; job {', '.join(f'{x:,.0f}' for x in fulls)} | "
          f"{res['candles']:,} candles, {res['predictions']:,} predictions per run")

if not a.latency_only:
    t = time.perf_counter(); publish_ticks(R, synthetic_ticks(_last_bars(Settings(), None, 20), 2000, seed=1), StreamKeys(f"swbbench-{tag}-pub"), 4)
    print(f"pipelined XADD: {40_000 / (time.perf_counter() - t):,.0f} ticks/s"); cleanup(f"swbbench-{tag}-pub")
    # the latency scenario's ticks (--rate ticks/s over --symbols symbols for --seconds of a live session), read flat out
    throughput("live market replayed flat out", *live_ticks(a.symbols, a.rate, a.seconds))
    throughput("dense", *session_ticks(a.dense, a.ticks))              # fewer symbols, a whole session: ~10 ticks per candle
    throughput("worst case", *session_ticks(a.symbols, a.ticks))       # the whole session of every symbol in seconds: ~1 tick per candle

# 2. latency at a steady rate --------------------------------------------------------------------------------------------------
# --rate ticks/s over --symbols symbols in real time: a session's ticks squeezed into --seconds of event time from 09:30:50
# (so candles close mid-run), published at speed 1 by a separate producer process.
kl = StreamKeys(f"swbbench-{tag}-lat")
n_ticks = int(a.rate * a.seconds)
bars, tk = live_ticks(a.symbols, a.rate, a.seconds)
data = home / "ticks.pkl"; tk.to_pickle(data)
syms = sorted(bars["symbol"])
j = job(kl.prefix, syms)
stop = threading.Event()
th = threading.Thread(target=lambda: j.run(stop=stop)); th.start()
time.sleep(1.0)     # the consumer holds its leases
producer = ("import sys, time, pandas as pd; from stock_workbench.leases import StreamKeys, connect_redis; from stock_workbench.replay import publish_ticks; "
            "from stock_workbench.config import Settings; tk = pd.read_pickle(sys.argv[1]); t = time.perf_counter(); "
            "n = publish_ticks(connect_redis(Settings()), tk, StreamKeys(sys.argv[2]), 4, speed=1.0); "
            "print(f'{n:,} ticks in {time.perf_counter() - t:.1f} s: {n / (time.perf_counter() - t):,.0f} ticks/s')")
rp = subprocess.run([sys.executable, "-c", producer, str(data), kl.prefix], capture_output=True, text=True)
deadline = time.time() + 30
while j.counts["ticks"] < n_ticks and time.time() < deadline: time.sleep(0.1)
stop.set(); th.join()
lat = list(j.online_ms)[int(a.rate):]       # the first second warms up
print(f"latency, {a.symbols} symbols in real time, producer: {rp.stdout.strip() or rp.stderr.strip()[-300:]}")
print(f"  tick -> online store (XADD to committed in swb:latest): p50 {percentile(lat, 50):.1f} ms, p99 {percentile(lat, 99):.1f} ms, "
      f"max {max(lat) if lat else float('nan'):.1f} ms over {len(lat):,} ticks (target p99 < 50 ms) | "
      f"{j.counts['candles']:,} candles, {j.counts['predictions']:,} predictions")
pred = j.predictor.latency.collect()[0].samples
cnt = next(s.value for s in pred if s.name.endswith("_count")); tot = next(s.value for s in pred if s.name.endswith("_sum"))
print(f"  tick -> prediction (arrival of the closing tick to the prediction in Redis): mean {1000 * tot / max(cnt, 1):.0f} ms over {cnt:.0f} predictions "
      f"(refreshed every {j.s.stream_predict_s} s)")
cleanup(kl.prefix)
