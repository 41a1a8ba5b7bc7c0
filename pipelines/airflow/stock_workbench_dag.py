"""Airflow DAGs of the workbench: `swb run eod` after each exchange session, `swb run retrain` on its cadence.

Runs in Airflow's own virtualenv (`make airflow-venv` makes .venv-airflow with apache-airflow 3.3; its pins clash with
the workbench's). Each task calls the workbench's venv, never importing stock_workbench here:
    <SWB_PYTHON> pipelines/airflow/swb_task.py <job> <logical date>
which applies the rules of `swb schedule` with its own functions: the exchange calendar and cadence (a date that is not a
fire session is a skipped task saying so), the job lock shared with `swb schedule` and `swb run`, and the scheduler's
state, so a retry or a second trigger of a date already done runs nothing (a failed date is re-run by the retry). The
task log carries the job's output and ends with the report path.

Configuration (environment of the Airflow workers, or the DAG's params when triggering):
    SWB_HOME      the workbench home (default: the repository root)
    SWB_PYTHON    the workbench venv's python (default: <repo>/.venv/bin/python)
    SWB_EOD_TIME, SWB_RETRAIN_TIME, SWB_EOD_TIMEZONE: as in settings.ini, which is read when they are not set
This file never fails to load: an unreadable settings.ini or a bad schedule value gives the default schedule, and each
task then fails at once, naming the fault (as `swb info` does). A refusal no retry can fix (bad settings, a bad logical
date, a session `swb run` refuses, no workbench python) fails without retries; a failed job's task error carries swb's
one-line cause, and names the report only when there is one.
The trigger runs on weekdays at eod_time / retrain_time; holidays and, for retrain, sessions off its cadence are skipped
by the calendar check at the task's start. Catch-up is off: like `swb schedule`, only the latest missed session runs.
"""
from __future__ import annotations
import configparser, datetime as dt, os, re, signal, subprocess, zoneinfo
from pathlib import Path
import pendulum
from airflow.sdk import DAG, Param, task
from airflow.sdk.exceptions import AirflowFailException, AirflowSkipException
from airflow.timetables.trigger import CronTriggerTimetable

REPO = Path(__file__).resolve().parents[2]
TASK_SCRIPT = Path(__file__).resolve().with_name("swb_task.py")
DEFAULTS = {"eod_time": "16:30", "retrain_time": "18:00", "eod_timezone": "America/New_York"}   # stock_workbench's DEFAULTS
SKIP = 99      # swb_task.py: nothing to run (a skipped task)
REFUSED = 98   # swb_task.py: a refusal no retry can fix (bad settings, a refused date): the task fails without retries
PROBLEMS: list[str] = []   # what was wrong with the schedule settings when this file was parsed; the tasks fail with it


def _home()->Path: return Path(os.environ.get("SWB_HOME") or REPO)

def _hhmm(raw:str)->tuple[int, int]|None:
    "`HH:MM` (00:00 to 23:59) as (hour, minute), else None: the rule of swb's own settings check"
    m = re.fullmatch(r"(\d{1,2}):(\d{2})", str(raw).strip())
    return (int(m[1]), int(m[2])) if m and int(m[1]) <= 23 and int(m[2]) <= 59 else None

def _zone_ok(raw:str)->bool:
    try: return bool(raw.strip()) and bool(zoneinfo.ZoneInfo(raw.strip())) and bool(pendulum.timezone(raw.strip()))
    except Exception: return False

_CHECKS = {"eod_time": (_hhmm, "a time of day HH:MM (00:00 to 23:59)"), "retrain_time": (_hhmm, "a time of day HH:MM (00:00 to 23:59)"),
           "eod_timezone": (_zone_ok, "a time zone name, e.g. America/New_York")}

def setting(key:str)->str:
    """A schedule setting as the workbench reads it: SWB_<KEY>, else the home's settings.ini, else the default.
    Never raises (a DAG file that raises is an import error with no task log): an unreadable settings.ini or a bad value
    is noted in PROBLEMS, the default is used, and the task then fails with that one line"""
    raw, where = DEFAULTS[key], "default"
    if os.environ.get(f"SWB_{key.upper()}", "").strip(): raw, where = os.environ[f"SWB_{key.upper()}"].strip(), f"SWB_{key.upper()}"
    else:
        ini = _home()/"settings.ini"
        try:
            if ini.exists():
                cp = configparser.ConfigParser(); cp.read(ini, encoding="utf-8-sig")
                for sec in cp.sections():
                    if cp.has_option(sec, key) and cp.get(sec, key).strip(): raw, where = cp.get(sec, key).strip(), f"{ini} [{sec}]"; break
        except (configparser.Error, OSError, UnicodeError) as e:
            line = (str(e).strip() or type(e).__name__).splitlines()[0]
            PROBLEMS.append(f"cannot read {ini}: {line}")   # the same for each key: said once (see run_swb_task)
            return DEFAULTS[key]
    ok, must = _CHECKS[key]
    if not ok(raw):
        PROBLEMS.append(f"setting {key}={raw!r} ({where}) is not {must}")
        return DEFAULTS[key]
    return raw


