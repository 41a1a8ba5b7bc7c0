"""The vectorbt signal backtest (`backtest_signal`) on a large panel, cold and warm, against a bare numpy computation of the same strategy.

Prints measured figures and ratios; asserts nothing. Usage: python benchmarks/bench_backtest.py [--symbols 500] [--years 10] [--repeat 3]
Each vectorbt figure comes from a fresh subprocess, so imports and numba's compile or cache load are counted as a job would pay them:
  cold: an empty NUMBA_CACHE_DIR (a temporary folder), as on a new machine;
  warm: the same folder again, filled by the cold run, as for every later job on that machine.
Inside each subprocess the first call pays the numba compile or cache load; the later calls (median of --repeat) are in-process repeats.
The reference is numpy only: the long/flat sleeves' value (position x next return, fee and slippage factors on position changes),
the portfolio sum and the same four stats, for the strategy only; its agreement with vectorbt's result is printed too.
"""
import argparse, json, os, statistics, subprocess, sys, tempfile, textwrap, time
from pathlib import Path
import numpy as np, pandas as pd

ap = argparse.ArgumentParser()
ap.add_argument("--symbols", type=int, default=500)
ap.add_argument("--years", type=float, default=10)
ap.add_argument("--seed", type=int, default=1)
ap.add_argument("--repeat", type=int, default=3)
a = ap.parse_args()
os.environ["SWB_QUIET"] = "1"
FEES_BPS = SLIP_BPS = 5.0
ROOT = Path(__file__).resolve().parents[1]

from stock_workbench.synthetic import synthetic_market

CHILD = textwrap.dedent("""
    import json, statistics, sys, time
    t = time.perf_counter()
    import stock_workbench.backtest as bt
    out = dict(import_module=time.perf_counter() - t)
    import pandas as pd
    close, p50 = pd.read_pickle(sys.argv[1])
    t = time.perf_counter(); vbt = bt.load_vectorbt(); out["import_vectorbt"] = time.perf_counter() - t
    t = time.perf_counter(); r = bt.backtest_signal(close, p50, "long_flat", FEES, SLIP); out["first_call"] = time.perf_counter() - t
    ts = []
    for _ in range(REPEAT):
        t = time.perf_counter(); bt.backtest_signal(close, p50, "long_flat", FEES, SLIP); ts.append(time.perf_counter() - t)
    out["later_calls"] = statistics.median(ts)
    _, size = bt._orders(bt.signal_positions(p50, "long_flat", r.hurdle).to_numpy())
    size = pd.DataFrame(size, index=close.index, columns=close.columns)
    t = time.perf_counter()
    vbt.Portfolio.from_orders(close, size=size, size_type="targetpercent", direction="both", fees=FEES / 1e4, slippage=SLIP / 1e4,
                              init_cash=1.0, cash_sharing=False, group_by=True, freq="1D")
    out["from_orders_only"] = time.perf_counter() - t
    out["stats"] = r.stats.loc["strategy"].to_dict()
    out["equity"] = r.equity["strategy"].tolist()
    print(json.dumps(out))
""")


def child(data:Path, cache:str)->dict:
    "Run the timed backtest in a fresh interpreter with NUMBA_CACHE_DIR=cache"
    code = CHILD.replace("FEES", repr(FEES_BPS)).replace("SLIP", repr(SLIP_BPS)).replace("REPEAT", str(a.repeat))
    env = dict(os.environ, NUMBA_CACHE_DIR=cache)
    t = time.perf_counter()
    p = subprocess.run([sys.executable, "-c", code, str(data)], env=env, cwd=ROOT, capture_output=True, text=True)
    if p.returncode: sys.exit(f"subprocess failed:\n{p.stderr[-3000:]}")
    out = json.loads(p.stdout.strip().splitlines()[-1])
    out["process"] = time.perf_counter() - t
    return out


