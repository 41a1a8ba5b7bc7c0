"Client portfolios in the real PostgreSQL (127.0.0.1:5432): `swb db upgrade`, `swb portfolio import|list|forecast` as a user runs them, bad files refused with nothing written, hostile ids, a dead server"
import json, math, shutil, subprocess, uuid
from pathlib import Path
import pandas as pd, psycopg, pytest
from psycopg import sql
from conftest import built_once, sample, swb, write_yahoo_csv
from test_cli import one_line_error
from test_hostile_env import SMALL, _finished_eod

SERVER = "postgresql://postgres@127.0.0.1:5432"
EVIL = "x'); DROP TABLE positions;--"


def _drop(name: str):
    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as c:
        c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture(scope="module")
def db():
    "A database of this test module only (created by `swb db upgrade`), dropped at the end"
    name = f"swbt_{uuid.uuid4().hex[:10]}"
    yield name, f"{SERVER}/{name}"
    _drop(name)


@pytest.fixture(scope="module")
def world(tmp_path_factory, db):
    "A copy of a home where the EOD job ran (3 sample symbols, a champion, its forecasts in the ledger), plus NOFC: stored, never forecast"
    built, _ = built_once(tmp_path_factory, "hostile-eod-home", _finished_eod)
    home = tmp_path_factory.mktemp("portfolio") / "home"
    shutil.copytree(built / "home", home)
    env = {**SMALL, "SWB_HOME": str(home), "SWB_PORTFOLIO_DB_URL": db[1]}
    r = swb("ingest", "--source", "csv", "--path", write_yahoo_csv(sample("NOFC", 40), home.parent / "NOFC.csv"), env=env)
    assert r.returncode == 0, r.stderr
    r = swb("db", "upgrade", "--json", env=env)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["created"] is True and json.loads(r.stdout)["applied"] == [1]
    return home, env


def run(env, *args):
    return swb(*args, env=env)


def rows(url):
    "Every stored portfolio and position, to compare before and after"
    with psycopg.connect(url) as c:
        return (c.execute("SELECT * FROM portfolios ORDER BY id").fetchall(),
                c.execute("SELECT * FROM positions ORDER BY portfolio_id, symbol, as_of").fetchall())


def write(path: Path, frame: dict) -> Path:
    pd.DataFrame(frame).to_csv(path, index=False)
    return path


# --- the schema ------------------------------------------------------------------------------------

def test_upgrade_is_idempotent_and_status_shows_the_version(world, db):
    _, env = world
    r = run(env, "db", "upgrade")
    assert r.returncode == 0 and "nothing to apply; schema version 1 (latest)" in r.stdout, r.stdout + r.stderr
    st = json.loads(run(env, "db", "status", "--json").stdout)
    assert (st["exists"], st["version"], st["latest"], st["pending"]) == (True, 1, 1, [])
    with psycopg.connect(db[1]) as c:
        assert c.execute("SELECT version, description FROM schema_version").fetchall() == [(1, "portfolios and positions")]


