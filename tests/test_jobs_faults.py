"swb run under races and faults (issue 17): a gap symbol and a stale symbol, EOD racing retrain and an ingest, a misbehaving webhook, offline reports, the scheduler's maintenance"
import json, os, re, shutil, socket, subprocess, sys, tempfile, threading, time
from pathlib import Path
import pandas as pd, pytest
from conftest import BIN, built_once, write_yahoo_csv
from stock_workbench.config import Settings
from stock_workbench.synthetic import synthetic_market

FAST = {"SWB_TRAIN_DAYS": "252", "SWB_REFIT_DAYS": "126", "SWB_PROMOTE_EVAL_DAYS": "126", "SWB_BACKTEST_DAYS": "126"}
GAP, STALE = "SYN001", "SYN002"


def _env(home, **extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWB_")}
    return {**env, "SWB_HOME": str(home), "SWB_QUIET": "1", **FAST, **extra}


def _swb(home, *args, timeout=300, **extra):
    return subprocess.run([str(BIN / "swb"), *map(str, args)], capture_output=True, text=True, env=_env(home, **extra), timeout=timeout)


def _leftovers(home):
    "Socket files and report tmp/old folders a run must not leave behind"
    found = [p.name for p in Path(home).glob("kernel-ipc-*")]
    found += [str(p) for p in (Path(home) / "reports").glob("*/.*") if re.search(r"\.\d+\.(tmp|old)$", p.name)]
    return found


def _build_world(root):
    "4 symbols over 2 years: SYN001 misses one session 20 sessions back, SYN002 stopped 3 sessions before the end; one EOD ran"
    home = root / "home"; home.mkdir()
    df = synthetic_market(4, 2, seed=11)
    days = sorted(df["date"].unique())
    for s, g in df.groupby("symbol"):
        if s == GAP: g = g[g["date"] != days[-20]]
        if s == STALE: g = g[g["date"] <= days[-4]]
        write_yahoo_csv(g, root / "csv" / f"{s}.csv")
    r = _swb(home, "ingest", "--source", "csv", "--path", root / "csv")
    assert r.returncode == 0, r.stderr
    last = str(days[-1].date())
    t0 = time.perf_counter()
    first = _swb(home, "run", "eod", "--date", last, "-p", "source=none")
    return dict(last=last, first=dict(returncode=first.returncode, stderr=first.stderr), first_s=time.perf_counter() - t0)


@pytest.fixture(scope="module")
def built_world(tmp_path_factory):
    "The world, built once per test run (every xdist worker shares it): only read it; `world` gives a test its own copy"
    root, made = built_once(tmp_path_factory, "jobs-faults-world", _build_world)
    df = synthetic_market(4, 2, seed=11)
    return dict(made, home=root / "home", root=root, df=df, days=sorted(df["date"].unique()))


@pytest.fixture
def world(built_world, tmp_path):
    "This test's own copy of the world's home (the prices it was built from stay shared: read-only)"
    home = tmp_path / "home"
    shutil.copytree(built_world["home"], home, symlinks=True)
    return dict(built_world, home=home, root=tmp_path)


def test_eod_with_a_gap_and_a_stale_symbol_succeeds_and_says_so(built_world):
    world, r = built_world, built_world["first"]
    assert r["returncode"] == 0, r["stderr"]                      # before: `close must be a positive price everywhere ... missing`
    html = (world["home"] / "reports" / "eod" / world["last"] / "eod.html").read_text()
    text = re.sub(r"<[^>]+>", " ", html)
    assert f"{STALE} (last session {world['days'][-4].date()})" in text and "left out of this run" in text
    assert GAP in text and "close carried from the session before" in text    # the backtest says how it took the hole
    assert "pinned" in text
    assert _leftovers(world["home"]) == []


def test_the_report_needs_no_network(built_world):
    world = built_world
    html = (world["home"] / "reports" / "eod" / world["last"] / "eod.html").read_text()
    remote = re.findall(r"<(?:script|link|img|iframe)\b[^>]*\b(?:src|href)\s*=\s*[\"']?(?:https?:)?//", html, flags=re.I)
    assert remote == [], remote                               # before: require.js, MathJax and mermaid from a CDN
    assert not re.search(r"import\s*\(?\s*[\"']https?://", html)   # no module loaded from a URL either
    assert html.count("data:image/png;base64") >= 2            # figures embedded


def test_the_job_reads_its_pinned_version_while_an_ingest_lands(world, monkeypatch):
    from stock_workbench.pipeline import EodJob
    home = world["home"]
    monkeypatch.setenv("SWB_HOME", str(home))
    s = Settings(home, env=FAST)
    job = EodJob(world["last"], "", "none", s)
    st = job.update_store()
    v = job.pinned
    assert st.version == v
    before = job._read()
    extra = world["df"][world["df"]["symbol"] == "SYN000"].assign(symbol="NEWCO")
    extra = extra[extra["date"] >= world["days"][-30]]          # a short history: 30 sessions, NaN before in a pivot
    write_yahoo_csv(extra, world["root"] / "late" / "NEWCO.csv")
    r = _swb(home, "ingest", "--source", "csv", "--path", world["root"] / "late")   # lands between the job's steps
    assert r.returncode == 0, r.stderr
    from stock_workbench.store import OhlcvStore
    assert OhlcvStore.from_settings(s).version > v
    pd.testing.assert_frame_equal(job._read(), before)          # the job still sees its version
    fc = job.forecast()
    assert "NEWCO" not in set(fc.panel["symbol"]) and STALE not in set(fc.forecasts["symbol"])
    job.score(); job.backtest(fc)
    lin = dict(job.lineage(fc, st).values)
    assert lin["store"].startswith(f"{OhlcvStore.from_settings(s).path} version {v} (pinned") and lin["symbols left out"] == STALE


def test_eod_and_retrain_at_once_both_succeed_and_leave_nothing(world):
    home = world["home"]
    dead = subprocess.Popen(["true"]); dead.wait()
    stale_tmp = home / "reports" / "eod" / f".2016-01-04.{dead.pid}.tmp"
    stale_tmp.mkdir(parents=True); (stale_tmp / "eod.ipynb").write_text("{")
    (home / "kernel-ipc-7").write_text("")                      # left by a killed run of the old runner
    # one round: without per-run sockets both runs name kernel-ipc-N in the home at once, which `seen` catches every time
    procs = [subprocess.Popen([str(BIN / "swb"), "run", job, "--date", world["last"], *extra], env=_env(home),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for job, extra in (("eod", ["-p", "source=none"]), ("retrain", ["-p", "model=naive"]))]
    seen = set()
    while any(p.poll() is None for p in procs):            # while both run: no socket named in the shared home
        seen |= {q.name for q in home.glob("kernel-ipc-*")} - {"kernel-ipc-7"}
        time.sleep(0.2)
    assert seen == set(), seen                               # before: kernel-ipc-1.. in the home, picked by both runs
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [o[1][-600:] for o in outs]
    assert not any("Invalid Signature" in o[1] or "didn't respond" in o[1] for o in outs)
    assert _leftovers(home) == [] and not stale_tmp.exists()
    mine = {p.pid for p in procs}
    assert [p for p in Path(tempfile.gettempdir()).glob("swb-ipc-*") if int(p.name.split("-")[2]) in mine] == []


class _Webhook:
    "A local webhook on 127.0.0.1 that answers each connection in turn: garbled, HTTP 500, never"
    def __init__(self):
        self.sock = socket.socket(); self.sock.bind(("127.0.0.1", 0)); self.sock.listen(16)
        self.port, self.n, self.held = self.sock.getsockname()[1], 0, []
        threading.Thread(target=self._serve, daemon=True).start()
    def _serve(self):
        while True:
            try: c, _ = self.sock.accept()
            except OSError: return
            c.settimeout(2)
            try: c.recv(65536)
            except OSError: pass
            mode = self.n % 3; self.n += 1
            if mode == 0: c.sendall(b"GARBAGE\r\n\r\n"); c.close()
            elif mode == 1: c.sendall(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\n\r\n"); c.close()
            else: self.held.append(c)                             # hangs
    def close(self):
        self.sock.close()
        for c in self.held: c.close()


def test_a_misbehaving_webhook_is_a_warning_not_a_failure(world):
    home, secret = world["home"], "T0KEN-faults"
    hook = _Webhook()
    closed = socket.socket(); closed.bind(("127.0.0.1", 0)); cport = closed.getsockname()[1]; closed.close()
    try:
        for port, needle in ((hook.port, "a garbled reply"), (cport, "connection refused")):
            t0 = time.perf_counter()
            r = _swb(home, "run", "eod", "--date", world["last"], "-p", "source=none", SWB_QUIET="",
                     SWB_ALERT_WEBHOOK_URL=f"http://127.0.0.1:{port}/hooks/{secret}", SWB_ALERT_MOVE_PCT="0.001",
                     SWB_ALERT_TIMEOUT_S="1", SWB_ALERT_DEADLINE_S="3")
            took = time.perf_counter() - t0
            assert r.returncode == 0, r.stderr[-800:]           # before: BadStatusLine failed the job
            warn = [l for l in r.stderr.splitlines() if l.startswith(f"warning: eod {world['last']}: the alert webhook did not take alert")]
            assert warn and any(needle in l for l in warn), r.stderr[-1500:]
            assert took < world["first_s"] + 30, took            # bounded by the deadline, not 10 s per alert
            out = home / "reports" / "eod" / world["last"]
            seen = r.stdout + r.stderr + (out / "eod.html").read_text() + (out / "eod.ipynb").read_text()
            assert secret not in seen and "/hooks/" not in seen
        assert hook.n >= 3                                       # garbled, 500 and a hang were all met
    finally:
        hook.close()


def test_the_scheduler_maintains_the_home_after_eod_and_a_failure_is_a_warning(home, monkeypatch):
    import types
    from stock_workbench import schedule
    calls = []
    fake = types.ModuleType("stock_workbench.storecare")
    def maintain_home(settings, retention_hours=None):
        calls.append(settings.home)
        if len(calls) == 2: raise OSError("disk full")
        return {"files_removed": 3}
    fake.maintain_home = maintain_home
    monkeypatch.setitem(sys.modules, "stock_workbench.storecare", fake)
    s = Settings()
    now = pd.Timestamp("2024-03-05 22:00", tz="UTC")                  # after the EOD fire of Tuesday 2024-03-05
    for code, expect in ((0, 1), (0, 2), (1, 2)):
        (home / "schedule" / "state.json").unlink(missing_ok=True)
        lines = []
        runs = schedule.run_scheduler(s, lambda job, session: code, now_fn=lambda: now, sleep_fn=lambda x: None, max_runs=1, log=lines.append)
        assert runs == 1 and len(calls) == expect, lines
        if expect == 2 and code == 0:
            assert any("warning: maintaining the home's tables failed (OSError: disk full)" in l for l in lines), lines
            assert not any("FAILED" in l for l in lines) and schedule.load_state(s)["eod"]["exit_code"] == 0
    assert schedule.load_state(s)["eod"]["exit_code"] == 1


def test_eod_says_when_the_champion_did_not_serve(world, monkeypatch):
    "The champion's files deleted: EOD still runs, and its report and lineage name the fallback level and the reason"
    import shutil
    from stock_workbench.registry import _model_dir, alias_version
    s = Settings(world["home"], env={})
    champ = alias_version(s, "champion")
    shutil.rmtree(_model_dir(s, champ)[1])
    r = _swb(world["home"], "run", "eod", "--date", world["last"], "-p", "source=none")
    assert r.returncode == 0, r.stderr[-800:]
    text = re.sub(r"<[^>]+>", " ", (world["home"] / "reports" / "eod" / world["last"] / "eod.html").read_text())
    assert "The champion did not serve" in text and re.search(r"model served\s+fallback level [12]: ", text), text[-3000:]


def test_sigterm_mid_run_stops_the_kernel_and_names_what_had_committed(tmp_path):
    "`swb run eod` killed with SIGTERM after its store step: exit 143, one `swb:` line naming the commit, no kernel, no tmp left"
    import signal
    home = tmp_path / "home"; home.mkdir()
    df = synthetic_market(3, 2, seed=5)
    last = df["date"].max()
    folder = tmp_path / "csv"
    for s, g in df.groupby("symbol"): write_yahoo_csv(g[g["date"] < last], folder / f"{s}.csv")
    assert _swb(home, "ingest", "--source", "csv", "--path", folder).returncode == 0
    for s, g in df.groupby("symbol"): write_yahoo_csv(g, folder / f"{s}.csv")    # the EOD source has the last session
    log = home / "data" / "_delta_log"
    n0 = len(list(log.glob("*.json")))
    p = subprocess.Popen([str(BIN / "swb"), "run", "eod", "--date", str(last.date())], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True, env=_env(home, SWB_EOD_SOURCE="csv", SWB_EOD_CSV_PATH=str(folder)))
    t0 = time.time()
    while len(list(log.glob("*.json"))) == n0 and p.poll() is None and time.time() - t0 < 120: time.sleep(0.1)
    time.sleep(1.5)                                            # past the store step, into the retrain the first EOD runs
    assert p.poll() is None, p.communicate()
    p.send_signal(signal.SIGTERM)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 143, err[-800:]
    lines = [l for l in err.splitlines() if l.startswith("swb:")]
    assert len(lines) == 1 and f"{home / 'data'} version 1" in lines[0], err[-800:]
    assert _leftovers(home) == [] and not list((home / "reports" / "eod").glob(".*"))
    time.sleep(0.5)
    kernels = [d for d in Path("/proc").iterdir() if d.name.isdigit() and f"swb-ipc-{p.pid}-".encode() in
               ((d / "cmdline").read_bytes() if (d / "cmdline").exists() else b"")]
    assert kernels == [], kernels                               # the kernel was stopped with the run
    assert not list(Path(tempfile.gettempdir()).glob(f"swb-ipc-{p.pid}-*"))