def numpy_long_flat(c:np.ndarray, p50:np.ndarray, fees_bps:float, slip_bps:float):
    "The long/flat strategy's portfolio value and stats, numpy only (same rule, sleeves and cost model as backtest_signal)"
    f, s = fees_bps / 1e4, slip_bps / 1e4
    pos = (p50 > 2 * (f + s)).astype("float64")
    pos[-1] = pos[-2]                                   # the last forecast is not traded
    prev = np.vstack([np.zeros((1, c.shape[1])), pos[:-1]])
    growth = np.ones_like(c)
    growth[1:] = 1 + prev[1:] * (c[1:] / c[:-1] - 1)    # position held over (t-1, t]
    buy, sell = pos > prev, pos < prev
    cost = np.where(buy, 1 / ((1 + s) * (1 + f)), np.where(sell, (1 - s) * (1 - f), 1.0))
    sleeve = np.cumprod(growth * cost, axis=0)
    before = np.vstack([np.ones((1, c.shape[1])), sleeve[:-1]]) * growth   # sleeve value at the close, before its order
    traded = (before[buy] / (1 + f)).sum() + (before[sell] * (1 - s)).sum()
    value = sleeve.sum(axis=1)
    n = c.shape[1]
    rets = value / np.r_[n, value[:-1]] - 1
    stats = dict(total_return=value[-1] / n - 1, sharpe=rets.mean() / rets.std(ddof=1) * np.sqrt(252),
                 max_drawdown=float((1 - value / np.maximum.accumulate(value)).max()),
                 turnover=traded / value.mean() * 252 / len(c), trades=int(buy.sum() + sell.sum()))
    return value / n, stats


def line(label, s, note=""):
    print(f"  {label:<62} {s:8.3f} s  {note}")


print(f"synthetic market: {a.symbols} symbols x {a.years:g} years, seed {a.seed}; long_flat, fees {FEES_BPS:g} + slippage {SLIP_BPS:g} bps")
panel = synthetic_market(a.symbols, a.years, a.seed)
close = panel.pivot(index="date", columns="symbol", values="adj_close")
rng = np.random.default_rng(a.seed)
p50 = pd.DataFrame(rng.normal(0, 0.01, close.shape), index=close.index, columns=close.columns)
print(f"panel: {close.shape[0]:,} sessions x {close.shape[1]} symbols = {close.size:,} cells\n")

with tempfile.TemporaryDirectory() as tmp:
    data = Path(tmp) / "data.pkl"
    pd.to_pickle((close, p50), data)
    cache = str(Path(tmp) / "numba")
    cold = child(data, cache)
    warm = child(data, cache)

ts = []
for _ in range(a.repeat + 1):
    t = time.perf_counter(); eq_np, st_np = numpy_long_flat(close.to_numpy(), p50.to_numpy(), FEES_BPS, SLIP_BPS); ts.append(time.perf_counter() - t)
ref = statistics.median(ts[1:])

print("import stock_workbench.backtest (fresh process, vectorbt not imported):")
line("cold run's process", cold["import_module"])
line("warm run's process", warm["import_module"])
for name, r in (("cold NUMBA_CACHE_DIR (empty temp dir)", cold), ("warm NUMBA_CACHE_DIR (filled by the cold run)", warm)):
    print(f"backtest_signal, fresh process, {name}:")
    line("import vectorbt (first use)", r["import_vectorbt"])
    line("first call (numba compile or cache load + run)", r["first_call"])
    line(f"later calls in the same process (median of {a.repeat})", r["later_calls"])
    line("  of which vbt.Portfolio.from_orders for the strategy alone", r["from_orders_only"])
    line("whole subprocess, interpreter start to exit", r["process"])
print("reference, numpy only (same strategy's value, stats; no buy-and-hold):")
line(f"numpy long/flat sleeves + stats (median of {a.repeat})", ref)

ev = np.array(warm["equity"])
print(f"\nagreement: max |equity vectorbt - numpy| = {np.abs(ev - eq_np).max():.2e}; stats vectorbt vs numpy:")
for k in st_np:
    print(f"  {k:<14} {warm['stats'][k]:>14.6f} {st_np[k]:>14.6f}")
first_job_cold = cold["import_vectorbt"] + cold["first_call"]
first_job_warm = warm["import_vectorbt"] + warm["first_call"]
print(f"\nfirst backtest of a cold process (import vectorbt + first call): cold cache {first_job_cold:.2f} s, warm cache {first_job_warm:.2f} s "
      f"({first_job_cold / first_job_warm:.1f}x)")
print(f"backtest_signal, warm process / numpy reference: {warm['later_calls'] / ref:.1f}x  ({warm['later_calls']:.3f} s vs {ref:.3f} s; "
      f"the vectorbt call also runs buy-and-hold and both portfolios' stats)")
print(f"first call with warm cache / numpy reference:    {first_job_warm / ref:.1f}x")
print(f"first call with cold cache / numpy reference:    {first_job_cold / ref:.0f}x")
