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
The last line printed names the report, when there is one. Exit: 0 ran or already done, 99 nothing to run (a date that
is not a session, not due yet, or earlier than a session already run), 98 a refusal no retry can fix (bad settings, a
logical date that is not a date, a session `swb run` refuses, e.g. one outside the sample market), else the job's exit code.
"""
import datetime as dt, sys
import pandas as pd
from stock_workbench.config import Settings, SwbError
from stock_workbench import runner, schedule

SKIP = 99      # Airflow's default skip_on_exit_code for shell tasks
REFUSED = 98   # deterministic: the DAG fails the task without retries


class Refused(SwbError):
    "A refusal no retry can fix"


def _session(settings:Settings, logical:str)->dt.date:
    "The session a logical date stands for: its calendar date in `eod_timezone`"
    try: ts = pd.Timestamp(str(logical).strip())
    except (ValueError, TypeError, OverflowError): ts = pd.NaT
    if ts is pd.NaT: raise Refused(f"logical date {logical!r} is not a date (an ISO timestamp or YYYY-MM-DD)")
    if ts.tzinfo is None: return ts.date()
    return ts.tz_convert(str(settings.eod_timezone)).date()


def _fire(settings:Settings, job:str, day:dt.date)->schedule.Fire|None:
    "The fire of `job` for session `day`, or None when `day` is not one of its sessions"
    zone = str(settings.eod_timezone)
    f = schedule.fire_times(settings, job, pd.Timestamp(day).tz_localize(zone) - pd.Timedelta(seconds=1), 1)
    return f[0] if f and f[0].session == day else None


def _report(settings:Settings, job:str, day:dt.date)->str:
    "` Report: <path>` when the job's report of `day` exists, else nothing (a path is never named that is not there)"
    p = settings.home/settings.reports_dir/job/day.isoformat()/f"{job}.html"
    return f" Report: {p}" if p.is_file() else ""


def run(job:str, logical:str, now:pd.Timestamp|None=None)->int:
    "Run `job` for the session of `logical` under the scheduler's rules; the exit code"
    try: settings = Settings()
    except SwbError as e: raise Refused(str(e)) from None
    day = _session(settings, logical)
    try: fire = _fire(settings, job, day)
    except SwbError as e: raise Refused(str(e)) from None
    if fire is None:
        what = "a session of " + str(settings.exchange) if job == "eod" else f"a {settings.retrain_cadence} retrain session of {settings.exchange}"
        print(f"{job} {day}: not {what}: nothing to run", flush=True); return SKIP
    now = now or pd.Timestamp.now(tz="UTC")
    if now < fire.at:
        print(f"{job} {day}: its run is due at {fire.at:%Y-%m-%d %H:%M %Z}, not yet: nothing to run", flush=True); return SKIP
    with schedule.job_lock(settings, job):
        rec = schedule.load_state(settings).get(job)
        if rec and rec["session"] > day.isoformat():   # the job's state moves forward only: an earlier session is never run after a later one
            print(f"{job} {day}: a later session ({rec['session']}) already ran (finished {rec.get('finished', '?')}); an earlier session "
                  f"is not run after a later one: nothing to run", flush=True)
            return SKIP
        if rec and rec["session"] == day.isoformat() and rec.get("ok"):
            print(f"{job} {day}: already done (finished {rec.get('finished', '?')}): nothing to run.{_report(settings, job, day)}", flush=True)
            return 0
        try: runner._session_for(settings, job, day.isoformat(), {})   # `swb run`'s own check of date and parameters, before any work
        except SwbError as e: raise Refused(f"{job} {day}: {e}") from None   # e.g. a date outside the sample market: a retry cannot help
        started = pd.Timestamp.now(tz="UTC")
        print(f"{job} {day}: start `swb run {job} --date {day}` in {settings.home}", flush=True)
        code = int(schedule.run_job_subprocess(job, day.isoformat()))   # the child inherits the held lock
        schedule.record_run(settings, job, day, code, started, pd.Timestamp.now(tz="UTC"))
        if code == 0 and job == "eod":
            schedule._maintain(settings, lambda line: print(line, flush=True), lambda: f"{pd.Timestamp.now(tz='UTC'):%Y-%m-%d %H:%M:%S %Z}")
    print(f"{job} {day}: exit {code}.{_report(settings, job, day)}", flush=True)
    return code


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in ("eod", "retrain"):
        sys.exit("usage: swb_task.py eod|retrain LOGICAL_DATE")
    try: sys.exit(run(sys.argv[1], sys.argv[2]))
    except SwbError as e:
        print(f"swb: error: {e}", file=sys.stderr, flush=True); sys.exit(REFUSED if isinstance(e, Refused) else 1)
