"swb serve: the prediction API as a subprocess over a real home and real Redis: every endpoint, keys, A/B routing, idempotent rollback, fallback, WebSocket, SIGTERM"
import json, math, os, re, shutil, signal, subprocess, sys, threading, time, uuid
from pathlib import Path
import httpx, pandas as pd, pytest, redis
from conftest import BIN, REDIS_URL, built_once

# a small sample market and short windows keep the home to seconds (as tests/test_jobs.py builds it)
FAST = {"SWB_SYNTHETIC_SYMBOLS": "6", "SWB_SYNTHETIC_YEARS": "3", "SWB_TRAIN_DAYS": "252", "SWB_REFIT_DAYS": "126",
        "SWB_PROMOTE_EVAL_DAYS": "126", "SWB_BACKTEST_DAYS": "126"}
LAST = "2018-01-02"   # the FAST sample market's last session
FIRST = "2015-01-02"  # ... and its first
# one process: the market, champion v1, challenger v2 promoted (v1 previous champion), challenger v3; then the EOD job
# records every arm's forecasts (champion 2, challenger 3, previous champion 1, baseline) in the ledger
SETUP = """
from stock_workbench.cli import main
for a in (["ingest", "--source", "synthetic"], ["train"], ["train"], ["promote", "--version", "2"], ["train"]): assert main(a) == 0, a
"""