def test_two_upgrades_at_once_on_a_new_database(tmp_path):
    name = f"swbt_{uuid.uuid4().hex[:10]}"
    env = {"SWB_HOME": str(tmp_path), "SWB_QUIET": "1", "SWB_PORTFOLIO_DB_URL": f"{SERVER}/{name}"}
    try:
        from conftest import BIN
        import os
        ps = [subprocess.Popen([str(BIN / "swb"), "db", "upgrade", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               env={**os.environ, **env}) for _ in range(2)]
        outs = [p.communicate(timeout=120) for p in ps]
        assert [p.returncode for p in ps] == [0, 0], outs
        applied = sorted(json.loads(o)["applied"] for o, _ in outs)
        assert applied == [[], [1]], applied                      # each migration applied once
        with psycopg.connect(f"{SERVER}/{name}") as c:
            assert c.execute("SELECT count(*) FROM schema_version").fetchone()[0] == 1
    finally: _drop(name)


def test_schema_not_upgraded_says_run_swb_db_upgrade(tmp_path):
    name = f"swbt_{uuid.uuid4().hex[:10]}"
    env = {"SWB_HOME": str(tmp_path), "SWB_QUIET": "1", "SWB_PORTFOLIO_DB_URL": f"{SERVER}/{name}"}
    one_line_error(run(env, "portfolio", "list"), "does not exist: run swb db upgrade")
    with psycopg.connect(f"{SERVER}/postgres", autocommit=True) as c: c.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        one_line_error(run(env, "portfolio", "forecast"), "is at schema version 0, this workbench needs 1: run swb db upgrade")
        st = run(env, "db", "status")
        assert st.returncode == 0 and "schema version 0 of 1; pending 1: run swb db upgrade" in st.stdout, st.stdout
    finally: _drop(name)


# --- import ----------------------------------------------------------------------------------------

def test_import_a_good_file_twice_changes_nothing_the_second_time(world, tmp_path, db):
    _, env = world
    f = write(tmp_path / "good.csv", {"portfolio": ["G1", "G1", "G2"], "symbol": ["SYN000", "syn001", "SYN002"], "quantity": ["10", "2.5", "0"],
                                      "as_of": ["2016-12-01"] * 3, "client_id": ["cg", "", "cg"], "base_currency": ["USD", "", "eur"]})
    r = run(env, "portfolio", "import", "--path", f, "--json")
    assert r.returncode == 0, r.stderr
    assert {k: json.loads(r.stdout)[k] for k in ("rows", "inserted", "updated", "unchanged", "books_created")} == \
        dict(rows=3, inserted=3, updated=0, unchanged=0, books_created=2)
    before = rows(db[1])
    r = run(env, "portfolio", "import", "--path", f)
    assert r.returncode == 0 and "0 inserted, 0 updated, 3 unchanged; 0 portfolio(s) created, 0 updated" in r.stdout, r.stdout + r.stderr
    assert rows(db[1]) == before
    assert [p for p in before[0] if p[0] in ("G1", "G2")] == [("G1", "cg", None, "USD"), ("G2", "cg", None, "EUR")]
    listed = json.loads(run(env, "portfolio", "list", "--client", "cg", "--json").stdout)
    assert [(b["portfolio_id"], b["positions"]) for b in listed] == [("G1", 2), ("G2", 1)]


GOOD = {"portfolio": ["B9", "B9", "B9"], "symbol": ["SYN000", "SYN001", "SYN002"], "quantity": ["1", "2", "3"],
        "as_of": ["2016-12-01"] * 3, "client_id": ["cb", "", ""], "name": ["", "", ""]}
BAD = [  # (kind, column, row index, bad value, what the line names)
    ("unknown symbol", "symbol", 1, "ZZZZ", "row 2 of bad.csv: ZZZZ"),
    ("hostile symbol", "symbol", 1, EVIL, "symbol known"),
    ("negative quantity", "quantity", 2, "-3", "row 3 of bad.csv: SYN002 2016-12-01  quantity=-3"),
    ("duplicate row", "symbol", 2, "SYN001", "one row per portfolio, symbol and as_of"),
    ("non-numeric quantity", "quantity", 0, "ten", "row 1 of bad.csv: SYN000 2016-12-01  quantity=ten"),
    ("non-finite quantity", "quantity", 0, "inf", "quantity is a finite number"),
    ("bad date", "as_of", 1, "2016-02-30", "row 2 of bad.csv: SYN001 2016-02-30"),
    ("line break in an id", "portfolio", 1, "B9\n-other-book", "B9\\n-other-book"),
    ("bidi override in a client id", "client_id", 0, "C\u202ex", "client_id without control characters"),
    ("client id too long", "client_id", 0, "c" * 129, "client_id of at most 128 characters"),
    ("name too long", "name", 0, "n" * 201, "name of at most 200 characters"),
    ("quantity beyond any book", "quantity", 0, "1e308", "|quantity| <= 1e12 shares"),
    ("future as_of", "as_of", 2, "2099-01-01", "as_of not after today (UTC)"),
    ("10k-char id", "portfolio", 0, "x" * 10_000, "…(10,000 chars)"),
]


@pytest.mark.parametrize("kind,col,i,value,needle", BAD, ids=[b[0] for b in BAD])
def test_a_bad_file_is_refused_with_the_row_named_and_nothing_written(world, tmp_path, db, kind, col, i, value, needle):
    _, env = world
    frame = {k: list(v) for k, v in GOOD.items()}
    frame[col][i] = value
    before = rows(db[1])
    r = run(env, "portfolio", "import", "--path", write(tmp_path / "bad.csv", frame))
    line = one_line_error(r, "validation failed", "nothing was written")
    assert needle in line or needle in r.stdout, (needle, line, r.stdout)
    assert rows(db[1]) == before


def test_an_interrupt_held_over_the_commit_reports_the_commit(world, tmp_path):
    "SIGINT while the import's transaction runs (held, as cli.main holds it): the commit is recorded before the interrupt is raised"
    from stock_workbench.config import INTERRUPT_STATE, Settings
    from stock_workbench.portfolio import import_positions
    from stock_workbench.util import committed_so_far
    home, env = world
    f = write(tmp_path / "sig.csv", {"portfolio": ["S1"], "symbol": ["SYN000"], "quantity": ["3"], "as_of": ["2016-12-01"], "client_id": ["cs"]})
    n = len(committed_so_far())
    INTERRUPT_STATE["signal"] = 2   # as if SIGINT had arrived while held
    try:
        with pytest.raises(KeyboardInterrupt): import_positions(Settings(home, env=env), f)
    finally: INTERRUPT_STATE["signal"] = None
    assert committed_so_far()[n:] == ["portfolio positions sig.csv (1 inserted, 0 updated)"]


def test_a_nul_byte_is_refused_not_cut(world, tmp_path, db):
    _, env = world   # pandas and PostgreSQL would both cut 'B9\x00-other-book' to 'B9': another book, silently
    before = rows(db[1])
    f = tmp_path / "nul.csv"
    f.write_bytes(b"portfolio,symbol,quantity,as_of,client_id\nB9,SYN000,1,2016-12-01,cb\nB9\x00-other-book,SYN001,7,2016-12-01,cb\n")
    one_line_error(run(env, "portfolio", "import", "--path", f), "nul.csv: row 2 holds a NUL character", "nothing was written")
    f.write_bytes(b"portfolio,symbol,quantity,as_of,client_id\nB9,SYN000,1,2016-12-01,C\x00x\n")
    one_line_error(run(env, "portfolio", "import", "--path", f), "row 1 holds a NUL character")
    assert rows(db[1]) == before


@pytest.mark.parametrize("text,needle", [
    ("portfolio,symbol,quantity,as_of\nB9,SYN000,1,2016-12-01,extra\n", "bad.csv line 2: 5 fields, the header has 4"),
    ('portfolio,symbol,quantity,as_of\n"B9,SYN000,1,2016-12-01\n', "bad.csv line 2"),
    ("portfolio,symbol,qty,as_of\nB9,SYN000,1,2016-12-01\n", "missing column(s) quantity"),
    ("portfolio,symbol,quantity,as_of,client_id\nNEW1,SYN000,1,2016-12-01,\n", "'NEW1' new portfolio(s) without a client id"),
    ("", "empty file"),
], ids=["ragged", "unclosed quote", "missing column", "new book without client", "empty"])
def test_a_malformed_file_is_one_line_and_nothing_written(world, tmp_path, db, text, needle):
    _, env = world
    (tmp_path / "bad.csv").write_text(text)
    before = rows(db[1])
    one_line_error(run(env, "portfolio", "import", "--path", tmp_path / "bad.csv"), needle)
    assert rows(db[1]) == before


def test_hostile_ids_names_and_clients_round_trip_unharmed(world, tmp_path, db):
    _, env = world
    ids = [EVIL, "a'b", 'q"uo;te', "--comment", "semi;colon"]
    f = write(tmp_path / "evil.csv", {"portfolio": ids, "symbol": ["SYN000"] * 5, "quantity": ["1"] * 5, "as_of": ["2016-12-01"] * 5,
                                      "client_id": [f"{EVIL}c"] * 5, "name": [EVIL, "O'Brien; --", '"; DELETE FROM portfolios;--', "", "x"]})
    r = run(env, "portfolio", "import", "--path", f)
    assert r.returncode == 0, r.stderr
    got = {b["portfolio_id"]: b for b in json.loads(run(env, "portfolio", "list", "--client", f"{EVIL}c", "--json").stdout)}
    assert sorted(got) == sorted(ids) and got[EVIL]["name"] == EVIL and got["a'b"]["name"] == "O'Brien; --"
    r = run(env, "portfolio", "forecast", "--id", EVIL, "--id", "a'b", "--json")
    assert r.returncode == 0, r.stderr
    assert sorted(b["portfolio_id"] for b in json.loads(r.stdout)["books"]) == sorted([EVIL, "a'b"])
    one_line_error(run(env, "portfolio", "forecast", "--id", "' OR '1'='1"), "no portfolio")
    with psycopg.connect(db[1]) as c:   # every table still there, every row of the others too
        assert c.execute("SELECT count(*) FROM positions WHERE portfolio_id = ANY(%s)", (ids,)).fetchone()[0] == 5


# --- forecast --------------------------------------------------------------------------------------

def _finite(x): return isinstance(x, (int, float)) and math.isfinite(x)


def test_forecast_books_are_finite_and_name_what_was_left_out(world, tmp_path, db):
    home, env = world
    f = write(tmp_path / "f.csv", {"portfolio": ["F1", "F1", "F1", "F1", "F2"], "symbol": ["SYN000", "SYN001", "SYN002", "NOFC", "SYN001"],
                                   "quantity": ["100", "50", "20", "30", "5"], "as_of": ["2016-12-01"] * 4 + ["2016-12-29"],
                                   "client_id": ["cf", "", "", "", "cf"]})
    assert run(env, "portfolio", "import", "--path", f).returncode == 0
    r = run(env, "portfolio", "forecast", "--client", "cf", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["model_version"] and out["forecast_date"] <= out["day"] and out["method"]
    books = {b["portfolio_id"]: b for b in out["books"]}
    assert sorted(books) == ["F1", "F2"]
    for b in books.values():
        assert sorted(x["horizon"] for x in b["bands"]) == [1, 5]
        for x in b["bands"]:
            assert all(_finite(x[k]) for k in ("value", "p10", "p50", "p90", "var", "es")), x
            assert x["p10"] <= x["p50"] <= x["p90"] and x["es"] >= x["var"] > 0
    left = books["F1"]["left_out"]
    assert {x["symbol"] for x in left} == {"NOFC"} and all(x["reason"] == "no forecast" and 0 < x["weight"] < 1 for x in left), left
    assert books["F2"]["left_out"] == []
    r = run(env, "portfolio", "forecast", "--id", "F1")   # the human report names the left-out position and its weight
    assert r.returncode == 0 and "left out" in r.stdout and "NOFC (" in r.stdout and "no forecast" in r.stdout and "method: " in r.stdout, r.stdout
    r = run(env, "portfolio", "forecast", "--id", "F2", "--date", "2016-12-28")   # positions as of that day: F2 has none yet
    one_line_error(r, "F2: no positions as of 2016-12-28 (none on or before it; the first is of 2016-12-29)")
    last = json.loads(run(env, "portfolio", "forecast", "--id", "F1", "--json").stdout)["day"]
    one_line_error(run(env, "portfolio", "forecast", "--id", "F1", "--date", "2030-01-01"), f"2030-01-01 is after the latest stored session {last}")
    one_line_error(run(env, "portfolio", "forecast", "--id", "F1", "--date", "2016-12-24"), "2016-12-24 is not a session in the store", "the one before is 2016-12-23")
    # books without positions on the day are named, never dropped; the whole book's value is the headline
    f = write(tmp_path / "z.csv", {"portfolio": ["ZERO", "FUT"], "symbol": ["SYN000", "SYN000"], "quantity": ["0", "3"],
                                   "as_of": ["2016-12-01", "2020-06-01"], "client_id": ["cf", "cf"]})
    assert run(env, "portfolio", "import", "--path", f).returncode == 0
    r = run(env, "portfolio", "forecast", "--id", "ZERO", "--id", "F1", "--id", "FUT")
    assert r.returncode == 0, r.stderr
    assert f"ZERO: only zero quantities on or before {last}" in r.stdout and f"FUT: no positions as of {last}" in r.stdout, r.stdout
    one_line_error(run(env, "portfolio", "forecast", "--id", "ZERO"), "ZERO: only zero quantities on or before")
    b1 = next(b for b in books["F1"]["bands"] if b["horizon"] == 1)
    nofc = sum(x["value"] for x in left if x["horizon"] == 1)
    assert math.isclose(b1["value"], b1["forecast_value"] + nofc, rel_tol=1e-9) and nofc > 0, (b1, left)
    from stock_workbench.config import Settings
    from stock_workbench.portfolio import forecast_books, var_backtest_books
    s = Settings(home, env=env)
    pf = forecast_books(s, ids=["F1"])
    assert set(pf.books["portfolio_id"]) == {"F1"} and len(pf.contributions)
    bt = var_backtest_books(s, ids=["F1", "F2"])
    assert list(bt["portfolio_id"]) == ["F1", "F2"] and (bt["n"] > 50).all() and bt["rate"].between(0, 1).all(), bt
    assert set(bt["verdict"]) <= {"consistent", "too many exceedances", "too few exceedances"}


# --- faults ----------------------------------------------------------------------------------------

def test_every_secret_of_a_url_is_hidden(world):
    _, env = world
    for url, hidden in [("postgresql://postgres@127.0.0.1:1/d?sslpassword=KeyS3cret", ["KeyS3cret"]),
                        ("postgresql://postgres:Pass@word@127.0.0.1:1/d", ["Pass", "word@"])]:
        r = run({**env, "SWB_PORTFOLIO_DB_URL": url}, "db", "status")
        assert r.returncode != 0 and len(r.stderr.strip().splitlines()) == 1 and "internal error" not in r.stderr, r.stderr
        assert not any(h in r.stdout + r.stderr for h in hidden), (url, r.stderr)


def test_ids_with_line_breaks_list_on_one_line_each(world, db):
    _, env = world   # such ids are refused at import now; one stored before (or by hand) still lists on one line
    with psycopg.connect(db[1], autocommit=True) as c: c.execute("INSERT INTO portfolios (id, client_id) VALUES (%s, 'cn')", ("N\n1\u202e",))
    r = run(env, "portfolio", "list", "--client", "cn")
    assert r.returncode == 0 and len(r.stdout.strip().splitlines()) == 2 and "N\\n1\\u202e" in r.stdout and "\u202e" not in r.stdout, r.stdout


@pytest.mark.parametrize("args", [("db", "upgrade"), ("db", "status"), ("portfolio", "list"), ("portfolio", "forecast"),
                                  ("portfolio", "backtest"), ("portfolio", "import", "--path", "POS")], ids=lambda a: " ".join(a))
def test_a_dead_server_is_one_line_naming_the_url_without_its_password(world, tmp_path, args):
    _, env = world
    pos = write(tmp_path / "p.csv", {"portfolio": ["D1"], "symbol": ["SYN000"], "quantity": ["1"], "as_of": ["2016-12-01"], "client_id": ["cd"]})
    args = [str(pos) if a == "POS" else a for a in args]
    r = run({**env, "SWB_PORTFOLIO_DB_URL": "postgresql://bob:s3cret-pw@127.0.0.1:1/swb"}, *args)
    one_line_error(r, "postgresql://bob:***@127.0.0.1:1/swb", "Connection refused")
    assert "s3cret" not in r.stdout + r.stderr


# --- VaR backtest, the EOD job's --json, the dashboard's picker -----------------------------------

def _books_k(env, tmp_path):
    "Two books of client ck (K1 holds NOFC too, which has no forecast)"
    f = write(tmp_path / "k.csv", {"portfolio": ["K1", "K1", "K1", "K2"], "symbol": ["SYN000", "SYN001", "NOFC", "SYN002"],
                                   "quantity": ["40", "60", "10", "25"], "as_of": ["2016-12-01"] * 4, "client_id": ["ck", "", "", "ck"],
                                   "name": ["Mrs K. Private", "", "", "Mr K. Private"]})
    r = run(env, "portfolio", "import", "--path", f)
    assert r.returncode == 0, r.stderr


def test_backtest_per_book_with_kupiec(world, tmp_path):
    _, env = world
    _books_k(env, tmp_path)
    r = run(env, "portfolio", "backtest", "--client", "ck", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["level"] == 0.95 and [b["portfolio_id"] for b in out["books"]] == ["K1", "K2"], out
    for b in out["books"]:
        assert b["n"] > 50 and 0 <= b["exceedances"] <= b["n"] and math.isclose(b["rate"], b["exceedances"] / b["n"]), b
        assert math.isclose(b["expected_rate"], 0.05) and b["lr"] >= 0 and 0 <= b["p_value"] <= 1, b
        assert b["verdict"] in {"consistent", "too many exceedances", "too few exceedances"} and b["first"] < b["last"], b
    r = run(env, "portfolio", "backtest", "--id", "K2")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 2 and lines[1].startswith("K2 (") and "Kupiec LR" in lines[1] and "p-value" in lines[1] and "expected" in lines[1], r.stdout
    assert "Private" not in r.stdout
    one_line_error(run(env, "portfolio", "backtest", "--id", "K1", "--client", "someone-else"), "no portfolio 'K1'")


XSS = ["<img src=x onerror=alert(1)>", "[click](http://evil.example)", "$x^2$ **b**"]


def test_eod_json_reports_the_portfolios(world, tmp_path):
    _, env = world
    _books_k(env, tmp_path)
    f = write(tmp_path / "xss.csv", {"portfolio": XSS, "symbol": ["SYN000"] * 3, "quantity": ["1"] * 3, "as_of": ["2016-12-01"] * 3, "client_id": ["cx"] * 3})
    assert run(env, "portfolio", "import", "--path", f).returncode == 0
    r = run(env, "run", "eod", "--json")
    assert r.returncode == 0, r.stderr
    pf = json.loads(r.stdout)["portfolios"]
    assert pf["status"] == "ok" and pf["method"], pf
    books = {b["portfolio_id"]: b for b in pf["books"]}
    assert {"K1", "K2"} <= set(books) and books["K1"]["left_out_weight"] > 0 and books["K1"]["backtest"]["sessions"] > 50, books.get("K1")
    assert "Private" not in r.stdout and '"ck"' not in r.stdout   # ids only, never a client's details
    html = "\n".join(p.read_text(errors="replace") for p in Path(env["SWB_HOME"], "reports").rglob("eod*.html"))
    assert "VaR backtest of" in html and "<img src=x" not in html and 'href="http://evil.example' not in html, html[-3000:]
    assert "<code>$x^2$ **b**</code>" in html and "<td>$x^2$" not in html   # in lines a code span (no math, no bold), in the table \\$
    r = run({**env, "SWB_PORTFOLIO_DB_URL": "postgresql://bob:s3cret@pw@127.0.0.1:1/swb?sslpassword=KeyS3cret"}, "run", "eod", "--json")
    assert r.returncode == 0, r.stderr
    pf = json.loads(r.stdout)["portfolios"]
    assert pf["status"] == "skipped" and "postgresql://bob:***@127.0.0.1:1/swb?sslpassword=***" in pf["reason"], pf
    texts = [r.stdout] + [p.read_text(errors="replace") for p in Path(env["SWB_HOME"], "reports").rglob("eod*") if p.is_file()]
    assert not any(s in t for t in texts for s in ("s3cret", "KeyS3cret", "pw@127")), pf


def test_dashboard_portfolio_picker(world, tmp_path):
    home, env = world
    _books_k(env, tmp_path)
    from stock_workbench.config import Settings
    from stock_workbench.dashboard import PredictionsApp
    from stock_workbench.dashboard_data import DashboardData
    app = PredictionsApp(DashboardData(Settings(home, env=env)), defer_backtest=True)
    app.deferred.join(120)
    assert {"K1", "K2"} <= set(app.pf_pick.options) and "ck" not in app.pf_pick.options
    app.pf_pick.value = "K1"
    assert app.pf_chart.value[:4] == b"\x89PNG", app.pf_info.value
    for s in ("K1 as of", "<th>VaR</th>", "<th>es_contribution</th>", "<td>SYN000</td>", "<td>NOFC</td>", "no forecast", "method: "):
        assert s in app.pf_info.value, (s, app.pf_info.value)
    assert "Private" not in app.pf_info.value
    dead = PredictionsApp(DashboardData(Settings(home, env={**env, "SWB_PORTFOLIO_DB_URL": "postgresql://bob:s3cret-pw@127.0.0.1:1/swb"})), defer_backtest=True)
    dead.deferred.join(120)
    assert dead.pf_pick is None and "Client portfolios not shown: cannot reach the portfolio database postgresql://bob:***@127.0.0.1:1/swb" in dead.pf_note.value
    assert "s3cret" not in dead.pf_note.value
