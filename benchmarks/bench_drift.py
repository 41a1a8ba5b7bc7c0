"""Drift detection: false alarms over a calm synthetic year, and sessions from an injected volatility shift to the alert.

Prints measured figures; asserts nothing. Usage: python benchmarks/bench_drift.py [--symbols 20] [--model gbm] [--seed 42] [--stream-only]
A champion is fitted on the `train_days` sessions before the watched period (`lifecycle.fit_latest`), with its drift
reference (`lifecycle.training_reference`) and the rule-based baseline (`ewma`). For each watched session, one drift window
exactly as the EOD job computes it: `drift.feature_drift` over the last `drift_window_days` sessions' feature rows,
`drift.performance_drift` over the champion's and the baseline's realized 1-session forecasts of the last `drift_perf_days`
sessions, `drift.window_status`, and the ladder (`drift.FallbackLadder`, trip `fallback_trip_windows` / recover
`fallback_recover_windows`). Scenarios:
  calm:        a 252-session year of the sample market with no crash within 60 sessions before or during it: alert windows,
               warn windows, ladder trips.
  shift:       the same year with every symbol's log returns (and intraday ranges) doubled from its 127th session on; the same
               champion and reference: alerts in the 126 calm sessions before, sessions from the shift to the first alert window
               and to ladder level >= 1 and 2.
  shift (A):   helper A's placement: a 5-year market doubled 130 sessions before its end, 60 sessions watched before the shift;
               those start 2.5 months after a crash of the training period (a rebound: the features already drift).
Rules compared (a window alerts when ...):
  shipped      `drift.window_status`: a judged feature (`drift.judge_feature`: per-symbol, lookback <= window / 4) reaches PSI
               `drift_psi_alert`, or performance alerts (sessions as the unit: Student-t coverage band, Diebold-Mariano at 1 %).
  A (old)      any feature reaches PSI `drift_psi_alert`, or performance alerts with rows as the unit (the 99 % binomial band of
               `drift.coverage_band(n rows)`) or the Diebold-Mariano p-value is below `verdict_alpha`.
  lookback<=W  a per-symbol feature whose lookback is at most the window reaches PSI `drift_psi_alert`, or performance alerts
               (session unit). lookback<=W/3: the same with lookback at most a third of the window (adds the 5-session
               features ret_5d, rvol_5, har_rv_5d to the shipped ones: faster on a volatility shift, many more calm alarms).
  performance  performance alone (session unit).
The stream (printed last, or alone with --stream-only): the cost of one drift computation of the streaming job
(`drift.stream_drift_record` over `drift.DriftRowBuffer.frame()`, 500 symbols x a 390-minute session of rows) and of adding one
predict call's rows to the buffer, against the predict call they ride with in the prediction thread (`features.build_features`
over 500 symbols x `stream_history_days` sessions plus today's running bar, and the champion's predict; the Redis write left out),
measured in the same run.
"""
import argparse, time
import numpy as np, pandas as pd

from stock_workbench.config import Settings
from stock_workbench.drift import FallbackLadder, coverage_band, feature_drift, performance_drift, window_status
from stock_workbench.features import FEATURE_MIN_ROWS, MARKET_FEATURES, MODEL_FEATURES, CALENDAR_FEATURES, add_targets, build_features, model_features
from stock_workbench.lifecycle import fit_latest, training_reference
from stock_workbench.models import make_model
from stock_workbench.synthetic import synthetic_market

ap = argparse.ArgumentParser()
ap.add_argument("--symbols", type=int, default=20)
ap.add_argument("--model", default="gbm")
ap.add_argument("--seed", type=int, default=42)
ap.add_argument("--stream-only", action="store_true", help="only the stream's drift cost against its predict call")
a = ap.parse_args()
S = Settings(env={"SWB_QUIET": "1"})
TRAIN, W = int(S.train_days), int(S.drift_window_days)
LEVELS = ["ok", "warn", "alert"]


