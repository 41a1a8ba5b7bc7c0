"""`swb store maintain` on a simulated year of daily runs: 252 daily appends of one new session for 50 symbols to the price
store and one day of forecasts to the prediction ledger, then maintain. Files and bytes before and after, seconds.
The appends are Delta appends of the day's rows (the same files an EOD upsert of new rows leaves: one small file per symbol
partition and day), without the EOD's validation and diff, so the year is simulated in about a minute.

Prints measured figures; asserts nothing. The reference is a full read of the store before and after (same run).
Usage: python benchmarks/bench_maintain.py [--symbols 50] [--days 252]
"""
import argparse, os, shutil, tempfile, time
from pathlib import Path

ap = argparse.ArgumentParser()
ap.add_argument("--symbols", type=int, default=50)
ap.add_argument("--days", type=int, default=252)
a = ap.parse_args()
os.environ["SWB_QUIET"] = "1"

import numpy as np, pandas as pd
from stock_workbench.config import Settings
from deltalake import CommitProperties, write_deltalake
import pyarrow as pa
from stock_workbench.ledger import LEDGER_SCHEMA, PredictionLedger, forecasts_long
from stock_workbench.store import OhlcvStore, landed, to_arrow
from stock_workbench.storecare import check_table, home_tables, maintain_home
from stock_workbench.synthetic import synthetic_market

work = Path(tempfile.mkdtemp(prefix="swb-bench-maint-"))
settings = Settings(work / "home", env={})
store, ledger = OhlcvStore.from_settings(settings), PredictionLedger.from_settings(settings)
df = synthetic_market(a.symbols, (60 + a.days) / 252, seed=4)
days = sorted(df["date"].unique())
store.write(df[df["date"] < days[60]], source="history")
t = time.perf_counter()
for d in days[60:60 + a.days]:   # one EOD: the new session, and forecasts for it
    day = df[df["date"] == d]
    write_deltalake(str(store.path), to_arrow(day), mode="append", partition_by=["symbol"],
                    commit_properties=CommitProperties(custom_metadata={"swb.source": "eod"}))
    c = day["close"].to_numpy()
    wide = pd.DataFrame({"symbol": day["symbol"].to_numpy(), "date": day["date"].to_numpy(),
                         **{f"{q}_{h}d": c * m for h in (1, 5) for q, m in (("p10", .97), ("p50", 1.), ("p90", 1.03))}})
    rows = forecasts_long(wide, "1", "bench", close=day["close"].reset_index(drop=True), model_id="bench-run")
    if ledger.version is None: ledger.record(rows, note="eod")
    else: write_deltalake(str(ledger.path), pa.Table.from_pandas(rows, schema=LEDGER_SCHEMA, preserve_index=False), mode="append")
sim_s = time.perf_counter() - t
landed("store", store.path, store.version); landed("ledger", ledger.path, ledger.version)
print(f"simulated {a.days} daily runs of {a.symbols} symbols in {sim_s:.1f} s; store version {store.version}, ledger version {ledger.version}")

def read_all():
    t = time.perf_counter(); n = len(store.read()) + len(ledger.read()); return time.perf_counter() - t, n

read0, rows0 = read_all()
for label, hours in (("maintain (retention 168 h: everything is recent, so compaction only)", None),
                     ("maintain --retention-hours 0 (a week later: nothing older kept)", 0)):
    t = time.perf_counter(); r = maintain_home(settings, retention_hours=hours); dt = time.perf_counter() - t
    print(f"{label}: {dt:.1f} s")
    for m in r.values():
        if m.get("version") is None: continue
        print(f"  {m['table']:8} files {m['files_before']:>6,} -> {m['files_after']:>6,}  bytes {m['bytes_before'] / 1e6:8.2f} MB -> "
              f"{m['bytes_after'] / 1e6:8.2f} MB  compacted {m['compacted']:,}  vacuumed {m['vacuumed']:,}  {m['seconds']:.1f} s")
read1, rows1 = read_all()
print(f"reference: full read of both tables {read0:.2f} s before, {read1:.2f} s after ({read0 / max(read1, 1e-9):.1f}x faster), "
      f"rows {rows0:,} -> {rows1:,}")
print("check after:", "healthy" if not any(check_table(n, s)[1] for n, s in home_tables(settings).items()) else "PROBLEMS")
shutil.rmtree(work, ignore_errors=True)
