"""The prediction API (`swb serve`) on loopback next to a bare FastAPI route, both on uvicorn in this run.

Prints measured figures; asserts nothing. Usage: python benchmarks/bench_serve.py [--symbols 20] [--seconds 30] [--flat 10]
    [--ws-seconds 10] [--predict 40] [--ws-only] [--ws-procs 4]
1. GET /v1/predictions/{symbol} at a held 500 requests/s for --seconds (hey -q: wrk cannot hold a rate): p50/p99, errors; the
   bare route at the same rate for reference.
2. Flat out (wrk -t2 -c32 for --flat s) against the bare route (a constant, the reference) and ours, with and without the access
   log: requests/s, p50/p99, errors, and our throughput as a share of the bare route's. Server and load generator share the
   machine's cores.
3. POST /v1/predict (on-demand scoring through pipeline.score_symbols) one at a time: p50/p99.
3b. GET /v1/predictions/{symbol} at 500 requests/s while 3 keys flood POST /v1/predict: p50/p99 against step 1's, and how
   many on-demand requests were answered or refused (429: over a key's concurrency or token-bucket limit).
4. WebSocket /v1/stream: 50 and 200 clients subscribed to every symbol while 100 forecasts/s are published to the feed for
   --ws-seconds, one forecast per frame and with `?batch=1`: delivery ratio (received / published x clients), lag at the client
   (publish to receive, p50/p99), lag at the server's send call (the `swb_serve_ws_lag_seconds` histogram: the bucket p50/p99 fall
   in), conflations. The clients run in --ws-procs processes (default 4) so one Python process parsing every frame is not what
   is measured.
The home is a synthetic market of --symbols symbols with a champion, a challenger and their and the baseline's forecasts in the
ledger; Redis keys live under a random prefix, deleted at the end.
"""
import argparse, asyncio, collections, json, os, re, shutil, signal, statistics, subprocess, sys, tempfile, threading, time, uuid
from pathlib import Path
import numpy as np, pandas as pd

ap = argparse.ArgumentParser()
ap.add_argument("--symbols", type=int, default=20)
ap.add_argument("--seconds", type=int, default=30)
ap.add_argument("--flat", type=int, default=10)
ap.add_argument("--ws-seconds", type=float, default=10)
ap.add_argument("--predict", type=int, default=40)
ap.add_argument("--ws-only", action="store_true", help="only the WebSocket figures")
ap.add_argument("--ws-procs", type=int, default=4, help="processes the WebSocket clients are spread over")
a = ap.parse_args()
for tool in ("wrk", "hey"):
    if not shutil.which(tool): sys.exit(f"{tool} is missing: apt-get install -y wrk hey")

BIN = Path(sys.executable).parent
home = Path(tempfile.mkdtemp())
prefix = f"swbb-{uuid.uuid4().hex[:8]}"
env = {k: v for k, v in os.environ.items() if not k.startswith("SWB_")}
env.update(SWB_HOME=str(home), SWB_QUIET="1", SWB_SYNTHETIC_SYMBOLS=str(a.symbols), SWB_SYNTHETIC_YEARS="3", SWB_TRAIN_DAYS="252",
           SWB_STREAM_PREFIX=prefix, SWB_METRICS_PORT="0")
os.environ.update({k: v for k, v in env.items() if k.startswith("SWB_")})
SETUP = """
from stock_workbench.cli import main
from stock_workbench.config import Settings, settings_horizons
from stock_workbench import registry
from stock_workbench.ledger import PredictionLedger, forecasts_long
from stock_workbench.pipeline import score_symbols
for a in (["ingest", "--source", "synthetic"], ["train"], ["train"]): assert main(a) == 0, a
s = Settings()
led = PredictionLedger.from_settings(s)
for lm in (registry.load_version(s, "1"), registry.load_version(s, "2"),
           registry.LoadedModel(registry.BaselineForecaster(settings_horizons(s), s), "baseline", "baseline:ewma", 2)):
    fc = score_symbols(s, lm, None, None)
    led.record(forecasts_long(fc, lm.version, "bench", "eod", fc["close"], model_id=lm.model_id), note="bench")
"""
BARE = """
import sys, uvicorn
from fastapi import FastAPI
app = FastAPI()
@app.get("/c")
async def c(): return {"ok": 1}
class S(uvicorn.Server):
    async def startup(self, sockets=None):
        await super().startup(sockets); print("port", self.servers[0].sockets[0].getsockname()[1], flush=True)
S(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", access_log=False)).run()
"""

