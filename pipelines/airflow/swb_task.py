"""One scheduled run of a stock_workbench job, as Airflow's tasks start it: runs in the workbench's own venv (not Airflow's).

    <repo>/.venv/bin/python pipelines/airflow/swb_task.py eod|retrain LOGICAL_DATE

LOGICAL_DATE is the run's logical date (an ISO timestamp, or a YYYY-MM-DD session). Its session is that date in
`eod_timezone`. The same rules as `swb schedule` (stock_workbench.schedule), with that module's functions:
- the exchange calendar and the job's cadence decide whether the date is a fire session of the job (retrain: the last
  session of the week or month); a date that is not, or whose fire time has not come yet, runs nothing (exit 99, a skip);
- the job's lock (`schedule/<job>.lock`, shared with `swb schedule` and `swb run`) is held for the whole run and handed to
  the `swb run` child, so a manual run, the scheduler and Airflow never run a job twice at once;
- the scheduler's state (`schedule/state.json`) is read under the lock: a session already run successfully, or a later
  session already run, is not run again (an Airflow retry after a success, a second trigger, a backfill behind the scheduler).
  A failed run is re-run by a retry: every step of a job is idempotent;
- after a successful EOD the home's tables are maintained, as the scheduler does.
The last line printed names the report. Exit: 0 ran or already done, 99 nothing to run, else the job's exit code.
"""
import datetime as dt, sys
import pandas as pd
from stock_workbench.config import Settings, SwbError
from stock_workbench import schedule

SKIP = 99   # Airflow's default skip_on_exit_code for shell tasks


def _session(settings:Settings, logical:str)->dt.date:
    "The session a logical date stands for: its calendar date in `eod_timezone`"
    ts = pd.Timestamp(logical)
    if ts.tzinfo is None: return ts.date()
    return ts.tz_convert(str(settings.eod_timezone)).date()


def _fire(settings:Settings, job:str, day:dt.date)->schedule.Fire|None:
    "The fire of `job` for session `day`, or None when `day` is not one of its sessions"
    zone = str(settings.eod_timezone)
    f = schedule.fire_times(settings, job, pd.Timestamp(day).tz_localize(zone) - pd.Timedelta(seconds=1), 1)
    return f[0] if f and f[0].session == day else None


def _report(settings:Settings, job:str, day:dt.date)->str:
    return str(settings.home/settings.reports_dir/job/day.isoformat()/f"{job}.html")


def run(job:str, logical:str, now:pd.Timestamp|None=None)->int:
    "Run `job` for the session of `logical` under the scheduler's rules; the exit code"
    settings = Settings()
    day = _session(settings, logical)
    fire = _fire(settings, job, day)
    if fire is None:
        what = "a session of " + str(settings.exchange) if job == "eod" else f"a {settings.retrain_cadence} retrain session of {settings.exchange}"
        print(f"{job} {day}: not {what}: nothing to run", flush=True); return SKIP
    now = now or pd.Timestamp.now(tz="UTC")
    if now < fire.at:
        print(f"{job} {day}: its run is due at {fire.at:%Y-%m-%d %H:%M %Z}, not yet: nothing to run", flush=True); return SKIP
    with schedule.job_lock(settings, job):
        rec = schedule.load_state(settings).get(job)
        if rec and (rec["session"] > day.isoformat() or (rec["session"] == day.isoformat() and rec.get("ok"))):
            why = "already done" if rec["session"] == day.isoformat() else f"a later session ({rec['session']}) already ran"
            print(f"{job} {day}: {why} (finished {rec.get('finished', '?')}): nothing to run. Report: {_report(settings, job, day)}", flush=True)
            return 0
        started = pd.Timestamp.now(tz="UTC")
        print(f"{job} {day}: start `swb run {job} --date {day}` in {settings.home}", flush=True)
        code = int(schedule.run_job_subprocess(job, day.isoformat()))   # the child inherits the held lock
        schedule.record_run(settings, job, day, code, started, pd.Timestamp.now(tz="UTC"))
        if code == 0 and job == "eod":
            schedule._maintain(settings, lambda line: print(line, flush=True), lambda: f"{pd.Timestamp.now(tz='UTC'):%Y-%m-%d %H:%M:%S %Z}")
    print(f"{job} {day}: exit {code}. Report: {_report(settings, job, day)}", flush=True)
    return code


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("eod", "retrain"):
        sys.exit("usage: swb_task.py eod|retrain LOGICAL_DATE")
    try: sys.exit(run(sys.argv[1], sys.argv[2]))
    except SwbError as e:
        print(f"swb: error: {e}", file=sys.stderr, flush=True); sys.exit(1)