def doubled_after(panel: pd.DataFrame, first: pd.Timestamp, k: float = 2.0) -> pd.DataFrame:
    "The panel with every log return from `first` on multiplied by `k`, intraday ranges and gaps scaled alike"
    out = []
    for _, g in panel.groupby("symbol", sort=False):
        g = g.sort_values("date").copy()
        after = (g["date"] >= first).to_numpy()
        lc = np.log(g["close"].to_numpy())
        r = np.diff(lc, prepend=lc[0])
        r[after] *= k
        new = lc[0] + np.cumsum(r)
        for c in ("open", "high", "low"):
            rel = np.log(g[c].to_numpy()) - lc
            rel[after] *= k
            g[c] = np.exp(new + rel)
        g["adj_close"] = g["adj_close"].to_numpy() / g["close"].to_numpy() * np.exp(new)
        g["close"] = np.exp(new)
        g["high"], g["low"] = g[["open", "high", "close"]].max(axis=1), g[["open", "low", "close"]].min(axis=1)
        out.append(g)
    return pd.concat(out, ignore_index=True)


def fit_champion(data: pd.DataFrame, start_watch: pd.Timestamp):
    "The champion fitted on the `TRAIN` sessions before `start_watch`, its drift reference and the ewma baseline; fit seconds"
    days = np.sort(data["date"].unique())
    i0 = int(np.searchsorted(days, np.datetime64(start_watch)))
    train = data[data["date"] < days[i0]]
    t0 = time.perf_counter()
    models, spans = fit_latest(train, a.model, (1,), TRAIN)
    ref = training_reference(train, model_features(train.columns), spans)
    base = make_model("ewma", 1, S).fit(train, days[i0 - 1 - TRAIN], days[i0 - 2])
    return models[1], base, ref, time.perf_counter() - t0


def ledger(data: pd.DataFrame, model, base, start_watch: pd.Timestamp) -> pd.DataFrame:
    "The champion's and the ewma baseline's realized 1-session forecasts of the rows from 70 sessions before `start_watch`"
    days = np.sort(data["date"].unique())
    i0 = int(np.searchsorted(days, np.datetime64(start_watch)))
    rows = data[data["date"] >= days[max(0, i0 - 300)]]   # the ewma recursion's context before the watched period
    pm, pb = model.predict(rows), base.predict(rows)
    y = rows["target_1d"].to_numpy()
    mk = lambda p, v, mid: pd.DataFrame({"symbol": rows["symbol"].to_numpy(), "date": rows["date"].to_numpy(), "horizon": 1,
                                         "model_version": v, "model_id": mid, "y": y, "p10": p["p10"].to_numpy(),
                                         "p50": p["p50"].to_numpy(), "p90": p["p90"].to_numpy()})
    led = pd.concat([mk(pm, "1", "run1"), mk(pb, "baseline", "baseline:ewma")], ignore_index=True)
    return led[led["date"] >= days[i0 - 70]]


def old_perf(pf: dict) -> str:
    "Helper A's performance status from the same figures: rows as independent (binomial band), DM at `verdict_alpha`"
    if not pf["n"]: return "ok"
    lo, hi = coverage_band(pf["n"])
    worse = pf["pinball_ratio"] is not None and pf["pinball_ratio"] > 1
    sig = worse and pf["dm_pvalue"] is not None and pf["dm_pvalue"] < S.verdict_alpha
    return "alert" if sig or not lo <= pf["coverage80"] <= hi else "warn" if worse else "ok"


def watch(data: pd.DataFrame, ref: dict, led: pd.DataFrame, sessions) -> pd.DataFrame:
    "One drift window per session, as the EOD job computes it: each feature's PSI, the shipped status, the performance statuses"
    days = np.sort(data["date"].unique())
    out = []
    for d in sessions:
        i = int(np.searchsorted(days, np.datetime64(d)))
        fd = feature_drift(ref, data[(data["date"] > days[i - W]) & (data["date"] <= days[i])], S)
        pf = performance_drift(led[led["date"] <= days[i - 1]], "1", S, horizon=1)   # a forecast made at d-1 is realized at d's close
        out.append(dict(date=pd.Timestamp(d), shipped=window_status(fd, pf), perf=pf["status"], perf_old=old_perf(pf),
                        ratio=pf["pinball_ratio"], cov=pf["coverage80"], lo=pf["coverage_band"][0], hi=pf["coverage_band"][1],
                        judged_alert=", ".join(fd.loc[fd["judged"] & (fd["status"] == "alert"), "feature"]),
                        **{f"psi:{f}": v for f, v in zip(fd["feature"], fd["psi"])}))
    return pd.DataFrame(out)


