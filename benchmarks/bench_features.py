"""The full feature table against bare TA-Lib calls and the `ta` package, for the same standard indicators on the same arrays.

Prints measured figures; asserts nothing. Usage: python benchmarks/bench_features.py [--symbols 500] [--years 10] [--repeat 7] [--ta-symbols N]
Targets (issue 3): build_features <= 3x the bare TA-Lib calls, and >= 20x faster than `ta`. Two TA-Lib references are printed:
the 12 calls of the standard indicators, and all 21 TA-Lib calls build_features makes (the rolling sums, deviations and extremes
under VWAP, the volume z-score, realized volatility and the 52-week range too).
The standard indicators: SMA and EMA 10/20/50/200, RSI 14, MACD 12/26/9, BBANDS 20/2, ATR 14, on split/dividend-adjusted prices.
Wall-clock times on a shared machine are noisy: each figure is the median of --repeat runs after one untimed warm-up (the first
call in a process also pays for fresh memory pages, reported separately).
"""
import argparse, os, statistics, time, warnings
import numpy as np, pandas as pd, talib

ap = argparse.ArgumentParser()
ap.add_argument("--symbols", type=int, default=500)
ap.add_argument("--years", type=float, default=10)
ap.add_argument("--seed", type=int, default=1)
ap.add_argument("--repeat", type=int, default=7)
ap.add_argument("--ta-symbols", type=int, default=0, help="time `ta` on the first N symbols and extrapolate linearly (0: all)")
a = ap.parse_args()
os.environ["SWB_QUIET"] = "1"

from stock_workbench.synthetic import synthetic_market
from stock_workbench.features import (build_features, FEATURE_COLUMNS, MODEL_FEATURES, MA_DAYS, RSI_PERIOD, MACD_PERIODS, BB_PERIOD,
                                      BB_STDDEV, ATR_PERIOD, VWAP_DAYS, VOLUME_Z_DAYS, RVOL_DAYS, YEAR_SESSIONS)

MA = MA_DAYS


def timed(f, repeat=a.repeat):
    "Median and min wall time of `repeat` calls after one warm-up call; and the warm-up's own time"
    t = time.perf_counter(); f(); first = time.perf_counter() - t
    ts = []
    for _ in range(repeat):
        t = time.perf_counter(); f(); ts.append(time.perf_counter() - t)
    return statistics.median(ts), min(ts), first


def line(label, s, note=""):
    print(f"  {label:<58} {s:8.3f} s  {note}")


print(f"synthetic market: {a.symbols} symbols x {a.years:g} years, seed {a.seed}")
panel = synthetic_market(a.symbols, a.years, a.seed)
rows = len(panel)

# the same adjusted arrays the features use, cut per symbol once (cutting is not part of any timing)
adj = panel.adj_close.to_numpy() / panel.close.to_numpy()
c, h, l = panel.adj_close.to_numpy(), panel.high.to_numpy() * adj, panel.low.to_numpy() * adj
ends = np.flatnonzero(np.r_[panel.symbol.to_numpy()[1:] != panel.symbol.to_numpy()[:-1], True]) + 1
starts = np.r_[0, ends[:-1]]
slices = [(c[s:e], h[s:e], l[s:e]) for s, e in zip(starts, ends)]


def bare(sma=talib.SMA, ema=talib.EMA, rsi=talib.RSI, macd=talib.MACD, bbands=talib.BBANDS, atr=talib.ATR):
    for cs, hs, ls in slices:
        for w in MA: sma(cs, w); ema(cs, w)
        rsi(cs, RSI_PERIOD); macd(cs, *MACD_PERIODS); bbands(cs, BB_PERIOD, BB_STDDEV, BB_STDDEV, 0); atr(hs, ls, cs, ATR_PERIOD)


# every TA-Lib call build_features makes: the 12 above, and the rolling sums, deviations and extremes under VWAP(20), the volume
# z-score, realized volatility (5, 20, 60) and the 52-week high and low; their inputs are prepared outside the timing
v = panel.volume.to_numpy("float64")
tpv = (h + l + c) * v / 3
lc = np.log(c); r1 = np.r_[np.nan, np.diff(lc)]; r1[starts] = np.nan
slices_all = [(c[s:e], h[s:e], l[s:e], v[s:e], tpv[s:e], r1[s:e]) for s, e in zip(starts, ends)]


def bare_all():
    for cs, hs, ls, vs, tp, r in slices_all:
        for w in MA: talib.SMA(cs, w); talib.EMA(cs, w)
        talib.RSI(cs, RSI_PERIOD); talib.MACD(cs, *MACD_PERIODS); talib.BBANDS(cs, BB_PERIOD, BB_STDDEV, BB_STDDEV, 0); talib.ATR(hs, ls, cs, ATR_PERIOD)
        talib.SUM(tp, VWAP_DAYS); talib.SUM(vs, VWAP_DAYS); talib.SMA(vs, VOLUME_Z_DAYS); talib.STDDEV(vs, VOLUME_Z_DAYS)
        talib.MAX(hs, YEAR_SESSIONS); talib.MIN(ls, YEAR_SESSIONS)
        for w in RVOL_DAYS: talib.STDDEV(r, w)


