"""The Airflow DAGs of pipelines/airflow/ run by Airflow itself (apache-airflow 3.3 in .venv-airflow, made by `make airflow-venv`):
`dag.test()` on a sqlite metadata database, in a subprocess, against a throwaway home on the small sample market. One EOD
session runs end to end and its task log names the report; the same date again changes nothing; a holiday and an
off-cadence retrain date are skipped tasks that say so."""
import hashlib, json, os, shutil, subprocess, sys, uuid
from pathlib import Path
import pytest
from conftest import tree_digest
from stock_workbench.synthetic import market_sessions

REPO = Path(__file__).resolve().parents[1]
AIRFLOW_PY = REPO / ".venv-airflow" / "bin" / "python"
DAGS = REPO / "pipelines" / "airflow"
FAST = {"SWB_SYNTHETIC_SYMBOLS": "6", "SWB_SYNTHETIC_YEARS": "3", "SWB_TRAIN_DAYS": "252", "SWB_REFIT_DAYS": "126",
        "SWB_PROMOTE_EVAL_DAYS": "126", "SWB_BACKTEST_DAYS": "126"}
LAST = str(market_sessions("2015-01-02", 756)[-1].date())   # the FAST sample market's last session: 2018-01-02

RUN_DAG = """
import importlib.util, json, sys, pendulum
spec = importlib.util.spec_from_file_location("stock_workbench_dag", sys.argv[1])
m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)
d = m.eod_dag if sys.argv[2] == "eod" else m.retrain_dag
dr = d.test(logical_date=pendulum.parse(sys.argv[3]))
print("RESULT " + json.dumps({"run": str(dr.state), "tasks": {ti.task_id: str(ti.state) for ti in dr.get_task_instances()}}))
"""


@pytest.fixture(scope="module")
def airflow_db(tmp_path_factory):
    "A migrated sqlite metadata database, made once; each test works on a copy"
    assert AIRFLOW_PY.exists(), f"{AIRFLOW_PY} is missing: run `make airflow-venv` (make test does)"
    root = tmp_path_factory.mktemp("airflow-db")
    env = {**os.environ, "AIRFLOW_HOME": str(root), "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{root}/airflow.db",
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    r = subprocess.run([str(AIRFLOW_PY.parent / "airflow"), "db", "migrate"], env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    return root / "airflow.db"


@pytest.fixture
def dag_test(airflow_db, home, tmp_path):
    "Run one DAG for one logical date with `dag.test()`; returns (result dict, the task's output)"
    af = tmp_path / "airflow"; af.mkdir()
    shutil.copy(airflow_db, af / "airflow.db")
    (tmp_path / "run_dag.py").write_text(RUN_DAG)
    env = {**os.environ, **FAST, "AIRFLOW_HOME": str(af), "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{af}/airflow.db",
           "AIRFLOW__CORE__LOAD_EXAMPLES": "False", "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS), "SWB_HOME": str(home),
           "SWB_PYTHON": sys.executable, "SWB_STREAM_PREFIX": f"swbtest-airflow-{uuid.uuid4().hex[:8]}"}
    def run(job: str, logical: str):
        r = subprocess.run([str(AIRFLOW_PY), str(tmp_path / "run_dag.py"), str(DAGS / "stock_workbench_dag.py"), job, logical],
                           env=env, capture_output=True, text=True, timeout=900)
        out = r.stdout + r.stderr
        res = [l for l in r.stdout.splitlines() if l.startswith("RESULT ")]
        assert r.returncode == 0 and res, out[-4000:]
        return json.loads(res[-1][len("RESULT "):]), out
    yield run
    try:
        import redis
        redis.Redis.from_url("redis://127.0.0.1:6379/0").delete(f"{env['SWB_STREAM_PREFIX']}:forecasts", f"{env['SWB_STREAM_PREFIX']}:exposures")
    except Exception: pass


def _ledger_version(home: Path) -> int:
    from stock_workbench.ledger import PredictionLedger
    return PredictionLedger(home / "predictions").version


def test_eod_session_runs_once_and_logs_its_report(dag_test, home):
    res, out = dag_test("eod", f"{LAST}T16:30:00-05:00")
    report = home / "reports" / "eod" / LAST / "eod.html"
    assert res == {"run": "success", "tasks": {"swb_run_eod": "success"}}, out[-4000:]
    assert report.exists()
    assert f"eod {LAST}: done. Report: {report}" in out            # `swb run eod`'s own line, in the task log
    assert f"eod {LAST}: exit 0. Report: {report}" in out
    state = json.loads((home / "schedule" / "state.json").read_text())["eod"]
    assert state["session"] == LAST and state["ok"] is True        # the scheduler's state: `swb schedule` will not run it again
    before = (tree_digest(home / "reports"), _ledger_version(home), (home / "schedule" / "state.json").read_text())
    res, out = dag_test("eod", f"{LAST}T16:30:00-05:00")           # a retry, a second trigger: nothing runs
    assert res == {"run": "success", "tasks": {"swb_run_eod": "success"}}, out[-4000:]
    assert f"eod {LAST}: already done" in out and f"nothing to run. Report: {report}" in out
    assert "swb run eod --date" not in out
    assert (tree_digest(home / "reports"), _ledger_version(home), (home / "schedule" / "state.json").read_text()) == before


def test_holiday_and_off_cadence_dates_run_nothing(dag_test, home):
    res, out = dag_test("eod", "2018-01-01T16:30:00-05:00")        # New Year's Day: the exchange is closed
    assert res == {"run": "success", "tasks": {"swb_run_eod": "skipped"}}, out[-4000:]
    assert "eod 2018-01-01: not a session of XNYS: nothing to run" in out
    res, out = dag_test("retrain", "2017-12-27T18:00:00-05:00")    # a Wednesday: retrain runs on the last session of the week
    assert res == {"run": "success", "tasks": {"swb_run_retrain": "skipped"}}, out[-4000:]
    assert "retrain 2017-12-27: not a weekly retrain session of XNYS: nothing to run" in out
    assert not (home / "reports").exists() and not (home / "schedule" / "state.json").exists()
