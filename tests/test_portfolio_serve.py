"Client portfolios delivered: GET /v1/portfolios/{id}/forecast on the real server (subprocess) over a real PostgreSQL database, who may see which book, hostile ids, a dead database; and the EOD report's portfolios section"
import json, math, os, shutil, signal, uuid
from pathlib import Path
from urllib.parse import quote
import httpx, psycopg, pytest, redis
from psycopg import sql
from conftest import REDIS_URL
from test_serve import LAST, Api, Server, home_env, run, serve_home

SERVER = "postgresql://postgres@127.0.0.1:5432"
EVIL = "x'); DROP TABLE positions;--"
POSITIONS = "portfolio,symbol,quantity,as_of,client_id\n" + "\n".join([
    "P1,SYN000,100,2017-06-01,c1", "P1,SYN001,50,2017-06-01,", "P2,SYN002,30,2017-06-01,c2", f"\"{EVIL}\",SYN003,10,2017-06-01,c2"]) + "\n"


@pytest.fixture(scope="module")
def pf(tmp_path_factory):
    "A copy of the served home with books of clients c1 and c2 in a database of this module, keys of each kind, and the server"
    name = f"swbt_{uuid.uuid4().hex[:10]}"
    home = tmp_path_factory.mktemp("pfserve") / "home"
    shutil.copytree(serve_home(tmp_path_factory), home)
    a = Api()
    a.home, a.prefix, a.db = home, f"swbt-{uuid.uuid4().hex[:10]}", f"{SERVER}/{name}"
    a.env = home_env(home, a.prefix, SWB_PORTFOLIO_DB_URL=a.db)
    assert run(a.env, "db", "upgrade").returncode == 0
    (home.parent / "pos.csv").write_text(POSITIONS)
    r = run(a.env, "portfolio", "import", "--path", home.parent / "pos.csv")
    assert r.returncode == 0, r.stderr
    from stock_workbench.access import KeyStore
    from stock_workbench.config import Settings
    ks = KeyStore(Settings(home, env=a.env))
    a.c1 = ks.create("read", "c1")[1]
    a.c2 = ks.create("read", "c2")[1]
    a.unbound = ks.create("read")[1]
    a.admin = ks.create("admin")[1]
    a.srv = Server(a.env)
    a.c = httpx.Client(base_url=a.srv.url, timeout=120)
    yield a
    a.c.close()
    if a.srv.p.poll() is None: a.srv.stop(signal.SIGKILL)
    rc = redis.Redis.from_url(REDIS_URL)
    for k in rc.scan_iter(f"{a.prefix}:*", count=1000): rc.delete(k)
    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as c:
        c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def path(pid, date=None): return f"/v1/portfolios/{quote(pid, safe='')}/forecast" + (f"?date={date}" if date else "")
def finite(x): return isinstance(x, (int, float)) and math.isfinite(x)


def test_a_client_key_sees_its_own_book(pf):
    r = pf.get(path("P1"), pf.c1)
    assert r.status_code == 200, r.text
    b = r.json()
    assert b["portfolio_id"] == "P1" and b["as_of"] == LAST and b["request_id"] == r.headers["x-request-id"] and b["method"]
    assert b["model_version"] and b["var_horizon"] == 1 and finite(b["value"]) and b["es"] >= b["var"] > 0
    assert sorted(h["horizon"] for h in b["horizons"]) == [1, 5]
    for h in b["horizons"]: assert all(finite(h[q]) for q in ("p10", "p50", "p90", "var", "es")) and h["p10"] <= h["p50"] <= h["p90"], h
    one = [c for c in b["contributions"] if c["horizon"] == 1]
    assert sorted(c["symbol"] for c in one) == ["SYN000", "SYN001"] and b["left_out"] == []
    assert math.isclose(sum(c["es_contribution"] for c in one), b["es"], rel_tol=1e-6)
    again = pf.get(path("P1", LAST), pf.c1)   # the same session named: the same numbers (cached or not)
    assert again.status_code == 200 and {k: v for k, v in again.json().items() if k != "request_id"} == {k: v for k, v in b.items() if k != "request_id"}


def test_another_clients_book_and_an_unknown_id_answer_the_same_404(pf):
    other, unknown = pf.get(path("P2"), pf.c1), pf.get(path("NOPE"), pf.c1)
    assert other.status_code == unknown.status_code == 404
    strip = lambda r: {k: v for k, v in r.json().items() if k != "request_id"}
    assert strip(other) == strip(unknown) and "P2" not in other.text, other.text
    assert pf.get(path("P2"), pf.c2).status_code == 200
    assert strip(pf.get(path("P1"), pf.unbound)) == strip(unknown)   # a read key bound to no client sees no book
    assert pf.get(path("P1")).status_code == 401


def test_an_admin_key_sees_every_book(pf):
    for pid in ("P1", "P2", EVIL):
        r = pf.get(path(pid), pf.admin)
        assert r.status_code == 200 and r.json()["portfolio_id"] == pid, r.text


