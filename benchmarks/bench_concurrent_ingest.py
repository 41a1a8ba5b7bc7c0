"""Four `swb ingest --source csv` started together into one home (125 symbols each) against one ingest of all 500 symbols.

Prints measured figures (seconds, rows, commit races retried); asserts nothing.
Usage: python benchmarks/bench_concurrent_ingest.py [--symbols 500] [--writers 4] [--years 1]
"""
import argparse, os, shutil, subprocess, sys, tempfile, time
from pathlib import Path

ap = argparse.ArgumentParser()
ap.add_argument("--symbols", type=int, default=500)
ap.add_argument("--writers", type=int, default=4)
ap.add_argument("--years", type=float, default=1)
a = ap.parse_args()

from stock_workbench.config import Settings
from stock_workbench.store import OhlcvStore
from stock_workbench.synthetic import synthetic_market

work = Path(tempfile.mkdtemp(prefix="swb-bench-conc-"))
swb = Path(sys.executable).parent / "swb"
df = synthetic_market(a.symbols, a.years, seed=3)
syms = sorted(df["symbol"].unique())
names = dict(zip(["date", "open", "high", "low", "close", "adj_close", "volume"], ["Date", "Open", "High", "Low", "Close", "Adj Close", "Volume"]))
t = time.perf_counter()
for i, s in enumerate(syms):   # one folder per writer, and one folder with everything for the reference
    g = df[df["symbol"] == s].drop(columns="symbol").rename(columns=names)
    g["Date"] = g["Date"].dt.strftime("%Y-%m-%d")
    for d in (work / f"w{i % a.writers}", work / "all"):
        d.mkdir(exist_ok=True); g.to_csv(d / f"{s}.csv", index=False)
print(f"{a.symbols} symbols x {a.years:g} years ({len(df):,} rows) as CSV in {time.perf_counter() - t:.1f} s; scratch {work}")

def run(folders, home):
    home.mkdir()
    env = {**os.environ, "SWB_HOME": str(home)}
    env.pop("SWB_QUIET", None)   # the retry lines go to stderr: counted below
    t = time.perf_counter()
    ps = [subprocess.Popen([str(swb), "ingest", "--source", "csv", "--path", str(f)], env=env, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, text=True) for f in folders]
    outs = [p.communicate() for p in ps]
    dt = time.perf_counter() - t
    failed = [e.strip().splitlines()[-1] for p, (_, e) in zip(ps, outs) if p.returncode]
    retries = sum(e.count("retrying (") + e.count("checking again (") for _, e in outs)
    st = OhlcvStore(home / "data")
    got = st.read()
    dup = int(got.duplicated(["symbol", "date"]).sum())
    return dt, len(got), retries, failed, dup, st.version

ref = run([work / "all"], work / "home-one")
conc = run([work / f"w{i}" for i in range(a.writers)], work / "home-conc")
for label, (dt, rows, retries, failed, dup, v) in [(f"one ingest of {a.symbols}", ref),
                                                   (f"{a.writers} concurrent ingests of {a.symbols // a.writers}", conc)]:
    print(f"  {label:<34} {dt:7.1f} s  {rows:,} rows ({len(df):,} expected, {dup} duplicated)  store version {v}  "
          f"retries {retries}  failed {len(failed)}" + (f": {failed[0]}" if failed else ""))
print(f"ratio concurrent / one: {conc[0] / ref[0]:.2f}x wall time")
shutil.rmtree(work, ignore_errors=True)