def start(cmd, log:Path, pattern:str):
    "A server process whose stdout goes to `log`; (process, port) once the ready line shows"
    p = subprocess.Popen(cmd, stdout=open(log, "w"), stderr=subprocess.STDOUT, env=env)
    end = time.time() + 180
    while time.time() < end:
        m = re.search(pattern, log.read_text())
        if m: return p, int(m.group(1))
        if p.poll() is not None: sys.exit(f"server exited: {log.read_text()[-2000:]}")
        time.sleep(0.2)
    sys.exit("server not ready in 180 s")

def stop(p):
    p.send_signal(signal.SIGTERM)
    try: return p.wait(30)
    except subprocess.TimeoutExpired: p.kill(); return None

def hey(url, key, seconds, rate, workers=10):
    out = subprocess.run(["hey", "-z", f"{seconds}s", "-q", str(rate / workers), "-c", str(workers), "-H", f"X-API-Key: {key}", url],
                         capture_output=True, text=True).stdout
    pct = {int(m.group(1)): float(m.group(2)) * 1000 for m in re.finditer(r"(\d+)%+ in ([\d.]+) secs", out)}
    codes = {int(m.group(1)): int(m.group(2)) for m in re.finditer(r"\[(\d{3})\]\s+(\d+) responses", out)}
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errs = sum(n for c, n in codes.items() if c != 200) + len(re.findall(r"^\s+\[\d+\]\s+Get", out, re.M))
    return dict(rps=rps, p50=pct.get(50), p99=pct.get(99), errors=errs, codes=codes)

def wrk(url, key, seconds):
    cmd = ["wrk", "-t2", "-c32", f"-d{seconds}s", "--latency", url] + (["-H", f"X-API-Key: {key}"] if key else [])
    out = subprocess.run(cmd, capture_output=True, text=True).stdout
    def ms(label):
        m = re.search(rf"^\s+{label}%\s+([\d.]+)(us|ms|s)\s*$", out, re.M)
        return float(m.group(1)) * {"us": 1e-3, "ms": 1, "s": 1000}[m.group(2)] if m else float("nan")
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return dict(rps=float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), p50=ms(50), p99=ms(99),
                errors=(int(non2xx.group(1)) if non2xx else 0) + (sum(map(int, sock.groups())) if sock else 0))

def line(name, r): return f"{name:<34} {r['rps']:>9,.0f} req/s  p50 {r['p50']:7.2f} ms  p99 {r['p99']:7.2f} ms  errors {r['errors']}"

t0 = time.time()
r = subprocess.run([sys.executable, "-c", SETUP], capture_output=True, text=True, env=env)
if r.returncode: sys.exit(r.stderr[-3000:])
from stock_workbench.access import KeyStore
from stock_workbench.config import Settings
settings = Settings()
_, KEY = KeyStore(settings).create("read", note="bench")
print(f"home: {a.symbols} symbols, champion + challenger + baseline forecasts in the ledger ({time.time() - t0:.0f} s)")

bare, bport = start([sys.executable, "-c", BARE], home/"bare.log", r"port (\d+)")
ours, port = start([str(BIN/"swb"), "serve", "--port", "0"], home/"serve.log", r"listening on http://127\.0\.0\.1:(\d+)")
quiet, qport = start([str(BIN/"swb"), "serve", "--port", "0", "--no-access-log"], home/"serve_quiet.log", r"listening on http://127\.0\.0\.1:(\d+)")
URL, QURL, BURL = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{qport}", f"http://127.0.0.1:{bport}/c"
sym = "SYN000"
import httpx
for u in (URL, QURL):   # warm: the first requests build caches
    for _ in range(200): httpx.get(f"{u}/v1/predictions/{sym}", headers={"X-API-Key": KEY})