def test_hostile_ids_and_dates_are_404_or_422_never_500_and_nothing_changes(pf):
    with psycopg.connect(pf.db) as c: before = c.execute("SELECT * FROM positions ORDER BY 1, 2").fetchall()
    for pid in [EVIL, "' OR '1'='1", "a'b", 'q"uo;te', "--", "%", "*", "P1'--", "P1; DELETE FROM positions"]:
        r = pf.get(path(pid), pf.c1)
        assert r.status_code == 404, (pid, r.status_code, r.text)
    for pid in ["a" * 129, "a\nb", "\x7f"]:
        r = pf.get(path(pid), pf.c1)
        assert r.status_code == 422 and r.json()["detail"], (pid, r.text)
    for date in ["2017-13-45", "yesterday", "2017-01-01'--"]:
        r = pf.get(f"/v1/portfolios/P1/forecast?date={quote(date)}", pf.c1)
        assert r.status_code == 422 and "\n" not in r.json()["detail"], (date, r.text)
    r = pf.get(path("P2", "2016-01-04"), pf.c2)   # before any of the book's positions: 404 naming why
    assert r.status_code == 404 and "no positions as of 2016-01-04" in r.json()["detail"], r.text
    with psycopg.connect(pf.db) as c: assert c.execute("SELECT * FROM positions ORDER BY 1, 2").fetchall() == before
    assert "Traceback" not in pf.srv.text


def test_the_database_down_is_503_in_one_line(pf):
    env = {**pf.env, "SWB_PORTFOLIO_DB_URL": "postgresql://bob:s3cret-pw@127.0.0.1:1/swb"}
    srv = Server(env)
    try:
        with httpx.Client(base_url=srv.url, timeout=60) as c:
            for key in (pf.c1, pf.admin):
                r = c.get(path("P1"), headers={"X-API-Key": key})
                assert r.status_code == 503, r.text
                d = r.json()["detail"]
                assert "postgresql://bob:***@127.0.0.1:1/swb" in d and "\n" not in d and "s3cret" not in r.text, d
            assert c.get(path("P1"), headers={"X-API-Key": pf.unbound}).status_code == 404   # it sees nothing, up or down
            assert c.get("/v1/predictions/SYN000", headers={"X-API-Key": pf.c1}).status_code == 200   # the rest of the API serves on
    finally: srv.stop()
    assert "s3cret" not in srv.text


@pytest.fixture(scope="module")
def eod(tmp_path_factory):
    "A copy of a home whose EOD job ran from nothing (3 symbols, walk-forward forecasts in the ledger: a VaR backtest has sessions), two books in a database of its own"
    from conftest import built_once
    from test_hostile_env import SMALL, _finished_eod
    name = f"swbt_{uuid.uuid4().hex[:10]}"
    built, _ = built_once(tmp_path_factory, "hostile-eod-home", _finished_eod)
    home = tmp_path_factory.mktemp("pfeod") / "home"
    shutil.copytree(built / "home", home)
    env = home_env(home, f"swbt-{uuid.uuid4().hex[:10]}", **SMALL, SWB_PORTFOLIO_DB_URL=f"{SERVER}/{name}")
    assert run(env, "db", "upgrade").returncode == 0
    (home.parent / "pos.csv").write_text("portfolio,symbol,quantity,as_of,client_id\nE1,SYN000,100,2016-12-01,c1\nE1,SYN001,50,2016-12-01,\n"
                                         "E2,SYN002,30,2016-12-01,c2\n")
    r = run(env, "portfolio", "import", "--path", home.parent / "pos.csv")
    assert r.returncode == 0, r.stderr
    yield home, env
    rc = redis.Redis.from_url(REDIS_URL)
    for k in rc.scan_iter(f"{env['SWB_STREAM_PREFIX']}:*", count=1000): rc.delete(k)
    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as c:
        c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def test_the_eod_report_has_a_portfolios_section_and_skips_it_in_one_line_when_the_database_is_down(eod):
    from stock_workbench.pipeline import report_portfolios
    home, env = eod
    r = run(env, "run", "eod", "--json", timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    out = Path(json.loads(r.stdout)["report"]).parent
    html = (out / "eod.html").read_text()
    sec = html[html.index("7. Portfolios"):html.index("8. Model and data lineage")]
    assert "Method: t copula" in sec and sec.count("data:image/png;base64") == 1, sec[:3000]
    for pid in ("E1", "E2"): assert f"<td>{pid}</td>" in sec and f"VaR backtest of <code>{pid}</code> (" in sec
    assert sec.count("Kupiec LR") == 2 and ">c1<" not in sec and ">c2<" not in sec, sec[:3000]   # one Kupiec line per book; ids only
    s = report_portfolios(out / "eod.ipynb")
    assert s["status"] == "ok" and sorted(b["portfolio_id"] for b in s["books"]) == ["E1", "E2"]
    for b in s["books"]:
        assert finite(b["value"]) and b["p10"] <= b["p50"] <= b["p90"] and b["backtest"]["sessions"] > 50 and b["backtest"]["verdict"], b
    r = run({**env, "SWB_PORTFOLIO_DB_URL": "postgresql://bob:s3cret-pw@127.0.0.1:1/swb"}, "run", "eod", timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    html = (out / "eod.html").read_text()
    assert "Portfolios section skipped: <code>cannot reach the portfolio database postgresql://bob:***@127.0.0.1:1/swb" in html, html[-3000:]
    assert "s3cret" not in html + r.stdout + r.stderr + (out / "eod.ipynb").read_text()
    assert report_portfolios(out / "eod.ipynb")["status"] == "skipped"
