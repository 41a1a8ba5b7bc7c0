"`--engine spark` of `swb features` and `swb predict`: the same table and forecasts as the local path, on one Spark session (local[2])"
import json, os, shutil, signal, subprocess, sys, time
from argparse import Namespace
from pathlib import Path
import numpy as np, pandas as pd, pytest
from deltalake import DeltaTable
from conftest import built_once, swb
from test_cli import one_line_error

MASTER = "local[2]"
pytestmark = [pytest.mark.filterwarnings("ignore:PySpark does not yet fully support pandas"),   # pyspark 4.3 on pandas 3
              pytest.mark.filterwarnings("ignore:The copy keyword is deprecated"),
              pytest.mark.xdist_group("spark")]   # one JVM for the module: under `pytest -n 2 --dist loadgroup` its tests share a worker


def _trained_home(folder: Path):
    "A home with 6 synthetic symbols x 4 years, a gbm champion (version 1) and a volq version 2"
    env = {"SWB_HOME": str(folder), "SWB_QUIET": "1"}
    for args in (["ingest", "--source", "synthetic", "--symbols", "6", "--years", "4"], ["train", "--model", "gbm"], ["train", "--model", "volq"]):
        r = swb(*args, env=env, timeout=900)
        assert r.returncode == 0, r.stderr
    return "ok"


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return built_once(tmp_path_factory, "spark-home", _trained_home)[0]


@pytest.fixture
def home(built, tmp_path, monkeypatch):
    "A copy of the trained home, as SWB_HOME of this test (in process and in subprocesses)"
    h = tmp_path / "home"
    shutil.copytree(built, h)
    monkeypatch.setenv("SWB_HOME", str(h)); monkeypatch.setenv("SWB_QUIET", "1")
    for k in [k for k in os.environ if k.startswith("SWB_") and k not in ("SWB_HOME", "SWB_QUIET")]: monkeypatch.delenv(k)
    return h


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    "The one Spark session of this test process: workers on this interpreter"
    from stock_workbench.config import Settings
    from stock_workbench.spark import spark_session
    s = spark_session(Settings(tmp_path_factory.mktemp("spark-settings")), MASTER)
    assert os.environ["PYSPARK_PYTHON"] == sys.executable
    yield s
    s.stop()


def swb_in_process(capsys, *args) -> tuple[int, str, str]:
    "`swb` in this process (so it reuses the session's Spark); exit code, stdout, stderr"
    from stock_workbench.cli import main
    capsys.readouterr()
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def assert_same_table(a: pd.DataFrame, b: pd.DataFrame, atol=1e-9):
    "Same columns, dtypes, keys and NaN pattern; numbers equal to `atol`"
    assert list(a.columns) == list(b.columns)
    assert a.dtypes.astype(str).to_dict() == b.dtypes.astype(str).to_dict()
    assert len(a) == len(b) > 0
    pd.testing.assert_frame_equal(a[["symbol", "date"]].reset_index(drop=True), b[["symbol", "date"]].reset_index(drop=True))
    num = [c for c in a.columns if c not in ("symbol", "date") and pd.api.types.is_float_dtype(a[c])]
    x, y = a[num].to_numpy(), b[num].to_numpy()
    assert (np.isnan(x) == np.isnan(y)).all()
    assert np.nanmax(np.abs(x - y)) <= atol


def test_features_spark_equal_local(spark, home, tmp_path, capsys):
    local, sp, csv = tmp_path / "local.parquet", tmp_path / "spark.parquet", tmp_path / "spark.csv"
    r = swb("features", "--output", local)
    assert r.returncode == 0, r.stderr
    code, out, err = swb_in_process(capsys, "features", "--engine", "spark", "--master", MASTER, "--output", sp)
    assert code == 0, err
    assert "Spark local[2]" in out and "6 symbol(s)" in out
    a, b = pd.read_parquet(local), pd.read_parquet(sp)
    assert b["symbol"].nunique() == 6
    assert_same_table(b, a)
    code, out, err = swb_in_process(capsys, "features", "--engine", "spark", "--master", MASTER, "--output", csv, "--start", "2017-06-01")
    assert code == 0, err
    c = pd.read_csv(csv, parse_dates=["date"])
    assert c["date"].min() >= pd.Timestamp("2017-06-01") and len(c) == (a["date"] >= "2017-06-01").sum()


def _local_forecasts(*model) -> pd.DataFrame:
    r = swb("predict", "--json", *model)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    return d, pd.DataFrame(d["predictions"])


