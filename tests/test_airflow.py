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
pytestmark = pytest.mark.xdist_group("airflow")   # one migrated metadata database for the module: its tests share a worker
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


PARSE_DAG = """
import importlib.util, json, sys, pendulum
spec = importlib.util.spec_from_file_location("stock_workbench_dag", sys.argv[1])
m = importlib.util.module_from_spec(spec); spec.loader.exec_module(m)
out = {"problems": m.PROBLEMS, "cron": m.eod_dag.timetable.serialize()["expression"]}
try: out["returned"] = m.run_swb_task("eod", pendulum.parse(sys.argv[2]), sys.argv[3], sys.argv[4])
except BaseException as e: out["raised"], out["message"] = type(e).__name__, str(e)
print("RESULT " + json.dumps(out))
"""


def _parse_dag(tmp_path, env: dict, logical: str, home, python):
    "Exec the DAG file in Airflow's venv and call its task function once (no scheduler); the RESULT dict and the output"
    (tmp_path / "parse_dag.py").write_text(PARSE_DAG)
    r = subprocess.run([str(AIRFLOW_PY), str(tmp_path / "parse_dag.py"), str(DAGS / "stock_workbench_dag.py"), logical, str(home), str(python)],
                       env={**os.environ, **FAST, "AIRFLOW_HOME": str(tmp_path / "af"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False", **env},
                       capture_output=True, text=True, timeout=600)
    res = [l for l in r.stdout.splitlines() if l.startswith("RESULT ")]
    assert r.returncode == 0 and res, (r.stdout + r.stderr)[-4000:]
    return json.loads(res[-1][len("RESULT "):]), r.stdout + r.stderr


def test_bad_settings_load_the_dag_and_fail_the_task(dag_test, home, tmp_path):
    "A malformed settings.ini or a bad schedule value never breaks the DAG file: the task fails at once, without retries, naming it"
    (home / "settings.ini").write_text("[jobs]\neod_time = 16:30\n[jobs]\nretrain_time = 18:00\n")
    res, out = dag_test("eod", f"{LAST}T16:30:00-05:00")
    assert res == {"run": "failed", "tasks": {"swb_run_eod": "failed"}}, out[-4000:]
    assert "AirflowFailException" in out and "the schedule settings are wrong: cannot read" in out and "settings.ini" in out
    assert not (home / "reports").exists()
    (home / "settings.ini").unlink()
    for env, want in [({"SWB_EOD_TIME": "25:99"}, "setting eod_time='25:99' (SWB_EOD_TIME) is not a time of day HH:MM (00:00 to 23:59)"),
                      ({"SWB_EOD_TIME": "half past four"}, "setting eod_time='half past four' (SWB_EOD_TIME) is not a time of day"),
                      ({"SWB_EOD_TIMEZONE": "Mars/Base"}, "setting eod_timezone='Mars/Base' (SWB_EOD_TIMEZONE) is not a time zone name")]:
        got, out = _parse_dag(tmp_path, {"SWB_HOME": str(home), **env}, f"{LAST}T16:30:00-05:00", home, sys.executable)
        assert got["cron"] == "30 16 * * 1-5" and got["raised"] == "AirflowFailException", out[-3000:]
        assert got["message"].startswith("eod: the schedule settings are wrong: " + want), got


def test_missing_python_and_failed_job_are_one_line(home, tmp_path):
    "No workbench python: one line saying to set SWB_PYTHON; a refused date: the task error carries swb's cause, names no report"
    got, out = _parse_dag(tmp_path, {"SWB_HOME": str(home)}, f"{LAST}T16:30:00-05:00", home, tmp_path / "no-venv" / "bin" / "python")
    assert got["raised"] == "AirflowFailException" and "set SWB_PYTHON (the workbench venv's python" in got["message"], got
    got, out = _parse_dag(tmp_path, {"SWB_HOME": str(home), "SWB_STREAM_PREFIX": f"swbtest-airflow-{uuid.uuid4().hex[:8]}"},
                          "2014-06-02T16:30:00-04:00", home, sys.executable)   # before the sample market
    assert got["raised"] == "AirflowFailException" and got["message"].startswith("eod failed (exit 98): eod 2014-06-02: the sample market"), got
    assert "2014-06-02 is before it" in got["message"] and "Report" not in got["message"] and "report" not in got["message"], got
    assert "Report:" not in out and not (home / "reports" / "eod" / "2014-06-02").exists()


def _task(home, *args):
    return subprocess.run([sys.executable, str(DAGS / "swb_task.py"), *args], env={**os.environ, **FAST, "SWB_HOME": str(home)},
                          capture_output=True, text=True, timeout=300)


def test_earlier_date_after_a_later_one_is_a_skip(home):
    import pandas as pd
    from stock_workbench import schedule
    from stock_workbench.config import Settings
    now = pd.Timestamp.now(tz="UTC")
    schedule.record_run(Settings(str(home)), "eod", "2017-12-29", 0, now, now)
    r = _task(home, "eod", "2017-12-28T16:30:00-05:00")
    assert r.returncode == 99, r.stdout + r.stderr
    assert "eod 2017-12-28: a later session (2017-12-29) already ran" in r.stdout and "nothing to run" in r.stdout and "Report" not in r.stdout
    r = _task(home, "eod", "not-a-date")   # Airflow always passes ISO; by hand: one line, a refusal (98: no retries)
    assert r.returncode == 98 and r.stderr == "swb: error: logical date 'not-a-date' is not a date (an ISO timestamp or YYYY-MM-DD)\n", r.stderr
