"""A local stand-in for Yahoo Finance: serves the recorded responses in `tests/fixtures/yahoo` on 127.0.0.1.

Point the workbench at it with `SWB_YAHOO_BASE_URL=<url>` (or `Settings.yahoo_base_url`):

    with serve_yahoo() as url:
        subprocess.run(["swb", "ingest", "--source", "yahoo", "--symbols", "AAPL,MSFT", "--start", "2024-01-02"],
                       env={**os.environ, "SWB_YAHOO_BASE_URL": url}, check=True)

`python tests/yahoo_server.py [PORT]` serves until Ctrl-C. Only the endpoints yfinance calls for daily
history are served: the cookie page, `getcrumb`, the consent page, `v8/finance/chart/{symbol}` and
`v10/finance/quoteSummary/{symbol}` (always "not found": yfinance asks it only for a symbol without a chart).
"""
from __future__ import annotations
import copy, json, socket, sys, threading
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator
from urllib.parse import parse_qs, unquote, urlsplit

FIXTURES = Path(__file__).parent/"fixtures"/"yahoo"
_RANGE_DAYS = {"5d": 5, "1mo": 31, "3mo": 92, "6mo": 183, "1y": 366, "2y": 731, "5y": 1827, "10y": 3653}
_EVENTS = {"div": "dividends", "split": "splits", "splits": "splits", "capitalGains": "capitalGains"}  # query word: JSON key
_CRUMB_COOKIE = "A3=d=AQABBLocalTestCookie&S=AQAAAFixture; Max-Age=31557600; Path=/; SameSite=None; HttpOnly"


def _slice_chart(recorded:dict, query:dict)->tuple[int, dict]:
    "HTTP status and body Yahoo gives for `query` on a symbol whose full history is `recorded`"
    interval = query.get("interval", "1d")
    if interval != "1d":
        return 400, {"chart": {"result": None, "error": {"code": "Bad Request",
                     "description": f"Invalid input - interval={interval} is not recorded in the fixtures"}}}
    res = copy.deepcopy(recorded["chart"]["result"][0])
    stamps = res["timestamp"]
    rng = query.get("range")
    if rng == "1d": keep = [len(stamps) - 1]
    elif rng == "max" or (rng is None and "period1" not in query): keep = list(range(len(stamps)))
    elif rng is not None:
        first = stamps[-1] - _RANGE_DAYS.get(rng, 31) * 86400
        keep = [i for i, t in enumerate(stamps) if t > first]
    else:
        lo, hi = int(query["period1"]), int(query.get("period2", 2**40))
        keep = [i for i, t in enumerate(stamps) if lo <= t < hi]
    res["meta"].update(range=rng or "", dataGranularity=interval)
    events = res.pop("events", {})
    if not keep:  # Yahoo's answer for a range without sessions: meta and empty indicators
        res.pop("timestamp")
        res["indicators"] = {"quote": [{}], "adjclose": [{}]}
        return 200, {"chart": {"result": [res], "error": None}}
    first_t, last_t = stamps[keep[0]], stamps[keep[-1]]
    res["timestamp"] = [stamps[i] for i in keep]
    q = res["indicators"]["quote"][0]
    res["indicators"]["quote"][0] = {k: [v[i] for i in keep] for k, v in q.items()}
    adj = res["indicators"]["adjclose"][0]["adjclose"]
    res["indicators"]["adjclose"][0]["adjclose"] = [adj[i] for i in keep]
    wanted = {_EVENTS.get(w) for w in query.get("events", "").split(",")}
    events = {kind: {k: e for k, e in evs.items() if first_t <= e["date"] <= last_t}
              for kind, evs in events.items() if kind in wanted}
    events = {k: v for k, v in events.items() if v}
    if events: res = {"meta": res["meta"], "timestamp": res["timestamp"], "events": events, "indicators": res["indicators"]}
    return 200, {"chart": {"result": [res], "error": None}}


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: "_Server"

    def log_message(self, *args): pass  # quiet: the request log is `YahooServer.requests`

    def _send(self, status:int, body:str|bytes, ctype:str="application/json;charset=utf-8", headers:dict|None=None):
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items(): self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.do_GET()

    def do_GET(self):
        u = urlsplit(self.path)
        path, query = unquote(u.path), {k: v[-1] for k, v in parse_qs(u.query).items()}
        self.server.log.append({"method": self.command, "host": self.headers.get("X-Forwarded-Host", ""),
                                "path": path, "query": query})
        fx = self.server.fixtures
        parts = [p for p in path.split("/") if p]
        if parts[:3] == ["v8", "finance", "chart"] and len(parts) == 4:
            f = fx/"chart"/f"{parts[3].upper()}.json"
            if not f.is_file(): return self._send(404, (fx/"chart_not_found.json").read_text())
            status, body = _slice_chart(json.loads(f.read_text()), query)
            return self._send(status, json.dumps(body, separators=(",", ":")))
        if parts[:3] == ["v10", "finance", "quoteSummary"] and len(parts) == 4:
            return self._send(404, (fx/"quote_summary_not_found.json").read_text().replace("{symbol}", parts[3].upper()))
        if parts == ["v1", "test", "getcrumb"]:
            return self._send(200, (fx/"getcrumb.txt").read_text(), "text/plain;charset=utf-8")
        if not parts:  # fc.yahoo.com: a 404 page that sets the session cookie
            return self._send(404, "<html><body>Not Found</body></html>", "text/html", {"Set-Cookie": _CRUMB_COOKIE})
        self._send(404, "<html><body>Not Found</body></html>", "text/html")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True


class YahooServer:
    "The recorded-Yahoo server on 127.0.0.1 in a background thread; `requests` logs what it was asked"
    def __init__(self,
                 fixtures:str|Path=FIXTURES, # folder laid out like tests/fixtures/yahoo
                 port:int=0,                 # 0: any free port
                ):
        self.fixtures, self.port, self._srv, self._thread = Path(fixtures), port, None, None

    def start(self)->str:
        "Start serving and return the base URL, e.g. http://127.0.0.1:54321"
        self._srv = _Server(("127.0.0.1", self.port), _Handler)
        self._srv.fixtures, self._srv.log = self.fixtures, []
        self._thread = threading.Thread(target=self._srv.serve_forever, name="yahoo-fixture-server", daemon=True)
        self._thread.start()
        return self.url

    def stop(self):
        if self._srv is None: return
        self._srv.shutdown(); self._srv.server_close(); self._thread.join()
        self._srv = None

    @property
    def url(self)->str: return f"http://127.0.0.1:{self._srv.server_address[1]}"

    @property
    def requests(self)->list[dict]: return self._srv.log if self._srv else []

    def __enter__(self): self.start(); return self
    def __exit__(self, *exc): self.stop()


@contextmanager
def serve_yahoo(fixtures:str|Path=FIXTURES)->Iterator[str]:
    "Serve the recorded Yahoo responses on a free port for the duration of the block; yields the base URL"
    with YahooServer(fixtures) as srv: yield srv.url


def closed_url()->str:
    "A base URL on 127.0.0.1 where nothing listens: connections are refused at once"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


if __name__ == "__main__":
    srv = YahooServer(port=int(sys.argv[1]) if len(sys.argv) > 1 else 0)
    print(srv.start(), flush=True)
    try: threading.Event().wait()
    except KeyboardInterrupt: srv.stop()