@pytest.mark.parametrize("ref", ["champion", "2"])   # the gbm champion; volq (version 2): a per-symbol recursion over 250 sessions
def test_predict_spark_equal_local(spark, home, tmp_path, capsys, ref):
    meta, local = _local_forecasts("--model", ref)
    out = tmp_path / "fc.parquet"
    code, so, err = swb_in_process(capsys, "predict", "--engine", "spark", "--master", MASTER, "--model", ref, "--output", out)
    assert code == 0, err
    sp = pd.read_parquet(out)
    assert sp["model"].unique().tolist() == [meta["model"]] == (["gbm"] if ref == "champion" else ["volq"])
    assert sp["version"].unique().tolist() == [meta["version"]]
    assert sp["symbol"].tolist() == local["symbol"].tolist() and len(sp) == 6
    assert (sp["date"].dt.strftime("%Y-%m-%d") == local["date"]).all()
    qs = [c for c in local.columns if c not in ("symbol", "date")]
    np.testing.assert_allclose(sp[qs].to_numpy(), local[qs].to_numpy(), rtol=0, atol=1e-9)


def test_outputs_to_the_store_are_idempotent(spark, home, capsys):
    from stock_workbench.config import Settings
    from stock_workbench.spark import cmd_features_spark, spark_table_path
    settings = Settings(home)
    for _ in range(2):
        code, out, err = swb_in_process(capsys, "predict", "--engine", "spark", "--master", MASTER)
        assert code == 0, err
        assert "spark/predictions version" in out
    t = DeltaTable(str(spark_table_path(settings, "predictions")))
    assert t.version() == 1
    p = t.to_pandas()
    assert len(p) == 6 and not p.duplicated(["symbol", "date"]).any()
    assert cmd_features_spark(Namespace(symbols=None, output=None, start="2018-01-01", end=None, master=MASTER), settings) == 0
    f1 = DeltaTable(str(spark_table_path(settings, "features"))).to_pandas()
    assert cmd_features_spark(Namespace(symbols=None, output=None, start="2018-01-01", end=None, master=MASTER), settings) == 0
    t = DeltaTable(str(spark_table_path(settings, "features")))
    f2 = t.to_pandas()
    assert t.version() == 1 and len(f1) == len(f2) > 0 and not f2.duplicated(["symbol", "date"]).any()
    key = ["symbol", "date"]
    pd.testing.assert_frame_equal(f1.sort_values(key, ignore_index=True), f2.sort_values(key, ignore_index=True))
    capsys.readouterr()


def test_bad_master_is_one_line(home, tmp_path):
    one_line_error(swb("features", "--engine", "spark", "--master", "nonsense://x", "--output", tmp_path / "f.parquet"), "--master", "nonsense://x")
    one_line_error(swb("predict", "--engine", "spark", "--master", "local[two]"), "--master")
    assert not (tmp_path / "f.parquet").exists()


def test_unknown_symbol_is_one_line(home, tmp_path):
    one_line_error(swb("features", "--engine", "spark", "--symbols", "NOPE", "--output", tmp_path / "f.parquet"), "unknown symbol", "NOPE")
    one_line_error(swb("predict", "--engine", "spark", "--symbols", "NOPE", "--output", tmp_path / "p.parquet"), "unknown symbol", "NOPE")


def test_master_rule_and_unreachable_master(home, tmp_path):
    from stock_workbench.config import SwbError
    from stock_workbench.spark import _check_master
    assert _check_master("local-cluster[2,1,1024]") == "local-cluster[2,1,1024]"
    for bad in ("local[0]", "spark", "k8s", "spark://host-without-port"):
        with pytest.raises(SwbError, match="must be a Spark master URL") as e: _check_master(bad)
        assert "not must" not in str(e.value)
    line = one_line_error(swb("features", "--engine", "spark", "--master", "local[0]", "--output", tmp_path / "f.parquet"), "--master 'local[0]'")
    assert "local[N] (N >= 1)" in line
    one_line_error(swb("predict", "--engine", "spark", "--master", "yarn", env={"HADOOP_CONF_DIR": "", "YARN_CONF_DIR": ""}), "HADOOP_CONF_DIR")
    one_line_error(swb("features", "--engine", "spark", "--master", "spark://127.0.0.1:1", "--output", tmp_path / "f.parquet"),
                   "cannot reach the Spark master", "127.0.0.1:1")
    assert not (tmp_path / "f.parquet").exists()


def test_dates_checked_before_spark(home, tmp_path):
    "Bad or empty date ranges are refused (or give the local path's empty file) without a Spark start: `--master` points nowhere"
    nowhere = ["--engine", "spark", "--master", "spark://127.0.0.1:1"]   # a Spark start would fail with 'cannot reach'
    one_line_error(swb("predict", *nowhere, "--date", "2018-07-04"), "no stored data on 2018-07-04")
    one_line_error(swb("features", *nowhere, "--start", "2030-01-01"), "no stored prices between --start and --end")
    one_line_error(swb("features", *nowhere, "--start", "2018-03-01", "--end", "2018-01-01", "--output", tmp_path / "f.parquet"),
                   "--start 2018-03-01 is after --end 2018-01-01")
    r = swb("features", *nowhere, "--start", "2030-01-01", "--output", tmp_path / "e.parquet")
    assert r.returncode == 0, r.stderr
    e, local = pd.read_parquet(tmp_path / "e.parquet"), swb("features", "--start", "2030-01-01", "--output", tmp_path / "l.parquet")
    assert local.returncode == 0 and len(e) == 0 and list(e.columns) == list(pd.read_parquet(tmp_path / "l.parquet").columns)