def median_ms(fn, repeat: int) -> float:
    "Median wall time of `fn()` over `repeat` calls, ms"
    ts = []
    for _ in range(repeat):
        t = time.perf_counter(); fn(); ts.append((time.perf_counter() - t) * 1000)
    return float(np.median(ts))


def stream_cost(n_symbols: int = 500, minutes: int = 390, repeat: int = 5):
    "The streaming job's drift computation per call against the predict call it rides with (same machine, same run)"
    from stock_workbench.drift import DriftRowBuffer, stream_drift_record
    from stock_workbench.intraday import STREAM_DRIFT_S
    m = synthetic_market(n_symbols, (TRAIN + 300) / 252 + 1, seed=a.seed)   # the champion's training window and the history tails
    days = np.sort(m["date"].unique()); today = days[-1]
    syms = sorted(m["symbol"].unique())[:20]
    train = add_targets(build_features(m[m["symbol"].isin(syms) & (m["date"] < today)]), (1,))
    models, spans = fit_latest(train, a.model, (1,), TRAIN)
    model, ref = models[1], training_reference(train, model_features(train.columns), spans)
    panel = m[m["date"] >= days[-1 - int(S.stream_history_days)]].reset_index(drop=True)   # the history tails and today's running bar
    def predict():
        f = build_features(panel)
        return f, model.predict(f[f["date"] == today])
    pred_ms = median_ms(predict, 3)
    f, _ = predict()
    ft = f[f["date"] == today].reset_index(drop=True)
    buf = DriftRowBuffer(list(ref))
    t0 = pd.Timestamp(today).value // 10**6 + 14 * 3_600_000 + 30 * 60_000   # 14:30 UTC, the session's first minute
    rng = np.random.default_rng(a.seed)
    add_ts = []
    for k in range(minutes):   # each minute's rows a little different, as the running bar moves
        rows = ft.copy(); rows[list(ref)] = rows[list(ref)] * (1 + 0.01 * rng.standard_normal((len(rows), len(ref))))
        t = time.perf_counter(); buf.add(rows, t0 + k * 60_000); add_ts.append((time.perf_counter() - t) * 1000)
    frame_ms = median_ms(buf.frame, repeat)
    fr = buf.frame()
    rec_ms = median_ms(lambda: stream_drift_record(ref, fr, S, "1"), repeat)
    drift_ms = frame_ms + rec_ms
    add_ms = float(np.median(add_ts))
    share = (drift_ms / STREAM_DRIFT_S) / (pred_ms / max(float(S.stream_predict_s), pred_ms / 1000))
    print(f"stream drift: {n_symbols} symbols x {minutes} minutes = {len(fr):,} rows, {len(ref)} reference features, "
          f"buffer {buf.values.nbytes / 1e6:.1f} MB of float32: one computation {drift_ms:.0f} ms (latest row per symbol and minute "
          f"{frame_ms:.0f} ms, PSI/K-S and the record {rec_ms:.0f} ms); adding one predict call's {len(ft)} rows {add_ms:.2f} ms")
    print(f"  the predict call it rides with (build_features over {n_symbols} symbols x {int(S.stream_history_days)} sessions + "
          f"{a.model} predict of {len(ft)} rows; Redis write left out): {pred_ms:.0f} ms; one drift computation = {drift_ms / pred_ms:.2f} x "
          f"a predict call, the buffer's add {add_ms / pred_ms:.2%} of it; at one drift computation per {STREAM_DRIFT_S:.0f} s against a "
          f"predict call per {S.stream_predict_s:g} s: {share:.1%} added to the prediction thread's time")


