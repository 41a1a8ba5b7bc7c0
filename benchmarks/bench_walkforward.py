"""Walk-forward evaluation of the gradient-boosting model (and the random walk, always included) over the synthetic market.

Prints measured figures and the evaluation table; asserts nothing.
Usage: python benchmarks/bench_walkforward.py [--symbols 500] [--years 10] [--model gbm] [--horizon 1] [--train-days 756] [--refit-days 63]
Target (issue 3): the default run (gbm, 500 symbols x 10 years, default windows) in < 5 minutes on the 2-core machine.
"""
import argparse, os, resource, time

ap = argparse.ArgumentParser()
ap.add_argument("--symbols", type=int, default=500)
ap.add_argument("--years", type=float, default=10)
ap.add_argument("--seed", type=int, default=1)
ap.add_argument("--model", default="gbm")
ap.add_argument("--horizon", type=int, default=1)
ap.add_argument("--train-days", type=int, default=756)
ap.add_argument("--refit-days", type=int, default=63)
a = ap.parse_args()
os.environ["SWB_QUIET"] = "1"


def peak_mb(): return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(label, f, *args, **kw):
    t = time.perf_counter(); out = f(*args, **kw); dt = time.perf_counter() - t
    print(f"  {label:<30} {dt:8.2f} s"); return out, dt


t = time.perf_counter()
from stock_workbench.synthetic import synthetic_market
from stock_workbench.features import add_targets, build_features
from stock_workbench.evaluate import evaluate_models, format_report
print(f"synthetic market: {a.symbols} symbols x {a.years:g} years, seed {a.seed}; model {a.model} vs naive, horizon {a.horizon}, "
      f"train {a.train_days} / refit {a.refit_days} sessions")
print(f"  {'imports':<30} {time.perf_counter() - t:8.2f} s")
panel, _ = timed("generate", synthetic_market, a.symbols, a.years, a.seed)
feats, feat_s = timed("build_features + add_targets", lambda: add_targets(build_features(panel), horizons=(a.horizon,)))
res, eval_s = timed("evaluate_models", evaluate_models, feats, [a.model], horizon=a.horizon, train_days=a.train_days,
                    refit_days=a.refit_days, progress=True)

folds = res["folds"]
model_s = res["models"][a.model]["seconds"]
naive_s = res["models"]["naive"]["seconds"]
print(f"\nrows scored: {res['rows']:,} ({res['sessions']} test sessions x {res['symbols']} symbols), folds: {folds}")
print(f"walk-forward {a.model}: {model_s:7.1f} s  = {model_s / folds:5.2f} s per fold (fit + predict)")
print(f"walk-forward naive: {naive_s:7.1f} s  = {naive_s / folds:5.2f} s per fold")
print(f"scoring (metrics, DM, regimes): {eval_s - model_s - naive_s:5.1f} s")
print(f"total wall time (features + evaluation): {feat_s + eval_s:7.1f} s; peak memory {peak_mb():,.0f} MB")
print(f"{a.model} params: {res['models'][a.model]['params']}")
print(f"target: < 300 s for the evaluation -> {'MET' if eval_s < 300 else 'NOT MET'}\n")
print(format_report(res))
