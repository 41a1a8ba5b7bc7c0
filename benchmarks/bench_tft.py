"""Training and prediction speed of the deep models (`tft`, `lstm`) on a synthetic market of realistic size.

Prints measured figures; asserts nothing. Usage: python benchmarks/bench_tft.py [--symbols 500] [--years 3] [--epochs 1] [--models tft,lstm]
Features come from `stock_workbench.features` when it exists, else from ~20 scale-free features computed here.
"""
import argparse, os, time
import numpy as np, pandas as pd

ap = argparse.ArgumentParser()
ap.add_argument("--symbols", type=int, default=500)
ap.add_argument("--years", type=float, default=3)
ap.add_argument("--seed", type=int, default=1)
ap.add_argument("--epochs", type=int, default=1)
ap.add_argument("--batch-size", type=int, default=256)
ap.add_argument("--threads", type=int, default=1, help="torch threads (the models' torch_threads)")
ap.add_argument("--models", default="tft,lstm")
a = ap.parse_args()
os.environ["SWB_QUIET"] = "1"

t = time.perf_counter()
import lightning.pytorch as pl
from stock_workbench.synthetic import synthetic_market
from stock_workbench.deep import LstmModel, TftModel
print(f"imports (torch, lightning, pytorch-forecasting): {time.perf_counter() - t:.1f} s")


def own_features(p: pd.DataFrame) -> tuple[pd.DataFrame, list[str]]:
    "About 20 scale-free features and the forward log-return targets, per symbol, point in time"
    g = p.groupby("symbol", sort=False)
    lp = np.log(p["adj_close"])
    d = p[["symbol", "date"]].copy()
    r1 = lp - lp.groupby(p["symbol"]).shift(1)
    for n in (1, 2, 3, 5, 10, 20, 60): d[f"ret_{n}d"] = lp - lp.groupby(p["symbol"]).shift(n)
    for n in (5, 10, 20, 60): d[f"rvol_{n}"] = r1.groupby(p["symbol"]).transform(lambda s: s.rolling(n).std())
    d["vol_ratio_5_20"], d["vol_ratio_20_60"] = d.rvol_5 / d.rvol_20, d.rvol_20 / d.rvol_60
    for n in (10, 20, 50):
        ma = g["adj_close"].transform(lambda s: s.rolling(n).mean())
        d[f"z_ma{n}"] = np.log(p["adj_close"] / ma) / d.rvol_20
    d["hl_range"] = np.log(p["high"] / p["low"])
    d["co_ret"] = np.log(p["close"] / p["open"])
    lv = np.log1p(p["volume"])
    d["volume_z20"] = (lv - lv.groupby(p["symbol"]).transform(lambda s: s.rolling(20).mean())) / \
        lv.groupby(p["symbol"]).transform(lambda s: s.rolling(20).std())
    d["mkt_ret_1d"] = r1.groupby(p["date"]).transform("mean")
    d["mkt_rvol_20"] = d.groupby("symbol")["mkt_ret_1d"].transform(lambda s: s.rolling(20).std())
    feats = [c for c in d.columns if c not in ("symbol", "date")]
    d["adj_close"] = p["adj_close"]
    for h in (1, 5): d[f"target_{h}d"] = lp.groupby(p["symbol"]).shift(-h) - lp
    return d, feats


class EpochTimer(pl.Callback):
    "Wall time of each training epoch"
    def __init__(self): self.seconds = []
    def on_train_epoch_start(self, trainer, module): self._t = time.perf_counter()
    def on_train_epoch_end(self, trainer, module): self.seconds.append(time.perf_counter() - self._t)


timer = EpochTimer()
_Trainer = pl.Trainer
class TimedTrainer(_Trainer):  # the models build their own Trainer: add the timer to it
    def __init__(self, *args, callbacks=None, **kw): super().__init__(*args, callbacks=[*(callbacks or []), timer], **kw)
pl.Trainer = TimedTrainer

t = time.perf_counter()
panel = synthetic_market(a.symbols, a.years, a.seed)
print(f"synthetic market: {a.symbols} symbols x {a.years:g} years = {len(panel):,} rows ({time.perf_counter() - t:.1f} s)")
t = time.perf_counter()
try:
    from stock_workbench.features import MODEL_FEATURES, add_targets, build_features
    data, feats, how = add_targets(build_features(panel)), list(MODEL_FEATURES), "features.build_features"
except ImportError:
    (data, feats), how = own_features(panel), "computed here"
print(f"features ({how}): {len(feats)} model features, {time.perf_counter() - t:.1f} s")

sessions = np.sort(data["date"].unique())
start, end = sessions[60], sessions[-2]  # skip the warm-up of the longest windows; the last target is known
test = data[data["date"] >= sessions[-63 - 30]].drop(columns=[c for c in data.columns if c.startswith("target_")])
print(f"training window {pd.Timestamp(start).date()} .. {pd.Timestamp(end).date()}; torch threads {a.threads}, "
      f"batch size {a.batch_size}, {a.epochs} epoch(s)\n")

models = {"tft": TftModel, "lstm": LstmModel}
for name in a.models.split(","):
    m = models[name](1, features=feats, epochs=a.epochs, batch_size=a.batch_size, torch_threads=a.threads)
    timer.seconds = []
    t = time.perf_counter(); m.fit(data, start, end); fit_s = time.perf_counter() - t
    n_par = sum(p.numel() for p in m._net.parameters())
    epoch_s = float(np.mean(timer.seconds))
    t = time.perf_counter(); p_test = m.predict(test); pred_test_s = time.perf_counter() - t
    t = time.perf_counter(); p_all = m.predict(data); pred_all_s = time.perf_counter() - t
    print(f"{name}: {n_par:,} parameters, {m.n_train_:,} training samples "
          f"({m.n_train_ // a.batch_size:,} batches of {a.batch_size}), encoder {m.max_encoder_length} rows")
    print(f"  seconds per epoch:        {epoch_s:8.1f} s  ({m.n_train_ / epoch_s:,.0f} samples/s; epochs: "
          f"{', '.join(f'{s:.1f}' for s in timer.seconds)})")
    print(f"  fit total ({a.epochs} epoch(s)):   {fit_s:8.1f} s  (data preparation and setup {fit_s - sum(timer.seconds):.1f} s)")
    print(f"  predict 63 sessions + 30 context: {pred_test_s:6.1f} s  ({len(test):,} rows, {p_test.p50.notna().sum():,} forecast)")
    print(f"  predict every row:        {pred_all_s:8.1f} s  ({len(data):,} rows, {len(data) / pred_all_s:,.0f} rows/s)")
    q = p_all[data["date"].to_numpy() >= start].dropna()
    y = data.loc[q.index, "target_1d"]
    print(f"  load average during the run: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(f"  in-sample sanity: median 80% band {np.median(q.p90 - q.p10):.4f}, coverage {((y >= q.p10) & (y <= q.p90)).mean():.2f}\n")
