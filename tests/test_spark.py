"`--engine spark` of `swb features` and `swb predict`: the same table and forecasts as the local path, on one Spark session (local[2])"
import json, os, shutil, sys
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