raw = {k: getattr(getattr(talib, k), "__wrapped__", getattr(talib, k)) for k in ("SMA", "EMA", "RSI", "MACD", "BBANDS", "ATR")}


def bare_into_table():
    "The bare calls plus writing their 17 outputs into fresh float64 columns"
    out = np.empty((17, rows))
    for (cs, hs, ls), s, e in zip(slices, starts, ends):
        j = 0
        for w in MA: out[j, s:e] = talib.SMA(cs, w); out[j + 1, s:e] = talib.EMA(cs, w); j += 2
        out[8, s:e] = talib.RSI(cs, RSI_PERIOD)
        out[9:12, s:e] = talib.MACD(cs, *MACD_PERIODS)
        out[12:15, s:e] = talib.BBANDS(cs, BB_PERIOD, BB_STDDEV, BB_STDDEV, 0)
        out[15, s:e] = talib.ATR(hs, ls, cs, ATR_PERIOD)
    return out


print(f"rows: {rows:,}; feature columns: {len(FEATURE_COLUMNS)} ({len(MODEL_FEATURES)} model features)\n")
print("ours:")
ours, ours_min, ours_first = timed(lambda: build_features(panel))
line("build_features, full table", ours, f"(min {ours_min:.3f}; first call in process {ours_first:.3f})")
print("reference, TA-Lib (12 calls per symbol on numpy slices):")
ref, ref_min, _ = timed(bare)
line("bare talib.* calls", ref, f"(min {ref_min:.3f})")
ref_raw, _, _ = timed(lambda: bare(*(raw[k] for k in ("SMA", "EMA", "RSI", "MACD", "BBANDS", "ATR"))))
line("same, Cython functions without talib's pandas wrapper", ref_raw)
ref_all, _, _ = timed(bare_all)
line("every TA-Lib call build_features makes (21 per symbol)", ref_all)
into, _, _ = timed(bare_into_table)
line("bare talib.* calls + writing their 17 columns", into)
fill, _, _ = timed(lambda: np.ones((len(FEATURE_COLUMNS), rows)))
line(f"memory floor: filling {len(FEATURE_COLUMNS)} fresh float64 columns", fill)

print("reference, `ta` 0.11 (RSIIndicator, MACD, BollingerBands, AverageTrueRange, SMAIndicator, EMAIndicator):")
from ta.momentum import RSIIndicator
from ta.trend import MACD, SMAIndicator, EMAIndicator
from ta.volatility import BollingerBands, AverageTrueRange
k = a.ta_symbols if 0 < a.ta_symbols < len(slices) else len(slices)


def with_ta():
    for cs, hs, ls in slices[:k]:
        cl, hi, lo = pd.Series(cs), pd.Series(hs), pd.Series(ls)
        for w in MA: SMAIndicator(cl, w).sma_indicator(); EMAIndicator(cl, w).ema_indicator()
        RSIIndicator(cl, RSI_PERIOD).rsi()
        m = MACD(cl, MACD_PERIODS[1], MACD_PERIODS[0], MACD_PERIODS[2]); m.macd(); m.macd_signal(); m.macd_diff()
        b = BollingerBands(cl, BB_PERIOD, BB_STDDEV); b.bollinger_hband(); b.bollinger_mavg(); b.bollinger_lband()
        AverageTrueRange(hi, lo, cl, ATR_PERIOD).average_true_range()


with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    t = time.perf_counter(); with_ta(); ta_s = (time.perf_counter() - t) * len(slices) / k
line(f"ta on {k} symbols" + (f", x {len(slices)}/{k} extrapolated" if k < len(slices) else ""), ta_s)

print(f"\nbuild_features / bare TA-Lib: {ours / ref:5.2f}x  (target <= 3x: {'MET' if ours <= 3 * ref else 'NOT MET'}); "
      f"against bare TA-Lib + writing its columns: {ours / into:.2f}x; against all 21 TA-Lib calls it makes: {ours / ref_all:.2f}x")
print(f"ta / build_features:          {ta_s / ours:5.1f}x  (target >= 20x: {'MET' if ta_s >= 20 * ours else 'NOT MET'})")
print(f"throughput: {rows / ours:,.0f} rows/s; the table is {len(FEATURE_COLUMNS)} float64 columns = "
      f"{len(FEATURE_COLUMNS) * rows * 8 / 2**20:,.0f} MiB, of which filling fresh memory alone takes {fill / ours:.0%} of the time")