def home_env(home: Path, prefix: str, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWB_")}
    return {**env, **FAST, "SWB_HOME": str(home), "SWB_QUIET": "1", "SWB_STREAM_PREFIX": prefix, "SWB_REDIS_URL": REDIS_URL,
            "SWB_METRICS_PORT": "0", **extra}


def run(env, *args, timeout=300):
    return subprocess.run([str(BIN / "swb"), *map(str, args)], capture_output=True, text=True, env=env, timeout=timeout)


class Server:
    "`swb serve --port 0` as a subprocess; its output collected as it comes (a full pipe would stall it)"
    def __init__(self, env, *args, wait_s=120):
        self.p = subprocess.Popen([str(BIN / "swb"), "serve", "--port", "0", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, env=env)
        self.out, self.err, self.url = [], [], None
        ready = threading.Event()
        def pump(stream, sink):
            for line in stream:
                sink.append(line)
                if (m := re.match(r"swb serve: listening on (http://\S+)", line)): self.url = m.group(1); ready.set()
            ready.set()
        for s, sink in ((self.p.stdout, self.out), (self.p.stderr, self.err)):
            threading.Thread(target=pump, args=(s, sink), daemon=True).start()
        ready.wait(wait_s)
        assert self.url, f"no ready line; exit {self.p.poll()}; stderr: {''.join(self.err)[-2000:]}"

    def stop(self, sig=signal.SIGTERM, timeout=30) -> int:
        if self.p.poll() is None: self.p.send_signal(sig)
        return self.p.wait(timeout)

    @property
    def text(self) -> str: return "".join(self.out) + "".join(self.err)


class Api:
    "What the tests need: the server, its home, keys, a Redis client"
    def get(self, path, key=None, **kw): return self.c.get(path, headers=self._h(key, kw.pop("headers", {})), **kw)
    def post(self, path, key=None, **kw): return self.c.post(path, headers=self._h(key, kw.pop("headers", {})), **kw)
    def _h(self, key, h): return {**({"X-API-Key": key} if key else {}), **h}


def wait_for(fn, timeout=15.0, every=0.2):
    "fn()'s first truthy value within `timeout` seconds"
    end = time.monotonic() + timeout
    while True:
        v = fn()
        if v or time.monotonic() > end: return v
        time.sleep(every)


def serve_home(tmp_path_factory) -> Path:
    """The served home, built once per test run and shared by every xdist worker and tests/test_serve_schema.py (each copies it):
    SETUP, then the EOD job of the last session, which records every arm's forecasts"""
    def make(folder):
        prefix = f"swbt-{uuid.uuid4().hex[:10]}"
        env = home_env(folder, prefix)
        r = subprocess.run([sys.executable, "-c", SETUP], capture_output=True, text=True, env=env, timeout=600)
        assert r.returncode == 0, r.stderr[-3000:]
        r = run(env, "run", "eod", "--date", LAST)
        assert r.returncode == 0, r.stderr[-3000:]
        rc = redis.Redis.from_url(REDIS_URL)
        for k in rc.scan_iter(f"{prefix}:*", count=1000): rc.delete(k)   # the feed it published: each server reads its own prefix
        return None
    return built_once(tmp_path_factory, "serve-home", make)[0]


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    t0 = time.monotonic()
    src = serve_home(tmp_path_factory)
    home = tmp_path_factory.mktemp("serve") / "home"
    shutil.copytree(src, home)   # the tests roll back, delete model files and stop the server: on this worker's own copy
    a = Api()
    a.home, a.prefix = home, f"swbt-{uuid.uuid4().hex[:10]}"
    a.env = home_env(home, a.prefix, SWB_WS_HEARTBEAT_S="1", SWB_SERVE_WINDOW_S="2")
    from stock_workbench.access import KeyStore
    from stock_workbench.config import Settings
    a.settings = Settings(home, env=a.env)
    ks = KeyStore(a.settings)
    a.read_id, a.read = ks.create("read", note="tests")
    a.admin_id, a.admin = ks.create("admin", note="tests")
    a.setup_s = time.monotonic() - t0
    a.srv = Server(a.env)
    a.c = httpx.Client(base_url=a.srv.url, timeout=60)
    a.r = redis.Redis.from_url(REDIS_URL)
    print(f"\nserve fixture: home in {a.setup_s:.0f} s, server ready in {time.monotonic() - t0 - a.setup_s:.0f} s")
    yield a
    a.c.close()
    if a.srv.p.poll() is None: a.srv.stop(signal.SIGKILL)
    for k in a.r.scan_iter(f"{a.prefix}:*", count=1000): a.r.delete(k)


def test_health_ready_docs_metrics(api):
    assert api.get("/healthz").json() == {"status": "ok"}
    r = api.get("/readyz")
    assert r.status_code == 200 and r.json()["ready"] and r.json()["checks"]["redis"] == "ok", r.text
    assert r.json()["checks"]["forecasts"].startswith(LAST)
    spec = api.get("/openapi.json").json()
    assert {"/v1/predictions/{symbol}", "/v1/predictions", "/v1/predict", "/v1/models", "/v1/admin/rollback", "/v1/admin/split",
            "/healthz", "/readyz", "/metrics"} <= set(spec["paths"])
    for page in ("/docs", "/redoc"):   # Swagger UI and ReDoc load every script, style and icon from this server, none from a CDN
        html = api.get(page)
        assert html.status_code == 200, page
        refs = re.findall(r"""(?:src|href|url)\s*[:=]\s*['"]([^'"]+)['"]""", html.text)
        assert refs and not [u for u in refs if re.match(r"(https?:)?//", u)] and not re.search(r"https?://", html.text), (page, refs)
        assert all(api.get(u).status_code == 200 for u in refs), refs
    api.get("/v1/predictions/SYN000", api.read)
    m = api.get("/metrics").text
    assert 'swb_serve_request_seconds_bucket{le="0.005",method="GET",route="/v1/predictions/{symbol}"}' in m
    assert 'swb_serve_responses_total{route="/v1/predictions/{symbol}",status="200"}' in m
    assert "swb_serve_fallback_level 0.0" in m and "swb_serve_ws_clients" in m and "swb_serve_variant_total" in m


def test_auth_401_403(api):
    r = api.get("/v1/predictions/SYN000")
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer") and r.json()["request_id"] == r.headers["x-request-id"]
    assert api.get("/v1/predictions/SYN000", "swb_0badcafe_" + "x" * 43).status_code == 401
    assert api.get("/v1/predictions/SYN000", headers={"Authorization": f"Bearer {api.read}"}).status_code == 200
    assert api.get("/v1/models", api.read).status_code == 200
    r = api.post("/v1/admin/rollback", api.read, headers={"Idempotency-Key": "never-runs"})
    assert r.status_code == 403 and "admin" in r.json()["detail"]
    assert api.post("/v1/admin/split", api.read, headers={"Idempotency-Key": "x"}, json={"challenger_share": 0.1}).status_code == 403
    from stock_workbench.access import KeyStore
    ks = KeyStore(api.settings)
    kid, key = ks.create("read", note="revoked at once")
    assert api.get("/v1/predictions/SYN000", key).status_code == 200
    ks.revoke(kid)
    assert wait_for(lambda: api.get("/v1/predictions/SYN000", key).status_code == 401)


def test_prediction_answers_with_version_and_band(api):
    r = api.get("/v1/predictions/SYN000", api.read, params={"horizon": 5})
    assert r.status_code == 200, r.text
    b = r.json()
    assert b["request_id"] == r.headers["x-request-id"]
    assert (b["symbol"], b["horizon"], b["as_of"], b["fallback_level"]) == ("SYN000", 5, LAST, 0)
    assert b["source"] in ("eod", "stream") and b["variant"] in ("champion", "challenger")
    assert (b["model_version"], b["alias"]) == (("2", "champion") if b["variant"] == "champion" else ("3", "challenger"))
    assert b["p10"] <= b["p50"] <= b["p90"]
    for q in ("p10", "p50", "p90"): assert math.isclose(b[f"price_{q}"], b["close"] * math.exp(b[q]), rel_tol=1e-12)
    # the edge answers plain requests itself (serve.fast_prediction); anything else goes through the FastAPI route: same answer
    # (an extra query parameter, which the route ignores, or a header sent twice, take the framework's path)
    slow = api.get("/v1/predictions/SYN000", api.read, params={"horizon": 5, "x": "1"})
    twice = api.c.get("/v1/predictions/SYN000?horizon=5", headers=[("X-API-Key", api.read), ("X-API-Key", api.read)])
    for other in (slow, twice):
        assert other.status_code == 200, other.text
        assert {k: v for k, v in other.json().items() if k != "request_id"} == {k: v for k, v in b.items() if k != "request_id"}
    miss = [api.get("/v1/predictions/NOSUCH", api.read, params=p) for p in ({}, {"x": "1"})]
    assert [m.status_code for m in miss] == [404, 404] and miss[0].json()["detail"] == miss[1].json()["detail"], [m.text for m in miss]
    assert miss[0].json()["detail"].startswith("unknown symbol NOSUCH") and miss[0].json()["request_id"] == miss[0].headers["x-request-id"]
    fast_ms = api.get("/metrics").text
    assert 'route="/v1/predictions/{symbol}"' in fast_ms   # the edge's answers are measured under the route's own label


def test_bad_input_is_422_unknown_is_404(api):
    for path, params in [("/v1/predictions/syn000", {}), ("/v1/predictions/" + "A" * 16, {}), ("/v1/predictions/A..B", {}),
                         ("/v1/predictions/SYN000", {"horizon": 2}), ("/v1/predictions/SYN000", {"horizon": "x"}),
                         ("/v1/predictions", {"top": 0}), ("/v1/predictions", {"horizon": 3})]:
        r = api.get(path, api.read, params=params)
        assert r.status_code == 422 and r.json()["detail"] and r.json()["request_id"], (path, params, r.text)
    assert api.get("/v1/predictions/SYN000", api.read, headers={"X-Client-Id": "bad id!"}).status_code == 422
    r = api.get("/v1/predictions/ZZZZ", api.read)
    assert r.status_code == 404 and "unknown symbol ZZZZ" in r.json()["detail"]
    # a stored symbol the EOD job has not forecast yet: 404 with the reason
    from conftest import sample
    from stock_workbench.store import OhlcvStore
    OhlcvStore.from_settings(api.settings).ingest(sample("NEWX", days=40), api.settings)
    r = wait_for(lambda: (x := api.get("/v1/predictions/NEWX", api.read)).status_code == 404 and "no forecast yet" in x.json()["detail"] and x)
    assert r, api.get("/v1/predictions/NEWX", api.read).text


def test_top_movers(api):
    b = api.get("/v1/predictions", api.read, params={"top": 3, "horizon": 1}).json()
    assert b["as_of"] == LAST and len(b["predictions"]) == 3 and b["horizon"] == 1
    moves = [abs(p["p50"]) for p in b["predictions"]]
    assert moves == sorted(moves, reverse=True)
    assert {p["model_version"] for p in b["predictions"]} == {b["model_version"]}
    # a damaged or hostile forecast-feed entry (huge quantiles, a future date) is skipped: it neither breaks nor hides the real one
    from stock_workbench.routing import feed_key
    api.r.xadd(feed_key(api.settings), {"symbol": "SYN003", "as_of": "2099-01-01", "source": "stream", "model_version": b["model_version"],
                                        "close": "100", "p10_1d": "-1e308", "p50_1d": "1e308", "p90_1d": "1e308", "published_ms": "0"})
    time.sleep(1.5)   # the feed reader's next read
    again = api.get("/v1/predictions", api.read, params={"top": 3, "horizon": 1})
    one = api.get("/v1/predictions/SYN003", api.read, params={"horizon": 1})
    assert (again.status_code, one.status_code) == (200, 200), (again.text, one.text)
    assert one.json()["as_of"] == LAST and abs(one.json()["p50"]) < 1


def test_predict_on_demand(api):
    r = api.post("/v1/predict", api.read, json={"symbol": "SYN001", "horizon": 5})
    assert r.status_code == 200, r.text
    b = r.json()
    assert (b["symbol"], b["horizon"], b["as_of"], b["source"]) == ("SYN001", 5, LAST, "on_demand") and b["p10"] <= b["p90"]
    r = api.post("/v1/predict", api.read, json={"requests": [{"symbol": "SYN001", "as_of": "2017-12-27"}, {"symbol": "SYN002", "horizon": 5}]})
    assert r.status_code == 200, r.text
    assert [(p["symbol"], p["as_of"], p["horizon"]) for p in r.json()["predictions"]] == [("SYN001", "2017-12-27", 1), ("SYN002", LAST, 5)]
    assert api.post("/v1/predict", api.read, json={"symbol": "SYN001", "as_of": "2017-12-30"}).status_code == 404   # a Saturday
    assert api.post("/v1/predict", api.read, json={"symbol": "SYN001", "as_of": "2019-01-02"}).status_code == 404   # after the store
    assert api.post("/v1/predict", api.read, json={"symbol": "ZZZZ"}).status_code == 404
    for body in [{"symbol": "SYN001", "as_of": "2017-13-01"}, {"symbol": "syn001"}, {"symbol": "SYN001", "horizon": 2},
                 {"requests": [{"symbol": "SYN001"}] * 101}, {"requests": []}, {"symbol": "SYN001", "colour": "red"}, {}]:
        r = api.post("/v1/predict", api.read, json=body)
        assert r.status_code == 422, (body, r.text)


def test_models(api):
    b = api.get("/v1/models", api.read).json()
    assert {a: b["arms"][a]["version"] for a in b["arms"]} == {"champion": "2", "challenger": "3", "previous_champion": "1"}
    assert all(b["arms"][a]["loaded"] and b["arms"][a]["latest_forecast"] == LAST for a in b["arms"])
    assert b["challenger_share"] == 0.05 and b["experiment"].endswith("champion=2:challenger=3")
    assert b["fallback_level"] == 0 and b["fallback"] == {"drift": 0, "latency": 0, "load": 0, "load_reason": None}
    assert isinstance(b["drift"], dict) and isinstance(b["accuracy"], list)


def test_ab_routing_is_sticky_and_exposures_are_logged(api):
    from stock_workbench import routing
    key = routing.ab_key(api.settings)
    # the share over 10 000 client ids is routing's own test (tests/test_routing.py); here: the server routes as routing says
    r = api.post("/v1/admin/split", api.admin, headers={"Idempotency-Key": f"half-{uuid.uuid4().hex}"}, json={"challenger_share": 0.5})
    assert r.status_code == 200 and r.json()["result"]["challenger_share"] == 0.5, r.text
    assert wait_for(lambda: api.get("/v1/models", api.read).json()["challenger_share"] == 0.5)
    split = routing.current_split(api.settings, fresh=True)
    seen = set()
    for i in range(30):
        cid = f"desk-{i}"
        want = routing.variant_for(split, key, cid)[0]
        got = {(b["variant"], b["model_version"], b["alias"]) for b in
               (api.get(f"/v1/predictions/SYN00{j % 3}", api.read, headers={"X-Client-Id": cid}).json() for j in range(3))}
        assert got == {(want, "2" if want == "champion" else "3", want)}, (cid, got)
        seen.add(want)
    assert seen == {"champion", "challenger"}
    rid = api.get("/v1/predictions/SYN004", api.read, headers={"X-Client-Id": "desk-0"}).headers["x-request-id"]
    def rows():
        x = routing.exposure_rows(api.r.xrange(f"{api.prefix}:exposures"))
        return x[x["request_id"] == rid].to_dict("records")
    got = wait_for(lambda: len(rows()) == 2 and rows())   # the served answer and the other arm's shadow row
    assert got, rows()
    served = [x for x in got if x["served"]][0]; shadow = [x for x in got if not x["served"]][0]
    assert {served["variant"], shadow["variant"]} == {"champion", "challenger"} and {served["version"], shadow["version"]} == {"2", "3"}
    assert served["symbol"] == shadow["symbol"] == "SYN004" and served["as_of"] == LAST
    r = api.post("/v1/admin/split", api.admin, headers={"Idempotency-Key": f"back-{uuid.uuid4().hex}"}, json={"challenger_share": 0.05})
    assert r.status_code == 200
    assert api.post("/v1/admin/split", api.admin, headers={"Idempotency-Key": "k"}, json={"challenger_share": 0.9}).status_code == 422


def test_websocket_delivery_resume_heartbeat(api):
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect
    from stock_workbench import routing
    ws_url = api.srv.url.replace("http://", "ws://") + "/v1/stream"
    with pytest.raises(InvalidStatus) as e: connect(ws_url + "?symbols=SYN000", open_timeout=10)
    assert e.value.response.status_code == 401
    with pytest.raises(InvalidStatus) as e: connect(f"{ws_url}?symbols=A..B&key={api.read}", open_timeout=10)
    assert e.value.response.status_code == 422
    # a refused handshake is one access-log line, never uvicorn's ERROR
    assert wait_for(lambda: len(re.findall(r'"WS /v1/stream" (?:401|422) ', api.srv.text)) >= 2), api.srv.text[-2000:]
    assert "ERROR" not in "".join(api.srv.err) and "Traceback" not in api.srv.text, "".join(api.srv.err)[-2000:]
    wide = pd.DataFrame({"symbol": ["SYN000", "SYN002", "SYN001"], "as_of": ["2018-01-03T14:31"] * 3, "close": [100.0, 200.0, 300.0],
                         **{f"{q}_{h}d": [v] * 3 for h in (1, 5) for q, v in (("p10", -0.02), ("p50", 0.001), ("p90", 0.02))}})
    with connect(f"{ws_url}?symbols=SYN000,SYN001&key={api.read}", open_timeout=10) as ws:
        time.sleep(0.3)   # subscribed before the publish
        routing.publish_forecasts(api.r, api.settings, wide, "stream", "2")
        msgs = [json.loads(ws.recv(timeout=10)) for _ in range(2)]
        msgs = [m for m in msgs if m["type"] == "forecast"] + [json.loads(ws.recv(timeout=10)) for m in msgs if m["type"] != "forecast"]
        assert [m["symbol"] for m in msgs] == ["SYN000", "SYN001"] and all(m["model_version"] == "2" and m["source"] == "stream" for m in msgs)
        first = msgs[0]["id"]
        hb = wait_for(lambda: (m := json.loads(ws.recv(timeout=5)))["type"] == "heartbeat" and m, timeout=6)
        assert hb and hb["id"]
    with connect(f"{ws_url}?symbols=SYN000,SYN001&from={first}", additional_headers={"X-API-Key": api.read}, open_timeout=10) as ws:
        m = json.loads(ws.recv(timeout=10))
        assert (m["type"], m["symbol"], m["id"]) == ("forecast", "SYN001", msgs[1]["id"])
    # the book took the newer stream forecast (a champion client)
    b = wait_for(lambda: (x := api.get("/v1/predictions/SYN000", api.read, headers={"X-Client-Id": "desk-c"}).json())["source"] == "stream" and x)
    assert b and b["as_of"] == "2018-01-03T14:31" and b["close"] == 100.0


def test_websocket_unknown_symbols_and_a_key_revoked_while_streaming(api):
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect
    from stock_workbench.access import KeyStore
    ws_url = api.srv.url.replace("http://", "ws://") + "/v1/stream"
    with connect(f"{ws_url}?symbols=ZZZ1,ZZZ2&key={api.read}", open_timeout=10) as ws:   # none known: closed, naming them
        with pytest.raises(ConnectionClosed) as e: ws.recv(timeout=10)
    assert e.value.rcvd.code == 1008 and "unknown symbols ZZZ1, ZZZ2" in e.value.rcvd.reason, e.value
    with connect(f"{ws_url}?symbols=SYN000,ZZZ1&key={api.read}", open_timeout=10) as ws:   # some known: an error frame, then the stream
        m = json.loads(ws.recv(timeout=10))
        assert m["type"] == "error" and m["unknown"] == ["ZZZ1"] and "streaming SYN000" in m["detail"], m
        assert json.loads(ws.recv(timeout=10))["type"] == "heartbeat"
    ks = KeyStore(api.settings)
    kid, key = ks.create("read", note="revoked while streaming")
    with connect(f"{ws_url}?symbols=SYN000&key={key}", open_timeout=10) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "heartbeat"
        ks.revoke(kid)
        with pytest.raises(ConnectionClosed) as e:
            for _ in range(20): ws.recv(timeout=10)   # heartbeats until the next check (every heartbeat, ws_heartbeat_s = 1 here)
    assert e.value.rcvd.code == 1008 and "revoked" in e.value.rcvd.reason, e.value
    assert key not in api.srv.text


def test_body_over_1_mib_is_413_before_it_is_read(api):
    from stock_workbench.serve import MAX_BODY_BYTES
    big = b'{"symbol": "' + b"A" * MAX_BODY_BYTES + b'"}'
    chunked = lambda: (big[i:i + 65536] for i in range(0, len(big), 65536))   # no Content-Length: counted as it is read
    for path, key, body, h in [("/v1/predict", api.read, big, {}), ("/v1/predict", api.read, chunked(), {}),
                               ("/v1/predict", None, b"x" * (8 * MAX_BODY_BYTES), {}),
                               ("/v1/admin/split", api.admin, chunked(), {"Idempotency-Key": f"big-{uuid.uuid4().hex}"})]:
        r = api.post(path, key, content=body, headers={"content-type": "application/json", **h})
        assert r.status_code == 413, (path, r.status_code, r.text[:300])
        assert "1 MiB" in r.json()["detail"] and r.json()["request_id"] == r.headers["x-request-id"]
    assert api.get("/v1/models", api.read).json()["challenger_share"] == 0.05   # the refused split changed nothing


def test_predict_first_session_strict_horizon_and_every_unknown_symbol(api):
    r = api.post("/v1/predict", api.read, json={"symbol": "SYN001", "as_of": FIRST})
    assert r.status_code == 422, r.text
    assert r.json()["detail"].startswith(f"as_of {FIRST} is the first stored session of SYN001; features need 3 sessions"), r.text
    for h in (True, 1.0, "1"):
        r = api.post("/v1/predict", api.read, json={"symbol": "SYN001", "horizon": h})
        assert r.status_code == 422 and "whole number of sessions" in r.json()["detail"], (h, r.text)
    r = api.post("/v1/predict", api.read, json={"requests": [{"symbol": "ZZZ1"}, {"symbol": "SYN001"}, {"symbol": "ZZZ2"},
                                                             {"symbol": "SYN002", "as_of": "2017-12-30"}, {"symbol": "ZZZ1"}]})
    assert r.status_code == 404, r.text
    d = r.json()["detail"]
    assert d.startswith("unknown symbols ZZZ1, ZZZ2: they are not in the store") and "requests[3] 2017-12-30 is not a XNYS session" in d, d


def test_predict_is_limited_per_key_and_never_blocks_reads(api):
    from stock_workbench.access import KeyStore
    from stock_workbench.serve import PREDICT_IN_FLIGHT
    from stock_workbench.store import OhlcvStore
    ks = KeyStore(api.settings)
    (_, busy), (_, other), (_, spender) = (ks.create("read", note=n) for n in ("busy", "other", "spender"))
    days = [f"{d:%Y-%m-%d}" for d in sorted(OhlcvStore.from_settings(api.settings).read(["SYN001"])["date"])[-9:-1]]
    slow = {"requests": [{"symbol": "SYN001", "as_of": d} for d in days]}   # 8 sessions: 8 scorings, seconds of CPU
    out = [None] * PREDICT_IN_FLIGHT
    def post(i):
        with httpx.Client(base_url=api.srv.url, timeout=120) as c: out[i] = c.post("/v1/predict", json=slow, headers={"X-API-Key": busy})
    threads = [threading.Thread(target=post, args=(i,)) for i in range(PREDICT_IN_FLIGHT)]
    for t in threads: t.start()
    assert wait_for(lambda: f"swb_serve_predict_in_flight {PREDICT_IN_FLIGHT:.1f}" in api.get("/metrics").text, timeout=30)
    r = api.post("/v1/predict", busy, json={"symbol": "SYN001"})
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1 and "PREDICT_IN_FLIGHT" in r.json()["detail"], r.text
    assert api.get("/v1/predictions/SYN000", busy).status_code == 200   # the read routes answer meanwhile
    assert api.get("/v1/models", busy).status_code == 200
    assert api.post("/v1/predict", other, json={"symbol": "SYN001"}).status_code == 200   # another key is not limited by this one
    for t in threads: t.join(120)
    assert [(x.status_code, len(x.json()["predictions"])) for x in out] == [(200, 8)] * PREDICT_IN_FLIGHT, [x.text[:300] for x in out]
    # the token bucket: a request costs the sessions it names; 100 at once empty it (these 404 at once, after the charge)
    far = {"requests": [{"symbol": "SYN001", "as_of": f"{d:%Y-%m-%d}"} for d in pd.bdate_range("2019-01-01", periods=100)]}
    assert api.post("/v1/predict", spender, json=far).status_code == 404
    r = api.post("/v1/predict", spender, json=far)
    assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1 and r.json()["detail"].startswith("rate limit"), r.text


def test_serve_port_in_use_or_bad_host_is_one_line(api):
    port = int(api.srv.url.rsplit(":", 1)[1])
    for args, want in [(["--port", port], [f"127.0.0.1:{port}", "Address already in use"]),
                       (["--host", "no-such-host.invalid", "--port", "0"], ["no-such-host.invalid:0", "no such host"])]:
        r = run(api.env, "serve", *args, timeout=60)
        err = r.stderr.strip()
        assert r.returncode != 0 and err.count("\n") == 0 and "Traceback" not in err and all(w in err for w in want), (args, r.stderr)


def test_keys_cli(api):
    r = run(api.env, "keys", "create", "--scope", "read", "--client", "desk-9", "--note", "cli test")
    assert r.returncode == 0, r.stderr
    key = r.stdout.strip()
    kid = re.search(r"created key ([0-9a-f]{8})", r.stderr).group(1)
    assert re.fullmatch(r"swb_[0-9a-f]{8}_\S{43}", key) and key not in r.stderr
    b = api.get("/v1/predictions/SYN003", key).json()
    assert b["symbol"] == "SYN003"
    r = run(api.env, "keys", "list", "--json")
    assert r.returncode == 0 and key not in r.stdout
    rows = {x["key_id"]: x for x in json.loads(r.stdout)}
    assert rows[kid]["client_id"] == "desk-9" and rows[kid]["scope"] == "read" and rows[kid]["revoked"] is None
    assert run(api.env, "keys", "revoke", kid).returncode == 0
    assert wait_for(lambda: api.get("/v1/predictions/SYN003", key).status_code == 401)
    r = run(api.env, "keys", "revoke", "0badcafe")
    assert r.returncode == 1 and r.stderr.startswith("swb: error: no API key with id")


def test_refresh_thread_survives_damaged_serving_files(api):
    "A drift.json or arms.json of the wrong shape never stops the background refresh: routes answer 200 throughout, the restored files are read"
    sv = api.home / "serving"
    saved = {n: (sv / n).read_bytes() if (sv / n).exists() else None for n in ("drift.json", "arms.json")}
    try:
        for drift_text, arms_text in [('{"features": "x", "fallback_level": "two"}', '{"arms": "x"}'), ('[1, 2]', '"x"'),
                                      ('{"fallback_level": NaN, "features": {"a": 1}}', '{"as_of": "garbage", "arms": [1]}')]:
            (sv / "drift.json").write_text(drift_text); (sv / "arms.json").write_text(arms_text)
            end = time.monotonic() + 2.5   # the drift and accuracy jobs run every 2 and 5 s
            while time.monotonic() < end:
                for path in ("/v1/predictions/SYN000", "/v1/models", "/v1/predictions"):
                    r = api.get(path, api.read)
                    assert r.status_code == 200, (drift_text, path, r.text)
                assert api.get("/readyz").status_code == 200
                time.sleep(0.2)
        marker = f"h5-{uuid.uuid4().hex[:8]}"
        (sv / "drift.json").write_text(json.dumps({"as_of": LAST, "model_version": "2", "status": "ok", "features": [], "performance": None,
                                                   "fallback_level": 0, "reason": marker}))
        assert wait_for(lambda: api.get("/v1/models", api.read).json()["drift"].get("reason") == marker), api.get("/v1/models", api.read).text
    finally:
        for n, b in saved.items():
            if b is None: (sv / n).unlink(missing_ok=True)
            else: (sv / n).write_bytes(b)
    assert "Exception in thread" not in api.srv.text and "Traceback" not in api.srv.text, api.srv.text[-3000:]
    assert api.get("/v1/models", api.read).json()["fallback_level"] == 0


def test_websocket_bad_from_is_422_and_replay_skips_implausible_entries(api):
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect
    from stock_workbench.routing import feed_key
    ws_url = api.srv.url.replace("http://", "ws://") + "/v1/stream"
    for q in ("from=18446744073709551616-0", "from=0-18446744073709551616", "from=99999999999999999999-0", "symbols=syn005"):
        with pytest.raises(InvalidStatus) as e: connect(f"{ws_url}?{q}&key={api.read}", open_timeout=10)
        assert e.value.response.status_code == 422, q
    # implausible feed entries (as the live reader drops them) are never replayed either
    base = {"symbol": "SYN005", "source": "stream", "model_version": "3", "published_ms": "0"}
    good = {"as_of": "2018-01-03T15:00", "close": "50", "p10_1d": "-0.02", "p50_1d": "0.001", "p90_1d": "0.02"}
    bad = [{**good, "p50_1d": "nan"}, {**good, "p10_1d": "0.05"}, {**good, "as_of": "2099-01-01"}, {**good, "as_of": "garbage"},
           {**good, "close": "-1"}, {**good, "p50_1d": "1e308", "p90_1d": "1e308"}]
    ids = [api.r.xadd(feed_key(api.settings), {**base, **b}).decode() for b in bad]
    ok = api.r.xadd(feed_key(api.settings), {**base, **good}).decode()
    with connect(f"{ws_url}?symbols=SYN005&from=0-0&key={api.read}", open_timeout=10) as ws:
        got = []
        while (m := json.loads(ws.recv(timeout=10)))["type"] != "heartbeat": got.append((m["type"], m.get("id")))
    assert got == [("forecast", ok)], (got, ids)
    assert "Traceback" not in api.srv.text, api.srv.text[-3000:]


def test_websocket_a_lagging_client_gets_the_latest_per_symbol_and_batch_frames(api):
    "Clients that stop reading while 6,000 forecasts land, then read: the latest per symbol (conflated), not the backlog; `?batch=1` frames"
    import socket
    from urllib.parse import urlparse
    from websockets.sync.client import connect
    from stock_workbench import routing
    from stock_workbench.serve import stream_id
    u, syms, rounds = urlparse(api.srv.url), ["SYN003", "SYN004"], 3000
    url = f"ws://{u.hostname}:{u.port}/v1/stream?symbols={','.join(syms)}&key={api.read}"
    def lagging(q=""):   # its socket takes 4 KiB and its library holds one frame: it stops reading until the test reads
        s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096); s.connect((u.hostname, u.port))
        return connect(url + q, sock=s, max_queue=1, open_timeout=10)
    def conflations(): return float(re.search(r"^swb_serve_ws_conflations_total ([\d.e+]+)", api.get("/metrics", api.read).text, re.M).group(1))
    def wide(close):   # as_of before the ledger's: the book keeps its forecasts, the clients still get these
        return pd.DataFrame({"symbol": syms, "as_of": ["2017-12-01T15:00"] * 2, "close": [close] * 2,
                             **{f"{q}_{h}d": [v] * 2 for h in (1, 5) for q, v in (("p10", -0.02), ("p50", 0.001), ("p90", 0.02))}})
    def read_to_the_end(ws):   # frames as (type, forecasts) until the last round (close 999) of every symbol has come
        frames, done = [], set()
        while done != set(syms):
            m = json.loads(ws.recv(timeout=30))
            fc = m["forecasts"] if m["type"] == "batch" else [m] if m["type"] == "forecast" else []
            frames.append((m["type"], fc)); done |= {f["symbol"] for f in fc if f["close"] == 999.0}
        return frames
    before = conflations()
    with lagging() as slow, lagging("&batch=1") as slow_batch, connect(url + "&batch=1", open_timeout=10) as probe:
        time.sleep(0.3)   # subscribed before the publish
        p = api.r.pipeline(transaction=False)
        for i in range(rounds): routing.publish_forecasts(p, api.settings, wide(100.0 + i % 50), "stream", "2")
        routing.publish_forecasts(p, api.settings, wide(999.0), "stream", "2")
        p.execute()
        last = {routing.parse_feed({k.decode(): v.decode() for k, v in f.items()})["symbol"]: mid.decode()
                for mid, f in api.r.xrevrange(routing.feed_key(api.settings), count=2)}
        read_to_the_end(probe)   # a reading client has the last round: the server has fanned out the whole burst
        got = {"one per frame": read_to_the_end(slow), "batch=1": read_to_the_end(slow_batch)}
    published = len(syms) * (rounds + 1)
    for name, frames in got.items():
        fc = [f for _, fs in frames for f in fs]
        assert len(fc) < published / 4, (name, len(fc))   # what the socket buffers held, then the latest: not the backlog
        for s in syms:
            ids = [stream_id(f["id"]) for f in fc if f["symbol"] == s]
            assert ids == sorted(set(ids)) and ids[-1] == stream_id(last[s]), (name, s)
    assert {t for t, _ in got["one per frame"]} <= {"forecast", "heartbeat"}
    batches = [fs for t, fs in got["batch=1"] if t == "batch"]
    assert batches, got["batch=1"][-5:]
    for fs in batches:   # two or more, one per symbol, in stream order, each a whole forecast
        assert len(fs) >= 2 and len({f["symbol"] for f in fs}) == len(fs) and [f["id"] for f in fs] == sorted((f["id"] for f in fs), key=stream_id)
        assert all(f["type"] == "forecast" and f["model_version"] == "2" and {"p10_1d", "p50_1d", "p90_1d"} <= f.keys() for f in fs)
    assert conflations() - before > published / 2   # the skipped forecasts are counted
    from websockets.exceptions import InvalidStatus
    with pytest.raises(InvalidStatus) as e: connect(f"{url}&batch=maybe", open_timeout=10)
    assert e.value.response.status_code == 422


def test_websocket_header_and_url_over_the_limit_are_refused(api):
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect
    from stock_workbench.serve import MAX_HEADER_BYTES
    r = api.get("/v1/predictions/SYN000", api.read, headers={"X-Pad": "x" * MAX_HEADER_BYTES})
    assert r.status_code == 431 and "64 KiB" in r.json()["detail"], r.text
    ws_url = api.srv.url.replace("http://", "ws://") + "/v1/stream"
    many = {f"X-Pad-{i}": "x" * 7000 for i in range(10)}   # each line under websockets' 8 KiB, 70 kB in all: the edge's 431
    for url, headers, status in [(f"{ws_url}?symbols=SYN000&key={api.read}", many, 431),
                                 (f"{ws_url}?symbols=SYN000&key={api.read}", {"X-Pad": "x" * MAX_HEADER_BYTES}, 431),   # one line over 8 KiB
                                 (f"{ws_url}?symbols=SYN000&key={api.read}&pad={'x' * 130_000}", {}, 414)]:   # B13's 130 kB URL
        with pytest.raises(InvalidStatus) as e: connect(url, additional_headers=headers, open_timeout=10)
        assert e.value.response.status_code == status, (len(url), e.value.response.status_code)
    with connect(f"{ws_url}?symbols=SYN000&key={api.read}", open_timeout=10) as ws:   # the server still streams
        assert json.loads(ws.recv(timeout=10))["type"] == "heartbeat"


def test_post_needs_json_content_type_and_strict_query(api):
    for ct in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x", None):
        r = api.post("/v1/predict", api.read, content=b'{"symbol": "SYN001"}', headers={"content-type": ct} if ct else {})
        assert r.status_code == 415 and "application/json" in r.json()["detail"], (ct, r.text)
    r = api.post("/v1/admin/split", api.admin, content=b"challenger_share=0.1",
                 headers={"content-type": "application/x-www-form-urlencoded", "Idempotency-Key": f"ct-{uuid.uuid4().hex}"})
    assert r.status_code == 415, r.text
    r = api.c.get("/v1/models/", headers={"X-API-Key": api.read, "Host": "evil.example"}, follow_redirects=False)
    assert r.status_code == 404 and "location" not in r.headers, r.headers
    for qs in ("horizon=1.0", "horizon=1&horizon=5"):
        for path in ("/v1/predictions/SYN000", "/v1/predictions"):
            r = api.get(f"{path}?{qs}", api.read)
            assert r.status_code == 422 and "horizon" in r.json()["detail"], (path, qs, r.text)
    for as_of, want in [("2030-01-02", f"after the latest stored session {LAST} of SYN001"), ("1900-01-02", f"before the first stored session {FIRST} of SYN001")]:
        r = api.post("/v1/predict", api.read, json={"symbol": "SYN001", "as_of": as_of})
        assert r.status_code == 404 and want in r.json()["detail"], r.text
    for share in (b"NaN", b"true", b'"0.05"'):
        r = api.post("/v1/admin/split", api.admin, content=b'{"challenger_share": %s}' % share,
                     headers={"Idempotency-Key": f"nan-{uuid.uuid4().hex}", "content-type": "application/json"})
        assert r.status_code == 422 and "must be a number" in r.json()["detail"], (share, r.text)
    from stock_workbench.routing import IDEMPOTENCY_KEY_MAX
    r = api.post("/v1/admin/rollback", api.admin, headers={"Idempotency-Key": "k" * (IDEMPOTENCY_KEY_MAX + 1)})
    assert r.status_code == 422 and "Idempotency-Key" in r.json()["detail"], r.text


def test_a_challenger_without_forecasts_answers_with_the_champion(api):
    "A client routed to the challenger while it has no forecast gets the champion's (alias champion, level 0), never the baseline"
    from stock_workbench import registry, routing
    c, name = registry.client(api.settings), api.settings.registered_model
    v3 = c.get_model_version(name, "3")
    fresh = c.create_model_version(name, source=v3.source, run_id=v3.run_id).version   # the same model, no forecasts in the ledger
    registry.set_alias(api.settings, "challenger", fresh)
    try:
        r = api.post("/v1/admin/split", api.admin, headers={"Idempotency-Key": f"fresh-{uuid.uuid4().hex}"}, json={"challenger_share": 0.5})
        assert r.status_code == 200, r.text
        assert wait_for(lambda: (m := api.get("/v1/models", api.read).json())["arms"]["challenger"]["version"] == str(fresh)
                        and m["challenger_share"] == 0.5)
        split, key = routing.current_split(api.settings, fresh=True), routing.ab_key(api.settings)
        cid = next(f"desk-{i}" for i in range(1000) if routing.variant_for(split, key, f"desk-{i}")[0] == "challenger")
        b = api.get("/v1/predictions/SYN001", api.read, headers={"X-Client-Id": cid}).json()
        assert (b["variant"], b["alias"], b["model_version"], b["fallback_level"]) == ("challenger", "champion", "2", 0), b
        t = api.get("/v1/predictions", api.read, params={"top": 2}, headers={"X-Client-Id": cid}).json()
        assert (t["variant"], t["alias"], t["model_version"]) == ("challenger", "champion", "2"), t
    finally:
        registry.set_alias(api.settings, "challenger", "3")
        api.post("/v1/admin/split", api.admin, headers={"Idempotency-Key": f"back-{uuid.uuid4().hex}"}, json={"challenger_share": 0.05})
    assert wait_for(lambda: api.get("/v1/models", api.read).json()["arms"]["challenger"]["version"] == "3")


def test_rollback_is_idempotent_then_fallback_when_the_champion_files_go(api):
    from stock_workbench import registry
    h = {"Idempotency-Key": f"rb-{uuid.uuid4().hex}"}
    assert api.post("/v1/admin/rollback", api.admin).status_code == 422   # no Idempotency-Key
    r1 = api.post("/v1/admin/rollback", api.admin, headers=h)
    assert r1.status_code == 200, r1.text
    assert r1.json()["op"] == "rollback" and r1.json()["result"]["champion"] == "1"
    r2 = api.post("/v1/admin/rollback", api.admin, headers=h)   # the same key: the first answer, nothing changes
    assert (r2.status_code, r2.json()) == (200, r1.json())
    assert api.post("/v1/admin/split", api.admin, headers=h, json={"challenger_share": 0.1}).status_code == 422   # key reused elsewhere
    assert registry.alias_version(api.settings, "champion") == "1"
    audit = [json.loads(l) for l in (api.home / "serving" / "audit.jsonl").read_text().splitlines()]
    assert [a["op"] for a in audit].count("rollback") == 1
    r3 = api.post("/v1/admin/rollback", api.admin, headers={"Idempotency-Key": f"rb-{uuid.uuid4().hex}"})
    assert r3.status_code == 409 and "no previous champion" in r3.json()["detail"]   # version 1 has none
    b = wait_for(lambda: (x := api.get("/v1/predictions/SYN000", api.read, headers={"X-Client-Id": "desk-c"}).json())["model_version"] == "1" and x)
    assert b and (b["alias"], b["fallback_level"]) == ("champion", 0)

    # the champion's artifact folder disappears: the answer comes from the fallback, never an error
    shutil.rmtree(registry._model_dir(api.settings, "1")[1])
    b = wait_for(lambda: (x := api.get("/v1/predictions/SYN000", api.read, headers={"X-Client-Id": "desk-c"})).status_code == 200
                 and x.json()["fallback_level"] >= 1 and x.json())
    assert b and b["model_version"] == "baseline" and b["alias"] == "baseline", b   # no previous champion after the rollback: level 2
    m = api.get("/v1/models", api.read).json()
    assert m["fallback"]["load"] == 2 and "missing" in m["fallback"]["load_reason"] and not m["arms"]["champion"]["loaded"]
    assert "missing" in (m["arms"]["champion"]["error"] or ""), m["arms"]   # the arm says why it is not loaded
    r = api.post("/v1/predict", api.read, json={"symbol": "SYN001"}, headers={"X-Client-Id": "desk-c"})
    assert r.status_code == 200 and r.json()["fallback_level"] >= 1 and r.json()["model_version"] == "baseline", r.text
    assert api.get("/v1/predictions", api.read, params={"top": 2}, headers={"X-Client-Id": "desk-c"}).json()["fallback_level"] == 2
    assert "swb_serve_fallback_level 2.0" in wait_for(lambda: "swb_serve_fallback_level 2.0" in (t := api.get("/metrics").text) and t)
    r = wait_for(lambda: (x := api.get("/readyz")).json()["checks"]["fallback"].startswith("level 2") and x)   # degraded, still serving
    assert r and r.status_code == 200 and "champion v1 failed to load" in r.json()["checks"]["fallback"], api.get("/readyz").text


def test_split_without_a_challenger_is_409(api):
    from stock_workbench import registry
    registry.client(api.settings).delete_registered_model_alias(api.settings.registered_model, "challenger")
    h = {"Idempotency-Key": f"nochal-{uuid.uuid4().hex}"}
    r1 = api.post("/v1/admin/split", api.admin, headers=h, json={"challenger_share": 0.1})
    assert r1.status_code == 409 and r1.json()["detail"].startswith("no challenger registered; the split would route nobody"), r1.text
    r2 = api.post("/v1/admin/split", api.admin, headers=h, json={"challenger_share": 0.1})   # the same key: the same answer
    assert (r2.status_code, r2.json()) == (409, r1.json())
    assert api.post("/v1/admin/split", api.admin, headers=h, json={"challenger_share": 0.2}).status_code == 422
    m = wait_for(lambda: (x := api.get("/v1/models", api.read).json())["arms"]["challenger"]["version"] is None and x)
    assert m and m["challenger_share"] == 0.0


def test_no_auth_only_on_loopback(api):
    r = run(api.env, "serve", "--no-auth", "--host", "0.0.0.0", "--port", "0", timeout=60)
    assert r.returncode == 2 and r.stderr.strip().count("\n") == 0 and "loopback" in r.stderr, r.stderr


def test_sigterm_exits_0_and_no_key_in_the_output(api):
    api.get("/v1/predictions/SYN000", api.read, params={"horizon": 1})
    code = api.srv.stop(signal.SIGTERM)
    assert code == 0, api.srv.text[-2000:]
    text = api.srv.text
    assert api.read not in text and api.admin not in text and "key=" not in text and "swb_" not in text
    assert re.search(r'"GET /v1/predictions/SYN000" 200 [\d.]+ms [0-9a-f]{32}', text), text[-1000:]
    assert "?" not in "".join(l for l in api.srv.out if '"GET' in l)   # no query strings in the access log