def test_home_table_columns_and_market_features(spark, home, tmp_path, capsys):
    "spark/features has the local table's columns (no pandas index) and market features over the default universe whatever --symbols picks"
    from stock_workbench.config import Settings
    from stock_workbench.spark import spark_table_path
    full, sub = tmp_path / "full.parquet", tmp_path / "sub.parquet"
    assert swb("features", "--output", full).returncode == 0
    assert swb("features", "--symbols", "SYN000", "--output", sub).returncode == 0
    a, s = pd.read_parquet(full), pd.read_parquet(sub)
    code, out, err = swb_in_process(capsys, "features", "--engine", "spark", "--master", MASTER, "--start", "2018-01-01")
    assert code == 0, err
    path = str(spark_table_path(Settings(home), "features"))
    t = DeltaTable(path).to_pandas()
    assert list(t.columns) == list(a.columns) and "__index_level_0__" not in t.columns
    code, out, err = swb_in_process(capsys, "features", "--engine", "spark", "--master", MASTER, "--symbols", "syn000",
                                    "--start", "2018-06-01", "--end", "2018-06-30")
    assert code == 0, err
    assert "21 rows" in out and "1 symbol(s)" in out
    key = ["symbol", "date"]
    t2 = DeltaTable(path)
    assert t2.version() == 1
    t2 = t2.to_pandas().sort_values(key, ignore_index=True)
    assert list(t2.columns) == list(a.columns) and not t2.duplicated(key).any()
    want = a[a["date"] >= "2018-01-01"].sort_values(key, ignore_index=True)
    assert_same_table(t2.astype(want.dtypes.to_dict()), want)   # the subset's rows keep the full panel's mkt_*
    own = a[a["symbol"] == "SYN000"]["mkt_ret_1d"].to_numpy()
    assert np.nanmax(np.abs(s["mkt_ret_1d"].to_numpy() - own)) > 1e-6   # a one-symbol panel's market differs: the file keeps that meaning
    code, out, err = swb_in_process(capsys, "features", "--engine", "spark", "--master", MASTER, "--symbols", "SYN000", "--output", tmp_path / "sp.parquet")
    assert code == 0, err
    assert_same_table(pd.read_parquet(tmp_path / "sp.parquet"), s)   # to a file: the local path's meaning of --symbols


def test_ingest_prints_no_pyspark_warning(tmp_path):
    r = swb("ingest", "--source", "synthetic", "--symbols", "2", "--years", "1", env={"SWB_HOME": str(tmp_path / "h")})
    assert r.returncode == 0, r.stderr
    assert "Warning" not in r.stderr and "PySpark" not in r.stderr, r.stderr


def _spark_processes(pid: int, worker: bool) -> list:
    "The JVM (`worker`=False) or pyspark.daemon workers among the descendants of `pid`"
    import psutil
    try: kids = psutil.Process(pid).children(recursive=True)
    except psutil.NoSuchProcess: return []
    out = []
    for k in kids:
        try: cmd = " ".join(k.cmdline())
        except psutil.Error: continue
        if ("pyspark.daemon" in cmd) if worker else ("SparkSubmit" in cmd): out.append(k)
    return out


@pytest.mark.parametrize("sig,stage,code", [(signal.SIGINT, "start", 130), (signal.SIGTERM, "job", 143)])
def test_interrupt_is_one_line(home, sig, stage, code):
    "SIGINT while the JVM starts, SIGTERM once Python workers run: the CLI's one line and exit code, no JVM or worker left"
    import psutil
    p = subprocess.Popen([str(Path(sys.executable).parent / "swb"), "predict", "--engine", "spark", "--master", MASTER, "--output",
                          str(home / "p.parquet")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    seen = []
    while p.poll() is None and not seen:
        jvm = _spark_processes(p.pid, worker=False)
        seen = _spark_processes(jvm[0].pid, worker=True) if stage == "job" and jvm else jvm
        time.sleep(0.05)
    assert seen, "the run ended before the stage to interrupt: " + p.stderr.read()
    jvms = _spark_processes(p.pid, worker=False) + (seen if stage == "job" else [])
    os.killpg(p.pid, sig)   # the whole group, as a terminal's Ctrl-C or a supervisor does
    out, err = p.communicate(timeout=300)
    assert p.returncode == code, err
    assert err.strip().splitlines() == [f"swb: interrupted by {sig.name}; nothing had been committed"], err
    assert not (home / "p.parquet").exists()
    gone, alive = psutil.wait_procs(jvms, timeout=60)
    assert not alive, alive