if not a.ws_only:
    print(f"\n1. GET /v1/predictions/{{symbol}} held at 500 req/s for {a.seconds} s (hey -q, 10 workers; access log on)")
    h = hey(f"{URL}/v1/predictions/{sym}", KEY, a.seconds, 500)
    print(line("ours at 500 req/s", h) + f"  status {h['codes']}")
    print(f"   target p99 < 10 ms with 0 errors: {'met' if h['p99'] is not None and h['p99'] < 10 and h['errors'] == 0 else 'NOT met'}")
    hb = hey(BURL, KEY, a.seconds, 500); print(line("bare route at 500 req/s (reference)", hb))

    print(f"\n2. Flat out, wrk -t2 -c32 for {a.flat} s (server and load generator on the same 2 cores)")
    b = wrk(BURL, None, a.flat); print(line("bare FastAPI route (constant)", b))
    o = wrk(f"{URL}/v1/predictions/{sym}", KEY, a.flat); print(line("ours, access log on", o))
    q = wrk(f"{QURL}/v1/predictions/{sym}", KEY, a.flat); print(line("ours, --no-access-log", q))
    print(f"   share of the bare route's throughput: {o['rps'] / b['rps']:.0%} (access log on), {q['rps'] / b['rps']:.0%} (off); target >= 50 %")
    stop(bare); stop(quiet)

    print(f"\n3. POST /v1/predict on demand, {a.predict} requests one at a time (a random stored symbol, latest session)")
    rng = np.random.default_rng(0)
    lat, c = [], httpx.Client(base_url=URL, headers={"X-API-Key": KEY}, timeout=60)
    c.post("/v1/predict", json={"symbol": sym})
    for i in range(a.predict):
        t = time.perf_counter()
        r = c.post("/v1/predict", json={"symbol": f"SYN{rng.integers(a.symbols):03d}", "horizon": 1})
        lat.append((time.perf_counter() - t) * 1000)
        assert r.status_code == 200, r.text
    print(f"{'POST /v1/predict':<34} p50 {np.percentile(lat, 50):7.1f} ms  p99 {np.percentile(lat, 99):7.1f} ms")
    t = time.perf_counter(); r = c.post("/v1/predict", json={"requests": [{"symbol": f"SYN{i:03d}"} for i in range(min(a.symbols, 100))]})
    print(f"{'POST /v1/predict, batch of ' + str(min(a.symbols, 100)):<34} {(time.perf_counter() - t) * 1000:7.1f} ms")

    print(f"\n3b. GET /v1/predictions/{{symbol}} at 500 req/s for {a.flat} s while 3 keys post /v1/predict flat out (4 threads each)")
    keys3, codes, stop_at = [KeyStore(settings).create("read", note=f"bench flood {i}")[1] for i in range(3)], collections.Counter(), time.time() + a.flat
    def flood(k):
        with httpx.Client(base_url=URL, headers={"X-API-Key": k}, timeout=120) as fc:
            while time.time() < stop_at: codes[fc.post("/v1/predict", json={"symbol": f"SYN{np.random.randint(a.symbols):03d}"}).status_code] += 1
    fl = [threading.Thread(target=flood, args=(k,)) for k in keys3 for _ in range(4)]
    for th in fl: th.start()
    hf = hey(f"{URL}/v1/predictions/{sym}", KEY, a.flat, 500)
    for th in fl: th.join()
    print(line("ours at 500 req/s, predict flood", hf) + f"  status {hf['codes']}")
    print(f"   p99 {hf['p99'] / h['p99']:.1f}x the quiet run's (section 1); the flood's answers: {dict(codes)} (429: over a key's limits)")

c = httpx.Client(base_url=URL, headers={"X-API-Key": KEY}, timeout=60)
print(f"\n4. WebSocket /v1/stream: 100 forecasts/s for {a.ws_seconds:g} s to every client (all symbols); clients in {a.ws_procs} processes")
import redis
R = redis.Redis.from_url(settings.redis_url)

def scrape():
    "The server's conflation count and its send-lag histogram (cumulative bucket counts by upper bound, seconds)"
    text = c.get("/metrics").text
    m = re.search(r"^swb_serve_ws_conflations_total ([\d.e+]+)", text, re.M)
    buckets = {float(b): float(v) for b, v in re.findall(r'^swb_serve_ws_lag_seconds_bucket\{le="([^"]+)"\} ([\d.e+]+)', text, re.M) if b != "+Inf"}
    return (float(m.group(1)) if m else 0.0), buckets

def bucket_pct(before:dict, after:dict, q:float)->str:
    "The q-th percentile of the lag observed between two scrapes, as the histogram bucket it falls in (an upper bound)"
    if not after: return "n/a (no swb_serve_ws_lag_seconds)"
    d = {b: after[b] - before.get(b, 0.0) for b in sorted(after)}
    total = max(d.values()) if d else 0
    obs = None
    for b, v in d.items():
        if total and v >= q / 100 * total: obs = b; break
    return f"<= {obs * 1000:g} ms" if obs is not None else "> 10 s"