def per_symbol(max_rows: int) -> list: return [f for f, n in FEATURE_MIN_ROWS.items() if n <= max_rows and f in MODEL_FEATURES and f not in MARKET_FEATURES and f not in CALENDAR_FEATURES]
PER_SYMBOL_W, PER_SYMBOL_W3 = per_symbol(W), per_symbol(W // 3)


def rule_status(t: pd.DataFrame, rule: str) -> list:
    "Each window's status under one rule"
    if rule == "shipped": return list(t["shipped"])
    if rule == "performance": return list(t["perf"])
    feats, perf = (None, t["perf_old"]) if rule == "A (old)" else (PER_SYMBOL_W if rule == "lookback<=W" else PER_SYMBOL_W3, t["perf"])
    cols = [c for c in t.columns if c.startswith("psi:") and (feats is None or c[4:] in feats)]
    psi = t[cols].max(axis=1)
    feat = np.where(psi >= S.drift_psi_alert, "alert", np.where(psi >= S.drift_psi_warn, "warn", "ok"))
    return [max(f, p, key=LEVELS.index) for f, p in zip(feat, perf)]


RULES = ["shipped", "A (old)", "lookback<=W", "lookback<=W/3", "performance"]


def judged(t: pd.DataFrame, rule: str) -> pd.DataFrame:
    "Each window's status under `rule`, and the ladder after it"
    st = rule_status(t, rule)
    lad = FallbackLadder(S.fallback_trip_windows, S.fallback_recover_windows)
    return t.assign(status=st, level=[lad.observe(x != "alert") for x in st])


def first_after(t: pd.DataFrame, mask) -> str:
    hit = t.index[(t["k"] >= 0) & mask]
    return "never" if not len(hit) else f"{int(t.loc[hit[0], 'k'])} session(s)"


def trips(t: pd.DataFrame) -> int: return int((t["level"].diff().fillna(t["level"]) > 0).sum())


def shift_lines(t: pd.DataFrame):
    for rule in RULES:
        j = judged(t, rule)
        pre = j[j["k"] < 0]
        print(f"  {rule:13s} before the shift ({len(pre)} sessions): alert windows {int((pre['status'] == 'alert').sum())}, ladder trips "
              f"{trips(pre)}; shift -> first alert window {first_after(j, j['status'] == 'alert')}, ladder level >= 1 "
              f"{first_after(j, j['level'] >= 1)}, level 2 {first_after(j, j['level'] >= 2)}")
    post = t[t["k"] >= 0]
    fa = post[post["judged_alert"] != ""]
    print(f"  shipped parts: first judged-feature alert {first_after(t, t['judged_alert'] != '')} "
          f"({fa['judged_alert'].iloc[0] if len(fa) else '-'}), first performance alert {first_after(t, t['perf'] == 'alert')}; "
          f"after the shift pinball ratio to ewma median {post['ratio'].median():.3f}, coverage median {post['cov'].median():.1%}")


print(f"windows of {W} sessions, performance over {S.drift_perf_days}, PSI warn {S.drift_psi_warn} / alert {S.drift_psi_alert}, "
      f"ladder trip {S.fallback_trip_windows} / recover {S.fallback_recover_windows}; features judged by the shipped rule: "
      f"per-symbol with lookback <= {W // 4}; lookback<=W rule: {', '.join(PER_SYMBOL_W)}; lookback<=W/3 rule: {', '.join(PER_SYMBOL_W3)}")
if a.stream_only:
    stream_cost(); raise SystemExit(0)
t0 = time.perf_counter()

# ---- calm: a year without a crash of the sample market, then the same year with its volatility doubled from mid-year
calm_m = synthetic_market(a.symbols, 8.0, seed=a.seed)
cdays = np.sort(calm_m["date"].unique())
crashes = calm_m.attrs.get("crashes", [])
def quiet(i): return all(not (cdays[i - 60] <= np.datetime64(e) and np.datetime64(s) <= cdays[min(i + 251, len(cdays) - 1)]) for s, e in crashes)
cands = [i for i in range(TRAIN + 300, len(cdays) - 253) if quiet(i)]
if not cands:
    print(f"calm benchmark: no crash-free year in the seed-{a.seed} sample market after {TRAIN + 300} sessions; try another --seed")
else:
    i = cands[0]
    start = pd.Timestamp(cdays[i])
    cdata = add_targets(build_features(calm_m), (1,))
    model, base, cref, cfit = fit_champion(cdata, start)
    ct = watch(cdata, cref, ledger(cdata, model, base, start), cdays[i:i + 252])
    print(f"calm: {len(ct)} sessions {start.date()} .. {ct['date'].max().date()}, {a.symbols} symbols, {a.model} fitted on {TRAIN} sessions "
          f"in {cfit:.1f} s (no crash within 60 sessions before or during; the market's crashes: "
          f"{[(str(pd.Timestamp(s).date()), str(pd.Timestamp(e).date())) for s, e in crashes]})")
    for rule in RULES:
        j = judged(ct, rule)
        print(f"  {rule:13s} alert windows {int((j['status'] == 'alert').sum()):3d} ({(j['status'] == 'alert').mean():4.0%}), "
              f"warn {int((j['status'] == 'warn').sum()):3d}, ladder trips {trips(j)}, sessions at level > 0: {int((j['level'] > 0).sum())}")
    print(f"  performance: session-unit alerts {int((ct['perf'] == 'alert').sum())}, rows-unit (A) alerts {int((ct['perf_old'] == 'alert').sum())}; "
          f"pinball ratio median {ct['ratio'].median():.3f}, coverage median {ct['cov'].median():.1%}, session band median "
          f"{ct['lo'].median():.1%} .. {ct['hi'].median():.1%} (rows' binomial band {coverage_band(a.symbols * int(S.drift_perf_days))[0]:.1%} .. "
          f"{coverage_band(a.symbols * int(S.drift_perf_days))[1]:.1%})")
    pc = [c for c in ct.columns if c.startswith("psi:")]
    print("  PSI per feature, median / 90th percentile over the year: " + ", ".join(
        f"{c[4:]} {ct[c].median():.2f}/{ct[c].quantile(0.9):.2f}" for c in sorted(pc, key=lambda c: ct[c].median())))

    shift = pd.Timestamp(cdays[i + 126])
    sdata = add_targets(build_features(doubled_after(calm_m, shift)), (1,))
    st = watch(sdata, cref, ledger(sdata, model, base, start), cdays[i:i + 252])
    st["k"] = [int(np.searchsorted(cdays, np.datetime64(d))) - (i + 126) for d in st["date"]]
    print(f"shift: the calm year with volatility x2 from {shift.date()} (its 127th session), the same champion and reference")
    shift_lines(st)

# ---- shift (A): helper A's placement, a 5-year market doubled 130 sessions before its end
years = max(5.0, (TRAIN + 300 + 200) / 252)
m = synthetic_market(a.symbols, years, seed=a.seed)
days = np.sort(m["date"].unique())
shift = pd.Timestamp(days[len(days) - 130])
watch_from = pd.Timestamp(days[len(days) - 190])
data = add_targets(build_features(doubled_after(m, shift)), (1,))
model, base, ref, fit_s = fit_champion(data, watch_from)
t = watch(data, ref, ledger(data, model, base, watch_from), days[(days >= np.datetime64(watch_from))][:-1])
t["k"] = [int(np.searchsorted(days, np.datetime64(d))) - int(np.searchsorted(days, np.datetime64(shift))) for d in t["date"]]
print(f"shift (A): 5-year market, volatility x2 from {shift.date()}, watched from {watch_from.date()} (crashes: "
      f"{[(str(pd.Timestamp(s).date()), str(pd.Timestamp(e).date())) for s, e in m.attrs.get('crashes', [])]}, in the training period)")
shift_lines(t)
print(f"total {time.perf_counter() - t0:.0f} s")
stream_cost()
