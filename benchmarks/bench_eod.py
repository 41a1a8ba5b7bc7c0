"""`swb run eod` end to end at 50 and 500 symbols (10 years of history each): wall time per stage and peak memory.

Prints measured figures; asserts nothing. Usage: python benchmarks/bench_eod.py [--symbols 50,500] [--years 10]
For each size, in a fresh workbench home:
  setup: `swb run eod --date D-1` on an empty home: generates and stores the whole sample market and, with no champion yet,
         runs the retrain step (walk-forward challenger evaluation + fit + register) first. Printed, not the target.
  warm:  `swb run eod --date D`: the daily case, one new session on a store and registry that exist (the target: < 60 s at 500).
  rerun: `swb run eod --date D` again: nothing new to store, the same forecasts (idempotent).
Stages come from the executed notebook: papermill's per-cell durations (kernel start = execute time minus the cells),
the job's own step timings (load, validate, store, read, features, predict, score, backtest, alerts), and the HTML render.
Fixed overhead = process start + kernel start + imports + job setup + HTML render: what a run costs whatever the data.
Peak memory: the largest summed RSS of the swb process and its children (the kernel), sampled every 50 ms.
"""
import argparse, json, os, re, subprocess, sys, tempfile, threading, time
from pathlib import Path
import psutil

ap = argparse.ArgumentParser()
ap.add_argument("--symbols", default="50,500")
ap.add_argument("--years", type=float, default=10)
a = ap.parse_args()
SWB = str(Path(sys.executable).parent / "swb")


def run(home: Path, n: int, *args) -> dict:
    env = {**os.environ, "SWB_HOME": str(home), "SWB_QUIET": "1", "SWB_SYNTHETIC_SYMBOLS": str(n),
           "SWB_SYNTHETIC_YEARS": str(a.years)}
    t0 = time.perf_counter()
    p = subprocess.Popen([SWB, "run", "eod", "--json", *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peak = [0]
    def sample():
        pr = psutil.Process(p.pid)
        while p.poll() is None:
            try: peak[0] = max(peak[0], sum(q.memory_info().rss for q in [pr, *pr.children(recursive=True)]))
            except psutil.Error: pass
            time.sleep(0.05)
    th = threading.Thread(target=sample); th.start()
    out, err = p.communicate(); th.join()
    wall = time.perf_counter() - t0
    if p.returncode != 0: sys.exit(f"swb run eod {' '.join(args)} failed: {err.strip()}")
    res = json.loads(out)
    nb = json.loads(Path(res["notebook"]).read_text())
    cells, steps = {}, {}
    for c in nb["cells"]:
        if c["cell_type"] != "code": continue
        tag = (c["metadata"].get("tags") or ["?"])[0]
        cells[tag] = cells.get(tag, 0) + (c["metadata"].get("papermill", {}).get("duration") or 0)
        for o in c.get("outputs", []):
            txt = "".join(o.get("data", {}).get("text/markdown", ""))
            m = re.search(r"Step timings \(seconds\): (.*)", txt)
            if m: steps = {k: float(v) for k, v in (x.rsplit(" ", 1) for x in m.group(1).split(", "))}
    execute = res["seconds"]["execute"]
    kernel = execute - sum(cells.values())
    work = sum(v for k, v in cells.items() if k not in ("parameters", "injected-parameters", "imports", "setup"))
    return dict(wall=wall, execute=execute, html=res["seconds"]["html"], kernel=kernel, cells=cells, steps=steps,
                fixed=wall - work, peak_gb=peak[0] / 2**30, session=res["session"])


def show(label: str, r: dict):
    s, c = r["steps"], r["cells"]
    print(f"  {label:<6} wall {r['wall']:6.1f} s  peak {r['peak_gb']:.2f} GB  (session {r['session']})")
    print(f"         fixed overhead {r['fixed']:5.1f} s = process + kernel start {r['wall'] - r['execute'] - r['html'] + r['kernel']:4.1f}"
          f" + imports {c.get('imports', 0):4.1f} + setup {c.get('setup', 0):4.1f} + HTML {r['html']:4.1f}")
    order = ["load", "validate", "store", "retrain", "load_model", "read", "features", "predict", "score", "backtest", "alerts"]
    print("         steps: " + ", ".join(f"{k} {s[k]:.2f}" for k in order if k in s))
    print(f"         report cells: fan {c.get('fan', 0):.2f}, calibration {c.get('calibration', 0):.2f}, lineage {c.get('lineage', 0):.2f}")


for n in [int(x) for x in a.symbols.split(",")]:
    from stock_workbench.synthetic import market_sessions
    sess = market_sessions("2015-01-02", int(round(a.years * 252)))
    d1, d2 = str(sess[-2].date()), str(sess[-1].date())
    home = Path(tempfile.mkdtemp(prefix=f"bench_eod_{n}_"))
    print(f"\n{n} symbols x {a.years:g} years ({n * len(sess):,} rows), home {home}")
    show("setup", run(home, n, "--date", d1))
    show("warm", run(home, n, "--date", d2))
    show("rerun", run(home, n, "--date", d2))
print("\ntargets at 500 symbols: warm < 60 s; fixed overhead < 20 s")