def _cron(hhmm:str)->str:
    h, m = _hhmm(hhmm) or _hhmm(DEFAULTS["eod_time"])
    return f"{m} {h} * * 1-5"


def _cause(lines:list[str])->str:
    "The one-line cause of a failed run: swb's last `swb: error: ...` line, else the last line"
    err = [l for l in lines if l.startswith("swb: error:")]
    return err[-1][len("swb: error:"):].strip() if err else next((l for l in reversed(lines) if l), "no output")


def run_swb_task(job:str, logical_date, swb_home:str, swb_python:str)->str:
    "Run swb_task.py in the workbench's venv, its output into the task log; the report path, or a skip/failure"
    if PROBLEMS: raise AirflowFailException(f"{job}: the schedule settings are wrong: {'; '.join(dict.fromkeys(PROBLEMS))}")
    if not (os.path.isfile(swb_python) and os.access(swb_python, os.X_OK)):
        raise AirflowFailException(f"{job}: no workbench python at {swb_python}: set SWB_PYTHON (the workbench venv's python, "
                                   f"e.g. <repo>/.venv/bin/python) in the Airflow workers' environment, or the swb_python param")
    if not os.path.isdir(swb_home):
        raise AirflowFailException(f"{job}: the workbench home {swb_home} is not a folder: set SWB_HOME, or the swb_home param")
    cmd = [swb_python, str(TASK_SCRIPT), job, logical_date.isoformat()]
    env = {**os.environ, "SWB_HOME": swb_home, "SWB_QUIET": "1"}
    print(f"running {' '.join(cmd)} with SWB_HOME={swb_home}", flush=True)
    # its own process group: a stopped task stops the `swb run` grandchild too, which then releases the job lock
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=swb_home,
                            start_new_session=True)
    lines = []
    try:
        for line in proc.stdout:
            print(line.rstrip("\n"), flush=True); lines.append(line.strip())
        code = proc.wait()
    except BaseException:   # the task was stopped (timeout, mark failed): SIGTERM stops the job cleanly, it says what had committed
        try:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(120)
        except subprocess.TimeoutExpired: os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError: pass
        raise
    last = next((l for l in reversed(lines) if l), f"exit {code}")
    if code == SKIP: raise AirflowSkipException(last)
    if code == 0: return last
    report = last.split(" Report: ", 1)[1] if " Report: " in last else ""
    why = f"{job} failed (exit {code}): {_cause(lines)}" + (f" (report: {report})" if report else "")
    if code == REFUSED: raise AirflowFailException(why)   # deterministic: a retry would refuse the same way
    raise RuntimeError(why)


def _dag(job:str, time_key:str, doc:str)->DAG:
    zone = setting("eod_timezone")
    with DAG(
        dag_id=f"stock_workbench_{job}",
        schedule=CronTriggerTimetable(_cron(setting(time_key)), timezone=zone),
        start_date=pendulum.datetime(1990, 1, 1, tz=zone),   # before any history a date could be re-run for; catch-up is off
        catchup=False,          # like `swb schedule`: after downtime only the latest missed session runs
        max_active_runs=1,
        default_args=dict(retries=2, retry_delay=dt.timedelta(minutes=10)),
        params={"swb_home": Param(str(_home()), type="string", description="the workbench home"),
                "swb_python": Param(os.environ.get("SWB_PYTHON") or str(REPO/".venv"/"bin"/"python"), type="string",
                                    description="python of the workbench's venv")},
        tags=["stock_workbench"],
        doc_md=doc,
    ) as d:
        @task(task_id=f"swb_run_{job}")
        def run_job(params=None, logical_date=None)->str:
            return run_swb_task(job, logical_date, params["swb_home"], params["swb_python"])
        run_job()
    return d


eod_dag = _dag("eod", "eod_time", "`swb run eod` for each exchange session, after its close (eod_time)")
retrain_dag = _dag("retrain", "retrain_time", "`swb run retrain` on the last session of its cadence (retrain_cadence)")
