"swb news crawl against a local site only (never the internet): robots.txt obeyed, the delay kept, items stored scrubbed, failures counted, bad sites files"
import functools, json, threading, time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
import pytest
from conftest import swb
from test_cli import one_line_error

SITE = Path(__file__).parent / "fixtures" / "newssite"
DELAY_S = 0.4
PERSONAL = ["jane.doe@example.com", "john.roe@mail.example.org", "212-555-0143", "555-0143", "212.555.0199", "@jane_doe", "Jane Doe", "John Roe"]


class _Logged(SimpleHTTPRequestHandler):
    log = None   # [(monotonic time, path, user agent)], set per server
    def do_GET(self):
        self.log.append((time.monotonic(), self.path, self.headers.get("User-Agent", "")))
        super().do_GET()
    def log_message(self, *a): pass


@pytest.fixture
def site():
    "The fixture news site on 127.0.0.1 in a thread; yields (base URL, request log)"
    log = []
    srv = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(type("H", (_Logged,), {"log": log}), directory=str(SITE)))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_port}", log
    srv.shutdown(); srv.server_close()


def sites_toml(home, base, extra="", **over):
    "Write news_sites.toml with the site `wire` at `base` (keys overridden by `over`) and `extra` TOML text"
    keys = {"start_urls": [f"{base}/index.html"], "allowed_domains": ["127.0.0.1"], "link_selector": "a.story", "title_selector": "h1",
            "time_selector": "time::attr(datetime)", "body_selector": "article p:not(.byline)", "author_selector": ".byline",
            "symbols_selector": ".tickers li", "source": "local", "delay_s": DELAY_S, **over}
    (home / "news_sites.toml").write_text("[sites.wire]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in keys.items() if v is not None) + extra)


def test_crawl_obeys_robots_keeps_the_delay_and_stores_scrubbed_items(home, site, monkeypatch):
    monkeypatch.setenv("SWB_SYMBOLS", "SYN000,SYN001")   # given symbols are kept only if in the universe
    base, log = site
    sites_toml(home, base)
    r = swb("news", "crawl", "--json")
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    out = json.loads(r.stdout)
    paths = [p for _, p, _ in log]
    assert paths[0] == "/robots.txt"                                        # robots.txt is read before anything else
    assert "/private/secret.html" not in paths                              # the disallowed page is never requested
    assert sorted(paths) == sorted(["/robots.txt", "/index.html", "/articles/1.html", "/articles/2.html", "/articles/missing.html"]), paths
    assert all("stock_workbench" in ua for _, _, ua in log)
    t = [x for x, _, _ in log]
    gaps = [b - a for a, b in zip(t, t[1:])]
    assert min(gaps) >= DELAY_S * 0.9, gaps                                  # one request at a time, at least the site's delay apart
    wire = out["sites"]["wire"]
    assert wire["pages"] == 3 and wire["items"] == 2, wire
    assert wire["errors"] == {"disallowed by robots.txt": 1, "HTTP 404": 1}, wire
    assert out["stored"] == 2, out
    from stock_workbench.config import Settings
    from stock_workbench.news import NewsStore
    stored = NewsStore.from_settings(Settings(home)).read()
    assert len(stored) == 2 and set(stored["source"]) == {"local"}
    by = {r_.symbols: r_ for r_ in stored.itertuples()}
    assert set(by) == {"SYN000", "SYN001,SYN000"} or set(by) == {"SYN000", "SYN000,SYN001"}, set(by)
    assert any("beats estimates" in x for x in stored["title"]) and all(str(a).startswith("author_") for a in stored["author"])
    # personal data of the pages: nowhere in the store's files, nor in what the command printed
    raw = b"".join(p.read_bytes() for p in (home).rglob("*") if p.is_file() and "news" in str(p))
    for pii in PERSONAL:
        assert pii.encode() not in raw, pii
        assert pii not in r.stdout + r.stderr, pii
    # a second crawl stores nothing new
    r2 = swb("news", "crawl", "--json")
    assert r2.returncode == 0, r2.stderr
    again = json.loads(r2.stdout)
    assert again["stored"] == 0 and again["duplicates"] == 2, again


def test_max_pages_stops_the_crawl(home, site):
    base, log = site
    sites_toml(home, base)
    r = swb("news", "crawl", "--max-pages", "2", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["sites"]["wire"]["pages"] <= 2
    assert len([p for _, p, _ in log if p != "/robots.txt"]) <= 3      # Scrapy may have one request in flight when it stops


def test_a_down_site_is_counted_and_the_others_still_land(home, site):
    base, _ = site
    down = ('[sites.down]\nstart_urls = ["http://127.0.0.1:1/"]\nallowed_domains = ["127.0.0.1"]\nlink_selector = "a"\ntitle_selector = "h1"\n'
            'time_selector = "time::attr(datetime)"\nbody_selector = "p"\nsource = "local"\ndelay_s = 0.1\n')
    sites_toml(home, base, extra=down)
    r = swb("news", "crawl", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["stored"] == 2 and out["sites"]["down"]["pages"] == 0
    assert any(k.startswith("unreachable") and "at start URL http://127.0.0.1:1/" in k for k in out["sites"]["down"]["errors"]), out["sites"]["down"]
    only = swb("news", "crawl", "--site", "down")                        # no site worked: exit 1, one line naming why
    line = one_line_error(only, "no site could be crawled", "down: unreachable")
    assert "Traceback" not in only.stderr


def test_a_disallowed_start_page_is_a_failed_site(home, site):
    base, log = site
    sites_toml(home, base, start_urls=[f"{base}/private/index.html"])
    r = swb("news", "crawl")
    one_line_error(r, "no site could be crawled", "disallowed by robots.txt")
    assert [p for _, p, _ in log] == ["/robots.txt"]


@pytest.mark.parametrize("over, needle", [
    ({"colour": "red"}, "sites.wire.colour: unknown key"),
    ({"title_selector": None}, "sites.wire.title_selector is missing"),
    ({"body_selector": "article p[["}, "sites.wire.body_selector"),
    ({"start_urls": ["https://news.example.com/"]}, "sites.wire.start_urls: 'https://news.example.com/' is outside allowed_domains"),
    ({"allowed_domains": ["http://127.0.0.1/"]}, "sites.wire.allowed_domains"),
    ({"source": "gossip"}, "sites.wire.source = 'gossip'"),
    ({"delay_s": -1}, "sites.wire.delay_s"),
])
def test_a_bad_sites_file_is_one_line_and_fetches_nothing(home, site, over, needle):
    base, log = site
    sites_toml(home, base, **over)
    one_line_error(swb("news", "crawl"), needle)
    assert log == []


def test_no_sites_file_bad_toml_and_unknown_site(home, site):
    one_line_error(swb("news", "crawl"), "no sites file at", "news_sites.toml")
    (home / "news_sites.toml").write_text("[sites.wire\nstart_urls = 1\n")
    one_line_error(swb("news", "crawl"), "news_sites.toml: not valid TOML")
    sites_toml(home, site[0])
    one_line_error(swb("news", "crawl", "--site", "nope"), "--site nope: not a site of news_sites.toml (sites: wire)")
    one_line_error(swb("news", "crawl", "--max-pages", "0"), "--max-pages must be at least 1")