PUBLISHER = """
import sys, time, pandas as pd, redis
from stock_workbench.config import Settings
from stock_workbench import routing
n, seconds, rate = int(sys.argv[1]), float(sys.argv[2]), float(sys.argv[3])
s = Settings(); r = redis.Redis.from_url(s.redis_url)
frames = [pd.DataFrame({"symbol": [f"SYN{k:03d}"], "as_of": [f"{pd.Timestamp.now():%Y-%m-%d}T15:00"], "close": [100.0], "p10_1d": [-0.01], "p50_1d": [0.0],
                        "p90_1d": [0.01], "p10_5d": [-0.03], "p50_5d": [0.0], "p90_5d": [0.03]}) for k in range(n)]
sent, t0 = 0, time.time()
while time.time() - t0 < seconds:
    routing.publish_forecasts(r, s, frames[sent % n], "stream", "1")   # stamps published_ms
    sent += 1
    time.sleep(max(0.0, t0 + sent / rate - time.time()))
print(sent)
"""
CLIENTS = """
import asyncio, json, re, sys, time
from websockets.asyncio.client import connect
url, n = sys.argv[1], int(sys.argv[2])
pat = re.compile(rb'"published_ms": (\\d+)')
async def main():
    # max_queue: the client library holds at most 64 frames, then stops reading the socket: a lagging client pushes back on the
    # server (max_queue=None would buffer without bound inside this process and measure this process, not the server)
    conns = [await connect(url, max_queue=64, compression=None) for _ in range(n)]
    got, frames, lags = [0] * n, [0] * n, []
    print("ready", flush=True)
    async def reader(i, ws):
        while True:
            try: m = await asyncio.wait_for(ws.recv(decode=False), timeout=3.0 if got[i] else 60.0)
            except Exception: return
            now, frames[i] = time.time() * 1000, frames[i] + 1
            for x in pat.finditer(m): got[i] += 1; lags.append(now - int(x.group(1)))
    await asyncio.gather(*(reader(i, ws) for i, ws in enumerate(conns)))
    for ws in conns: await ws.close()
    print(json.dumps({"got": got, "frames": frames, "lags": lags}))
asyncio.run(main())
"""

async def ws_run(n, batch):
    "n clients on every symbol, spread over --ws-procs processes; a separate process publishes 100 forecasts/s; lag = receive time - published_ms"
    url = f"ws://127.0.0.1:{port}/v1/stream?key={KEY}" + ("&batch=1" if batch else "")
    per = [n // a.ws_procs + (i < n % a.ws_procs) for i in range(a.ws_procs)]
    procs = [await asyncio.create_subprocess_exec(sys.executable, "-c", CLIENTS, url, str(k), env=env, stdout=asyncio.subprocess.PIPE)
             for k in per if k]
    for p in procs: assert (await p.stdout.readline()).strip() == b"ready"
    conf0, lag0 = scrape()
    pub = await asyncio.create_subprocess_exec(sys.executable, "-c", PUBLISHER, str(a.symbols), str(a.ws_seconds), "100",
                                               env=env, stdout=asyncio.subprocess.PIPE)
    outs = [json.loads((await p.communicate())[0]) for p in procs]
    sent = int((await pub.communicate())[0] or 0)
    conf1, lag1 = scrape()
    got, frames, lags = sum(sum(o["got"]) for o in outs), sum(sum(o["frames"]) for o in outs), [x for o in outs for x in o["lags"]]
    print(f"{n:>4} clients{' batch=1' if batch else '        '}: published {sent:,}, delivered {got:,} of {sent * n:,} ({got / max(1, sent * n):.1%}) "
          f"in {frames:,} frames; lag at the client p50 {np.percentile(lags, 50):6.1f} ms, p99 {np.percentile(lags, 99):7.1f} ms; "
          f"at the server's send p50 {bucket_pct(lag0, lag1, 50)}, p99 {bucket_pct(lag0, lag1, 99)}; conflations {conf1 - conf0:,.0f}")

for n in (50, 200):
    for batch in (False, True): asyncio.run(ws_run(n, batch))
for p in (bare, quiet):
    if p.poll() is None: stop(p)
code = stop(ours)
print(f"\nswb serve stopped by SIGTERM: exit {code}")
for k in R.scan_iter(f"{prefix}:*", count=5000): R.delete(k)
shutil.rmtree(home, ignore_errors=True)
