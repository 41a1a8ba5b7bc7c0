"""The registry and the ledger, damaged or moved (issue 17): concurrent trains, a busy, corrupt or empty mlflow.db, deleted champion files,
promotion by hand, a copied or moved home, and a ledger that names models the registry does not know"""
import json, os, shutil, sqlite3, subprocess, threading, time
from pathlib import Path
import pandas as pd, pytest
from conftest import BIN, built_once, swb, tree_digest
from test_cli import one_line_error

ENV = {"SWB_TRAIN_DAYS": "252", "SWB_REFIT_DAYS": "126", "SWB_QUIET": "1"}


def _env(home, **kw):
    "The environment of a command on `home`: only this test's SWB_ settings"
    base = {k: v for k, v in os.environ.items() if not k.startswith("SWB_")}
    return {**base, **ENV, "SWB_HOME": str(home), **kw}


def run(home, *args, **kw):
    "`swb *args` on `home` (the conftest helper merges os.environ, so SWB_ variables of the caller are replaced here)"
    return subprocess.run([str(BIN / "swb"), *map(str, args)], capture_output=True, text=True, env=_env(home, **kw), timeout=300)


def _client(home):
    from mlflow import MlflowClient
    return MlflowClient(f"sqlite:///{home}/mlflow.db")


def _versions(home):
    c = _client(home)
    return sorted(int(v.version) for v in c.search_model_versions("name='stock-forecaster'")), \
        {k: str(v) for k, v in c.get_registered_model("stock-forecaster").aliases.items()}


def _run_id(home, version):
    "The run id of a registered version, read with sqlite3 (an MLflow client in this process would keep the file it first opened)"
    con = sqlite3.connect(home / "mlflow.db")
    try: return con.execute("SELECT run_id FROM model_versions WHERE name='stock-forecaster' AND version=?", (int(version),)).fetchone()[0]
    finally: con.close()


def _model_dir(home, version):
    "The model folder of a registered version, as the registry of `home` resolves it (a copied home's paths re-rooted to it first)"
    from stock_workbench.config import Settings
    from stock_workbench.registry import _model_dir
    return _model_dir(Settings(home, env={}), str(version))[1]


def _data(folder):
    r = run(folder / "home", "ingest", "--source", "synthetic", "--symbols", 3, "--years", 2, "--seed", 5)
    assert r.returncode == 0, r.stderr


def _trained(data_home):
    def make(folder):
        shutil.copytree(data_home, folder / "home")
        for _ in range(2): assert run(folder / "home", "train", "--model", "naive").returncode == 0
    return make


@pytest.fixture(scope="module")
def data_home(tmp_path_factory):
    "A small home with prices and no registry (3 symbols, 2 years), built once per test run; tests copy it, never change it"
    return built_once(tmp_path_factory, "registry-data", _data)[0] / "home"


@pytest.fixture(scope="module")
def trained_home(data_home, tmp_path_factory):
    "`data_home` with version 1 (champion) and version 2 (challenger) of naive; tests copy it, never change it"
    return built_once(tmp_path_factory, "registry-trained", _trained(data_home))[0] / "home"


@pytest.fixture
def fresh(data_home, tmp_path):
    h = tmp_path / "home"; shutil.copytree(data_home, h); return h


@pytest.fixture
def trained(trained_home, tmp_path):
    h = tmp_path / "home"; shutil.copytree(trained_home, h); return h


