"""Ingest + validate + store of the synthetic market, against a bare pandas read_csv + parquet write of the same rows.

Prints measured figures; asserts nothing. Usage: python benchmarks/bench_ingest.py [--symbols 500] [--years 10]
Target (issue 2): >= 250k rows/s end to end and < 2 GB peak memory on the 2-core machine.
"""
import argparse, os, resource, subprocess, sys, tempfile, time
from pathlib import Path

ap = argparse.ArgumentParser()
ap.add_argument("--symbols", type=int, default=500)
ap.add_argument("--years", type=float, default=10)
ap.add_argument("--seed", type=int, default=1)
a = ap.parse_args()
os.environ["SWB_QUIET"] = "1"


def peak_mb(who=resource.RUSAGE_SELF): return resource.getrusage(who).ru_maxrss / 1024


def timed(label, f, *args, **kw):
    t = time.perf_counter(); out = f(*args, **kw); dt = time.perf_counter() - t
    print(f"  {label:<34} {dt:7.2f} s"); return out, dt


work = Path(tempfile.mkdtemp(prefix="swb-bench-"))
print(f"synthetic market: {a.symbols} symbols x {a.years:g} years, seed {a.seed}; scratch {work}")

# 1. End to end through the CLI, as a user runs it (a fresh process: imports included).
swb = Path(sys.executable).parent / "swb"
home = work / "cli"; home.mkdir()
t = time.perf_counter()
r = subprocess.run([str(swb), "ingest", "--source", "synthetic", "--symbols", str(a.symbols), "--years", str(a.years),
                    "--seed", str(a.seed), "--json"], env={**os.environ, "SWB_HOME": str(home)}, capture_output=True, text=True)
cli_s = time.perf_counter() - t
if r.returncode: sys.exit(f"swb ingest failed: {r.stderr.strip()}")
cli_peak = peak_mb(resource.RUSAGE_CHILDREN)

# 2. The same work in-process, stage by stage (imports timed on their own).
print("in-process stages:")
t = time.perf_counter()
from stock_workbench.config import Settings
from stock_workbench.synthetic import synthetic_market
from stock_workbench.store import OhlcvStore
from stock_workbench.validate import require_valid, gx_batch_definition
gx_batch_definition()
imports_s = time.perf_counter() - t
print(f"  {'imports (incl. Great Expectations)':<34} {imports_s:7.2f} s")
settings = Settings(work / "inproc")
df, gen_s = timed("generate", synthetic_market, a.symbols, a.years, a.seed)
_, val_s = timed("validate (40 expectations)", require_valid, df, settings)
store = OhlcvStore(work / "inproc" / "data")
w, store_s = timed("store (Delta, partitioned by symbol)", store.write, df, "bench")
work_s = gen_s + val_s + store_s
ours_peak = peak_mb()
rows = len(df)

# 3. Reference: bare pandas read_csv + parquet write of the same rows, in the same run.
csv = work / "panel.csv"; df.to_csv(csv, index=False)
import pandas as pd
print("reference:")
ref, read_s = timed("pandas.read_csv", pd.read_csv, csv)
_, pq_s = timed("DataFrame.to_parquet", ref.to_parquet, work / "panel.parquet")
ref_s = read_s + pq_s

print(f"\nrows: {rows:,}")
print(f"end to end, swb ingest in a fresh process: {cli_s:6.2f} s  {rows / cli_s:>10,.0f} rows/s  peak {cli_peak:,.0f} MB")
print(f"in-process generate+validate+store:        {work_s:6.2f} s  {rows / work_s:>10,.0f} rows/s  peak {ours_peak:,.0f} MB (process so far)")
print(f"reference read_csv + to_parquet:           {ref_s:6.2f} s  {rows / ref_s:>10,.0f} rows/s")
print(f"ratio ours / reference: in-process {work_s / ref_s:.2f}x, end to end {cli_s / ref_s:.2f}x")
print(f"target: >= 250,000 rows/s and < 2,048 MB -> end to end {'MET' if rows / cli_s >= 250_000 and cli_peak < 2048 else 'NOT MET'}, "
      f"in-process {'MET' if rows / work_s >= 250_000 and ours_peak < 2048 else 'NOT MET'}")
