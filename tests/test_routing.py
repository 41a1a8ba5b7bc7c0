"API keys, A/B routing, the split and rollback, idempotent admin operations, exposures landed in Delta and judged per arm, the forecast feed: real Redis, real Delta, a real MLflow registry under throwaway homes"
import json, math, os, subprocess, sys, textwrap, time
from pathlib import Path
import numpy as np, pandas as pd, pytest, redis
from conftest import REDIS_URL
from stock_workbench.config import Settings, SwbError
from stock_workbench import access, routing
from stock_workbench.synthetic import synthetic_market


def run_py(code: str, *args, stdin: str | None = None, timeout=60):
    "Run `code` in a fresh Python process (this test's environment: SWB_HOME and the prefix)"
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *map(str, args)], input=stdin, capture_output=True, text=True,
                          timeout=timeout, env=os.environ.copy())


# ---------------------------------------------------------------- keys

def test_a_key_created_in_one_process_verifies_in_another_and_a_revoke_reaches_a_running_one(home):
    made = run_py("""
        import types
        from stock_workbench.config import Settings
        from stock_workbench.access import cmd_keys
        cmd_keys(types.SimpleNamespace(keys_cmd="create", scope="read", client="desk-9", note="t"), Settings())
    """)
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip()
    assert key.startswith("swb_") and key not in made.stderr and "created key" in made.stderr
    ks = access.KeyStore(Settings())
    got = ks.verify(key)
    assert got is not None and got.scope == "read" and got.client_id == "desk-9"
    raw = (home / "serving" / "keys.json").read_text()
    assert key not in raw and key.split("_", 2)[2] not in raw
    # a long-running verifier (as the serving process is): answers a line per request on stdin
    p = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
        import sys
        from stock_workbench.config import Settings
        from stock_workbench.access import KeyStore
        ks = KeyStore(Settings())
        for line in sys.stdin:
            print("ok" if ks.verify(line.strip()) else "no", flush=True)
    """)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=os.environ.copy())
    try:
        p.stdin.write(key + "\n"); p.stdin.flush()
        assert p.stdout.readline().strip() == "ok"
        ks.revoke(got.key_id)                        # another process revokes
        p.stdin.write(key + "\n"); p.stdin.flush()
        assert p.stdout.readline().strip() == "no"   # its next request already fails (no wait, no restart)
    finally:
        p.stdin.close(); p.wait(10)


# ---------------------------------------------------------------- A/B buckets

def test_buckets_are_sticky_across_processes_and_the_share_holds(home):
    s = Settings()
    split = {"champion": "1", "challenger": "2", "previous_champion": None, "challenger_share": 0.05, "experiment": "m:champion=1:challenger=2"}
    key = routing.ab_key(s)
    ids = [f"c{i}" for i in range(10_000)]
    arms = [routing.variant_for(split, key, c) for c in ids]
    # binomial share (sd 0.22 % over 10 000 clients): exact with a fixed key; the home's random key must give a plausible one
    share = sum(routing.variant_for(split, b"a fixed key for the share check", c)[0] == "challenger" for c in ids) / len(ids)
    assert abs(share - 0.05) <= 0.005, share
    assert abs(sum(a == "challenger" for a, _ in arms) / len(ids) - 0.05) <= 0.01   # 4.6 sd
    other = run_py("""
        import json, sys
        from stock_workbench.config import Settings
        from stock_workbench.routing import ab_key, variant_for
        split = json.loads(sys.argv[1])
        print(json.dumps([variant_for(split, ab_key(Settings()), f"c{i}") for i in range(200)]))
    """, json.dumps(split))
    assert other.returncode == 0, other.stderr
    assert [tuple(x) for x in json.loads(other.stdout)] == arms[:200]   # the same key file: the same buckets in every process
    assert oct((home / "serving" / ".ab_key").stat().st_mode & 0o777) == "0o600"


# ---------------------------------------------------------------- split, rollback, idempotency

@pytest.fixture(scope="module")
def template_db(tmp_path_factory):
    "An mlflow.db with a registered model of 3 versions (records only: routing needs no model files), made once: a new schema takes seconds"
    from stock_workbench import registry as reg
    h = tmp_path_factory.mktemp("registry")
    s = Settings(h, env={})
    c = reg.client(s)
    c.create_registered_model(s.registered_model)
    for _ in range(3): c.create_model_version(s.registered_model, source=(h / "none").as_uri())
    return h / "mlflow.db"


def registry_with(s: Settings, template: Path, aliases: dict):
    "This home's registry: a copy of the template, with `aliases`"
    import shutil
    from stock_workbench import registry as reg
    shutil.copy(template, s.home / "mlflow.db")
    c = reg.client(s)
    for a, v in aliases.items(): c.set_registered_model_alias(s.registered_model, a, v)
    return c


def test_split_and_rollback_are_idempotent_and_recorded_in_the_audit_log_and_mlflow(home, template_db):
    s = Settings()
    c = registry_with(s, template_db, {"champion": "2", "previous_champion": "1", "challenger": "3"})
    split = lambda share: lambda: (200, routing.set_split(s, share, "k-admin", "idem-s"))
    st, body = routing.idempotent(s, "idem-s", "split", {"challenger_share": 0.1}, split(0.1))
    assert st == 200 and body["challenger_share"] == 0.1 and body["challenger"] == "3"
    assert routing.idempotent(s, "idem-s", "split", {"challenger_share": 0.1}, split(0.3)) == (200, body)   # a repeat changes nothing
    assert routing.current_split(s, fresh=True)["challenger_share"] == 0.1
    with pytest.raises(SwbError, match="already used for another request"):
        routing.idempotent(s, "idem-s", "split", {"challenger_share": 0.3}, split(0.3))
    assert c.get_registered_model(s.registered_model).tags["swb.challenger_share"] == "0.1"

    rb = lambda: (200, routing.rollback(s, "k-admin", "idem-r"))
    st, body = routing.idempotent(s, "idem-r", "rollback", {}, rb)
    assert (body["champion"], body["challenger"], body["previous_champion"]) == ("1", "3", None)
    assert routing.idempotent(s, "idem-r", "rollback", {}, rb) == (200, body)   # repeated: no second rollback (which would fail)
    aliases = {a: str(v) for a, v in c.get_registered_model(s.registered_model).aliases.items()}
    assert aliases == {"champion": "1", "challenger": "3"}
    assert json.loads(c.get_model_version(s.registered_model, "2").tags["swb.rolled_back"])["actor"] == "k-admin"
    assert json.loads(c.get_registered_model(s.registered_model).tags["swb.last_rollback"])["from"] == "2"
    with pytest.raises(SwbError, match="no previous champion"): routing.rollback(s, "k-admin")

    audit = [json.loads(l) for l in (home / "serving" / "audit.jsonl").read_text().splitlines()]
    assert [(a["op"], a["actor"], a["idempotency_key"]) for a in audit] == [("split", "k-admin", "idem-s"), ("rollback", "k-admin", "idem-r")]
    assert audit[1]["before"]["champion"] == "2" and audit[1]["after"]["champion"] == "1"
    assert audit[0]["before"]["challenger_share"] == 0.05 and audit[0]["after"]["challenger_share"] == 0.1
    text = (home / "serving" / "audit.jsonl").read_text() + json.dumps(c.get_registered_model(s.registered_model).tags)
    assert "swb_" not in text   # no key in the records: the actor is the key id


def test_a_version_that_is_both_champion_and_challenger_is_no_challenger(home, template_db):
    s = Settings()
    registry_with(s, template_db, {"champion": "1", "challenger": "1"})
    sp = routing.current_split(s, fresh=True)
    assert (sp["champion"], sp["challenger"], sp["challenger_share"]) == ("1", None, 0.0)
    key = routing.ab_key(s)
    assert {routing.variant_for(sp, key, f"c{i}")[0] for i in range(2000)} == {"champion"}


def test_the_split_another_process_sets_shows_within_a_second(home, template_db):
    s = Settings()
    registry_with(s, template_db, {"champion": "1", "challenger": "2"})
    assert routing.current_split(s)["challenger_share"] == 0.05
    r = run_py("""
        from stock_workbench.config import Settings
        from stock_workbench.routing import set_split
        set_split(Settings(), 0.25, "k-other")
    """)
    assert r.returncode == 0, r.stderr
    time.sleep(routing.SPLIT_TTL_S + 0.05)
    assert routing.current_split(s)["challenger_share"] == 0.25


# ---------------------------------------------------------------- exposures

@pytest.fixture
def rdb(home, monkeypatch):
    import uuid
    prefix = f"swbt-routing-{uuid.uuid4().hex[:10]}"
    monkeypatch.setenv("SWB_STREAM_PREFIX", prefix)
    monkeypatch.setenv("SWB_REDIS_URL", REDIS_URL)
    r = redis.Redis.from_url(REDIS_URL)
    yield r
    for k in r.scan_iter(f"{prefix}:*", count=1000): r.delete(k)


def exposure(i, variant, version, symbol, day, h=1, p=(-0.02, 0.0, 0.02), served=None):
    return dict(request_id=f"req-{i}", ts=pd.Timestamp("2030-01-01", tz="UTC") + pd.Timedelta(seconds=i), client_bucket=i % 10_000,
                variant=variant, served=(variant == "champion") if served is None else served, version=version, symbol=symbol,
                horizon=h, as_of=str(pd.Timestamp(day).date()), p10=p[0], p50=p[1], p90=p[2], fallback_level=0)


def test_exposures_land_once_trim_and_survive_a_crash_between_commit_and_trim(rdb, monkeypatch):
    s = Settings()
    key = routing.exposure_key(s)
    rows = [exposure(i, v, "2" if v == "champion" else "3", "SYN000", "2024-01-02") for i in range(5) for v in ("champion", "challenger")]
    assert routing.log_exposures(rdb, s, rows) == 10 and rdb.xlen(key) == 10
    assert routing.land_exposures(s, rdb) == 10
    assert rdb.xlen(key) == 0 and routing.land_exposures(s, rdb) == 0
    es = routing.ExposureStore(s)
    v1 = es._table().version()
    # a repeated request (a client retry) is merged on (request_id, variant, horizon): never doubled
    routing.log_exposures(rdb, s, [exposure(4, "champion", "2", "SYN000", "2024-01-02"), exposure(5, "champion", "2", "SYN000", "2024-01-02")])
    # the process dies after its commit and before its trim: the next landing lands nothing twice and trims
    real, calls = redis.Redis.xtrim, []
    def dies_after_commit(self, *a, **k):   # the first trim (of what landed before) passes; the one after the new commit dies
        calls.append(k.get("minid"))
        if len(calls) > 1: raise redis.ConnectionError("killed")
        return real(self, *a, **k)
    monkeypatch.setattr(redis.Redis, "xtrim", dies_after_commit)
    with pytest.raises(redis.ConnectionError): routing.land_exposures(s, rdb)
    monkeypatch.setattr(redis.Redis, "xtrim", real)
    assert rdb.xlen(key) == 2 and es._table().version() == v1 + 1
    assert routing.land_exposures(s, rdb) == 0 and rdb.xlen(key) == 0 and es._table().version() == v1 + 1
    ex = es.read()
    assert len(ex) == 11 and ex.duplicated(routing.EXPOSURE_KEY).sum() == 0
    assert sorted(ex["request_id"].unique()) == [f"req-{i}" for i in range(6)]
    assert ex["served"].sum() == 6 and set(ex["variant"]) == {"champion", "challenger"}
    assert str(ex["ts"].dt.tz) == "UTC" and ex["p90"].iloc[0] == 0.02


def test_arm_accuracy_scores_every_request_of_each_arm_against_the_random_walk(rdb):
    from stock_workbench.store import OhlcvStore
    from stock_workbench.metrics import accuracy, pinball, skill_vs_rw
    from stock_workbench.models import make_model
    from stock_workbench.features import add_targets
    s = Settings()
    m = synthetic_market(3, 1.5, seed=5)
    OhlcvStore.from_settings(s).write(m, source="test")
    days = np.sort(m["date"].unique())[-25:]
    rows, i = [], 0
    for d in days:
        for sym in ("SYN000", "SYN001", "SYN002"):
            for _ in range(2):   # two requests of one forecast: it counts once
                rows += [exposure(i, "champion", "2", sym, d, p=(-0.015, 0.0, 0.015)),
                         exposure(i, "challenger", "3", sym, d, p=(-0.03, 0.001, 0.03), served=(i % 20 == 0))]
                i += 1
    routing.log_exposures(rdb, s, rows)
    assert routing.land_exposures(s, rdb) == len(rows)
    arms = routing.arm_accuracy(s)
    assert list(arms.columns) == routing.ARM_COLUMNS
    assert arms[["arm", "version", "horizon"]].values.tolist() == [["champion", "2", 1], ["challenger", "3", 1]]
    ch, cl = arms.iloc[0], arms.iloc[1]
    assert (ch["requests"], ch["served"], ch["forecasts"], ch["realized"]) == (150, 150, 75, 72)   # the last session is not realized yet
    assert (cl["requests"], cl["forecasts"], cl["realized"]) == (150, 75, 72) and cl["served"] == sum(r["served"] for r in rows if r["variant"] == "challenger")
    # by hand: realized log returns from the store, the random walk fitted on outcomes known at each session
    t = add_targets(m[["symbol", "date", "adj_close"]].sort_values(["symbol", "date"], ignore_index=True), (1,))
    y = t.set_index(["symbol", "date"])["target_1d"]
    ses = np.sort(t["date"].unique())
    rw, ys = [], []
    for d in days[:-1]:
        known = t.groupby("symbol")["date"].shift(-1) <= d
        k = int(np.searchsorted(ses, d))
        fit = make_model("naive", 1, s).fit(t.assign(target_1d=t["target_1d"].where(known)), ses[max(0, k - s.train_days)], d)
        q = fit.predict(pd.DataFrame({"symbol": ["SYN000", "SYN001", "SYN002"], "date": [d] * 3}))
        rw.append(q); ys += [y[(sym, d)] for sym in ("SYN000", "SYN001", "SYN002")]
    rw = pd.concat(rw, ignore_index=True)
    ys = np.array(ys)
    a = accuracy(ys, np.full(72, -0.015), np.zeros(72), np.full(72, 0.015))
    assert math.isclose(ch["pinball"], a["pinball"], rel_tol=1e-12) and math.isclose(ch["coverage_80"], a["coverage_80"])
    prw = pinball(ys, rw["p10"], rw["p50"], rw["p90"])
    assert math.isclose(ch["pinball_rw"], prw, rel_tol=1e-9), (ch["pinball_rw"], prw)
    assert math.isclose(ch["skill_vs_rw"], skill_vs_rw(a["pinball"], prw), rel_tol=1e-9)
    assert "random walk" in ch["verdict"] and 0 <= ch["dm_pvalue"] <= 1


def test_feed_round_trips_eod_forecasts(rdb):
    s = Settings()
    w = pd.DataFrame({"symbol": ["A", "B"], "date": pd.to_datetime(["2024-01-02"] * 2), "close": [10.0, 0.0012],
                      "p10_1d": [-0.01, -0.02], "p50_1d": [0.1 + 0.2, 0.0], "p90_1d": [0.01, 0.02],
                      "p10_5d": [-0.03, -0.05], "p50_5d": [0.0, 0.0], "p90_5d": [0.03, 0.05]})
    assert routing.publish_forecasts(rdb, s, w, "eod", "7") == 2
    got = [routing.parse_feed(f) for _, f in rdb.xrange(routing.feed_key(s))]
    assert [g["symbol"] for g in got] == ["A", "B"] and got[0]["p50_1d"] == 0.1 + 0.2 and got[1]["close"] == 0.0012
    assert {g["source"] for g in got} == {"eod"} and {g["as_of"] for g in got} == {"2024-01-02"} and got[0]["model_version"] == "7"
    with pytest.raises(SwbError, match="not eod or stream"): routing.publish_forecasts(rdb, s, w, "batch", "7")