def test_concurrent_trains_on_a_fresh_home(fresh):
    "Two trains at once on a home without mlflow.db: the schema is created once; both register"
    ps = [subprocess.Popen([str(BIN / "swb"), "train", "--model", "naive", "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True, env=_env(fresh)) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in ps]
    assert [p.returncode for p in ps] == [0, 0], [e for _, e in outs]
    vs, aliases = _versions(fresh)
    assert vs == [1, 2] and sorted(aliases) == ["challenger", "champion"], (vs, aliases)
    assert sorted(json.loads(o)["alias"] for o, _ in outs) == ["challenger", "champion"]


def test_busy_mlflow_db_waits_then_one_line(trained):
    "A process holding mlflow.db in an exclusive transaction: predict retries, then says so in one line; it succeeds once released"
    con = sqlite3.connect(trained / "mlflow.db", isolation_level=None, check_same_thread=False)
    con.execute("BEGIN EXCLUSIVE")
    t = time.monotonic()
    one_line_error(run(trained, "predict"), f"mlflow.db {trained / 'mlflow.db'} is busy (another process holds it); try again")
    assert time.monotonic() - t < 45
    threading.Timer(6, lambda: con.execute("ROLLBACK")).start()   # released while the command retries
    r = run(trained, "predict", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["version"] == "1"
    con.close()


@pytest.mark.parametrize("content,cause", [(b"this is not a database\n" * 50, "the file is not an SQLite database"),
                                           (b"", "the file is empty (0 bytes)"),
                                           (b"SQLite format 3\x00" + b"\x07" * 4000, "DatabaseError")])
def test_damaged_mlflow_db_is_refused(fresh, content, cause):
    "A garbage, zero-byte or damaged mlflow.db is named with the way back, never taken for an empty registry, and left as it is"
    one_line_error(run(fresh, "predict"), "no champion model registered")   # no mlflow.db: a new registry
    assert not (fresh / "mlflow.db").exists()
    (fresh / "mlflow.db").write_bytes(content)
    for cmd in (["predict"], ["train", "--model", "naive"])[:1 if content else 2]:   # a train is refused too, before it fits
        one_line_error(run(fresh, *cmd), f"{fresh / 'mlflow.db'} is not a registry database (", cause,
                       "restore it from a backup, or move it aside (mv ")
    assert (fresh / "mlflow.db").read_bytes() == content


def test_champion_files_deleted_fall_back_promote_and_heal(trained):
    "The champion's model folder gone: predict falls back with a warning naming the path; promote points at a version that works; train heals"
    gone = _model_dir(trained, 1)
    shutil.rmtree(gone)
    r = run(trained, "predict", "--json", SWB_QUIET="")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["version"] == "baseline" and len(json.loads(r.stdout)["predictions"]) == 3
    warn = [l for l in r.stderr.splitlines() if l.startswith("warning:")]
    assert len(warn) == 1 and str(gone) in warn[0] and "rule-based baseline" in warn[0] and "swb promote --version N" in warn[0], r.stderr

    one_line_error(run(trained, "promote", "--version", 1), f"cannot load stock-forecaster version 1: its model files are missing ({gone})")
    one_line_error(run(trained, "promote", "--version", 7), "cannot load stock-forecaster version 7: no such version")
    r = run(trained, "promote", "--version", 2, "--json")
    assert r.returncode == 0, r.stderr
    assert (json.loads(r.stdout)["version"], json.loads(r.stdout)["previous_champion"]) == ("2", "1")
    assert _versions(trained)[1] == {"champion": "2", "previous_champion": "1"}   # aliases mean one thing: no challenger once it is champion
    r = run(trained, "predict", "--json", SWB_QUIET="")
    assert r.returncode == 0 and json.loads(r.stdout)["version"] == "2" and "warning" not in r.stderr, r.stderr

    shutil.rmtree(_model_dir(trained, 2))   # champion 2 gone, previous champion 1 gone: train makes the new version champion
    r = run(trained, "train", "--model", "naive", SWB_QUIET="")
    assert r.returncode == 0, r.stderr
    assert "version 3 as champion" in r.stdout and "the new version 3 becomes champion" in r.stderr, (r.stdout, r.stderr)
    r = run(trained, "predict", "--json", SWB_QUIET="")
    assert r.returncode == 0 and json.loads(r.stdout)["version"] == "3" and "warning" not in r.stderr, r.stderr


def test_copied_home_is_self_contained(trained_home, tmp_path):
    "A retrain in a copy writes nothing into the original (the home it was copied from)"
    copy = tmp_path / "copy"
    shutil.copytree(trained_home, copy)
    before = tree_digest(trained_home)
    r = run(copy, "train", "--model", "naive", "--json")
    assert r.returncode == 0, r.stderr
    assert tree_digest(trained_home) == before
    assert _model_dir(copy, 3).is_relative_to(copy) and (_model_dir(copy, 3) / "MLmodel").is_file()
    r = run(copy, "predict", "--model", "3", "--json")
    assert r.returncode == 0 and json.loads(r.stdout)["version"] == "3", r.stderr


def test_moved_home_loads_its_champion(fresh, tmp_path):
    "A home trained where it was, then moved: its champion loads from the new place"
    assert run(fresh, "train", "--model", "naive").returncode == 0
    moved = tmp_path / "elsewhere" / "home"
    moved.parent.mkdir()
    fresh.rename(moved)
    r = run(moved, "predict", "--json", SWB_QUIET="")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["version"] == "1" and "warning" not in r.stderr, r.stderr


def test_reset_registry_with_an_old_ledger_is_refused(trained):
    "After mlflow.db is reset, the old ledger's 'version 1' is another model: the places that join ledger and registry refuse"
    from deltalake import write_deltalake
    from stock_workbench.config import Settings, SwbError
    from stock_workbench.dashboard_data import DashboardData
    from stock_workbench.ledger import PredictionLedger, _to_arrow, accuracy_by_version, forecasts_long
    from stock_workbench.lifecycle import _check_ledger
    s = Settings(trained, env={})
    old_id = _run_id(trained, 1)
    wide = pd.DataFrame({"symbol": ["SYN000", "SYN001"], "date": pd.Timestamp("2016-12-29"), "p10_1d": -.02, "p50_1d": 0., "p90_1d": .02})
    led = PredictionLedger.from_settings(s)
    led.record(forecasts_long(wide, "1", "naive", "eod", model_id=old_id))
    (trained / "mlflow.db").unlink(); shutil.rmtree(trained / "mlartifacts")   # the registry is reset
    assert run(trained, "train", "--model", "naive").returncode == 0
    new_id = _run_id(trained, 1)
    assert new_id != old_id
    msg = f"names models the registry does not know: version 1 (model {old_id[:12]})"
    with pytest.raises(SwbError, match=r"restore the mlflow.db they came from, or move the ledger aside \(mv "): _check_ledger(s)
    with pytest.raises(SwbError) as e: DashboardData(s).forecasts("1", 1)
    assert msg in str(e.value)
    # two identities under one version number are two rows of accuracy, never one
    led.record(forecasts_long(wide, "1", "naive", "eod", model_id=new_id))
    with pytest.raises(SwbError, match="version 1"): _check_ledger(s)
    shutil.rmtree(led.path); led.record(forecasts_long(wide, "1", "naive", "eod", model_id=new_id))
    _check_ledger(s); DashboardData(s).forecasts("1", 1)   # every identity known
    led.record(forecasts_long(wide, "1", "naive", "eod", model_id=old_id))
    rows = led.read(model_version="1")
    assert sorted(rows["model_id"].unique()) == sorted([old_id, new_id])
    acc = accuracy_by_version(rows.assign(y=.01))
    assert len(acc) == 2 and set(acc["n"]) == {2}
    # a ledger from before model ids: read with empty ids, refused as unknown with the way back
    shutil.rmtree(led.path)
    write_deltalake(str(led.path), _to_arrow(forecasts_long(wide, "1", "naive", "eod", model_id="x")).drop_columns(["model_id"]))
    assert set(led.read()["model_id"]) == {""}
    with pytest.raises(SwbError, match=r"version 1 \(no model id: written before model ids\)"): _check_ledger(s)
