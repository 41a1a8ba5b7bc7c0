"""Portfolio risk (issue 14): speed of `risk.portfolio_forecast` and a 10-year backtest of its 95 % VaR.

(a) 1 000 books x 50 random positions (some short) over the 500-symbol synthetic market, 1- and 5-session forecasts
    from the EWMA band baseline (`volatility.EwmaModel`, RiskMetrics) at the last session, 10 000 t-copula scenarios:
    seconds for the whole `portfolio_forecast` (value bands, VaR, ES, Euler contributions), its ratio to the 10 s target,
    and references measured in the same run: one numpy matmul of the same size (scenarios x symbols @ symbols x books)
    and the Ledoit-Wolf correlation alone.
(b) VaR backtest: a synthetic market of --bt-symbols symbols over 1 + --bt-years years; the EWMA model is fitted on the
    first year and forecasts every later session point in time; `risk.rolling_var` computes each long-only book's
    1-session 95 % VaR at every session and the P&L of the next; per book and pooled: exceedance rate (target 3.5-6.5 %)
    and Kupiec's proportion-of-failures p-value.
Prints figures; asserts nothing about time.
Usage: python benchmarks/bench_portfolio.py [--symbols 500] [--books 1000] [--positions 50] [--sims 10000]
       [--bt-symbols 30] [--bt-years 10] [--bt-books 5] [--bt-sims 2000] [--skip-a] [--skip-b] [--skip-c]
(c) end to end through `portfolio`: the books imported into a real PostgreSQL database (created and dropped), read back,
    closes and returns from a store of the synthetic market, `risk.portfolio_forecast`, the CLI's report lines: seconds per part.
"""
import argparse, os, time

ap = argparse.ArgumentParser()
ap.add_argument("--symbols", type=int, default=500)
ap.add_argument("--books", type=int, default=1000)
ap.add_argument("--positions", type=int, default=50)
ap.add_argument("--sims", type=int, default=10_000)
ap.add_argument("--bt-symbols", type=int, default=30)
ap.add_argument("--bt-years", type=float, default=10)
ap.add_argument("--bt-books", type=int, default=5)
ap.add_argument("--bt-sims", type=int, default=2_000)
ap.add_argument("--seed", type=int, default=1)
ap.add_argument("--skip-a", action="store_true")
ap.add_argument("--skip-b", action="store_true")
ap.add_argument("--skip-c", action="store_true")
a = ap.parse_args()
os.environ["SWB_QUIET"] = "1"
TARGET_S = 10.0

import numpy as np, pandas as pd
from stock_workbench.synthetic import synthetic_market
from stock_workbench.volatility import EwmaModel
from stock_workbench.risk import portfolio_forecast, rolling_var, var_backtest, shrunk_correlation


def ewma_inputs(panel):
    "Daily log returns (long and wide), closes (wide) and the model's input rows"
    lp = np.log(panel["adj_close"])
    g = lp.groupby(panel["symbol"])
    data = panel[["symbol", "date"]].assign(ret_1d=g.diff().to_numpy())
    for h in (1, 5): data[f"target_{h}d"] = (g.shift(-h) - lp).to_numpy()
    wide_r = data.pivot(index="date", columns="symbol", values="ret_1d")
    wide_c = panel.pivot(index="date", columns="symbol", values="close")
    return data, wide_r, wide_c


print(f"{os.cpu_count()} cores; method: each symbol's p10/p50/p90 -> two-piece normal marginal; t copula (df 5) on the "
      "Ledoit-Wolf correlation of the last 250 sessions' daily log returns; VaR = -quantile(5 %) of simulated P&L, "
      "ES = mean loss of the worst 5 % of scenarios; forecasts: EWMA (RiskMetrics, lambda 0.94) random-walk band")

if not a.skip_a:
    print(f"\n(a) {a.books:,} books x {a.positions} positions over {a.symbols} symbols, {a.sims:,} scenarios, horizons 1 and 5")
    t = time.perf_counter()
    panel = synthetic_market(a.symbols, years=2, seed=a.seed)
    data, wide_r, wide_c = ewma_inputs(panel)
    last = data.date.max()
    train_end = data.date.unique()[251]
    fc = []
    for h in (1, 5):
        m = EwmaModel(horizon=h).fit(data, None, train_end)
        p = m.predict(data[data.date > data.date.unique()[-251]])
        fc.append(p[p.date == last].assign(horizon=h))
    forecasts = pd.concat(fc, ignore_index=True)
    forecasts["close"] = wide_c.loc[last].reindex(forecasts.symbol).to_numpy()
    returns, prices = wide_r.iloc[-250:], wide_c.loc[last]
    rng = np.random.default_rng(a.seed)
    syms = wide_c.columns.to_numpy()
    positions = pd.DataFrame({
        "portfolio_id": np.repeat([f"P{i:04d}" for i in range(a.books)], a.positions),
        "symbol": np.concatenate([rng.choice(syms, a.positions, replace=False) for _ in range(a.books)]),
        "quantity": rng.integers(1, 1000, a.books * a.positions) * np.where(rng.random(a.books * a.positions) < 0.2, -1., 1.)})
    print(f"  inputs (market, EWMA forecasts, books)    {time.perf_counter() - t:8.2f} s")

    t, c = time.perf_counter(), time.process_time()
    pf = portfolio_forecast(positions, forecasts, returns, prices, horizons=(1, 5), n_sims=a.sims, seed=a.seed)
    secs, cpu = time.perf_counter() - t, time.process_time() - c
    g = np.random.default_rng(0)
    x, v = g.standard_normal((a.sims, a.symbols)), g.standard_normal((a.symbols, a.books))
    from threadpoolctl import threadpool_limits
    with threadpool_limits(1):   # as portfolio_forecast runs it
        t = time.perf_counter(); x @ v; mm = time.perf_counter() - t
    t = time.perf_counter(); shrunk_correlation(returns); corr_s = time.perf_counter() - t
    print(f"  portfolio_forecast, whole                 {secs:8.2f} s   ratio to the {TARGET_S:g} s target: {secs / TARGET_S:.2f}"
          f"   (CPU {cpu:.2f} s; load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)")
    print(f"  reference: one matmul {a.sims}x{a.symbols} @ {a.symbols}x{a.books} (1 thread) {mm:8.2f} s   portfolio_forecast / matmul: {secs / mm:.1f}")
    print(f"  reference: Ledoit-Wolf correlation alone  {corr_s:8.2f} s")
    es_err = (pf.contributions.groupby(["portfolio_id", "horizon"]).es_contribution.sum()
              - pf.books.set_index(["portfolio_id", "horizon"]).es).abs().max()
    b1 = pf.books[pf.books.horizon == 1]
    print(f"  rows: {len(pf.books):,} book rows, {len(pf.contributions):,} contributions; max |sum of Euler contributions - ES| = {es_err:.2e}")
    print(f"  1-session 95 % VaR as % of |value|: median {b1.var_pct.median():.2%}, 5-session {pf.books[pf.books.horizon == 5].var_pct.median():.2%}")
    print(f"  method: {pf.method}")

if not a.skip_b:
    n_days = int(round((1 + a.bt_years) * 252))
    print(f"\n(b) VaR backtest: {a.bt_symbols} symbols, {a.bt_years:g} years after a 1-year EWMA warm-up, "
          f"{a.bt_books} long-only books, {a.bt_sims:,} scenarios per session")
    t = time.perf_counter()
    panel = synthetic_market(a.bt_symbols, years=1 + a.bt_years, seed=a.seed)
    data, wide_r, wide_c = ewma_inputs(panel)
    dates = data.date.unique()
    train_end = dates[251]
    ew = EwmaModel().fit(data.drop(columns="target_5d"), None, train_end)
    fpanel = ew.predict(data)
    fpanel = fpanel[fpanel.date > train_end]
    rng = np.random.default_rng(a.seed + 1)
    syms = wide_c.columns.to_numpy()
    k = min(10, len(syms))
    books = pd.DataFrame([(f"B{b}", s, float(rng.integers(10, 1000))) for b in range(a.bt_books)
                          for s in rng.choice(syms, k, replace=False)], columns=["portfolio_id", "symbol", "quantity"])
    rv = rolling_var(books, fpanel, wide_r, wide_c, level=0.95, corr_days=250, n_sims=a.bt_sims, seed=a.seed)
    secs = time.perf_counter() - t
    n_dates = rv.date.nunique()
    print(f"  {n_dates:,} sessions ({rv.date.min().date()} to {rv.date.max().date()}), {secs:.1f} s "
          f"({1000 * secs / n_dates:.1f} ms per session for all books); crashes in the market: "
          + ", ".join(f"{s.date()}..{e.date()}" for s, e in panel.attrs["crashes"]))
    print(f"  {'book':<8} {'n':>6} {'exceed':>7} {'rate':>7} {'Kupiec LR':>10} {'p-value':>8}  verdict")
    for pid, d in rv.groupby("portfolio_id"):
        d = d.set_index("date")
        r = var_backtest(d["var"], d.pnl_next)
        print(f"  {pid:<8} {r['n']:>6} {r['exceedances']:>7} {r['rate']:>7.2%} {r['lr']:>10.2f} {r['p_value']:>8.3f}  {r['verdict']}")
    d = rv.dropna().reset_index(drop=True)
    r = var_backtest(d["var"], d.pnl_next)
    ok = 0.035 <= r["rate"] <= 0.065
    print(f"  {'pooled':<8} {r['n']:>6} {r['exceedances']:>7} {r['rate']:>7.2%} {r['lr']:>10.2f} {r['p_value']:>8.3f}  {r['verdict']}"
          f"   (target 3.5-6.5 %: {'met' if ok else 'NOT met'}; pooled Kupiec treats the books' sessions as independent, which they are not)")

if not a.skip_c:
    # (c) end to end through the portfolio module: positions from a real PostgreSQL database, closes/returns from the store,
    # risk.portfolio_forecast, then the CLI's per-book report lines and --json grouping (once quadratic in the number of books).
    # The champion's forecasts (the ledger read) are replaced by the EWMA band here: a champion needs a trained registry.
    import contextlib, io, tempfile, uuid
    from pathlib import Path
    import psycopg
    from psycopg import sql
    from stock_workbench.config import Settings
    from stock_workbench.store import OhlcvStore
    from stock_workbench import portfolio as P
    print(f"\n(c) end to end: {a.books:,} books x {a.positions} positions over {a.symbols} symbols in a real PostgreSQL database")
    home = Path(tempfile.mkdtemp())
    name = f"swb_bench_{uuid.uuid4().hex[:8]}"
    s = Settings(home, env={"SWB_PORTFOLIO_DB_URL": f"postgresql://postgres@127.0.0.1:5432/{name}", "SWB_PORTFOLIO_LONG_ONLY": "false"})
    try:
        panel = synthetic_market(a.symbols, years=2, seed=a.seed)
        OhlcvStore.from_settings(s).write(panel, source="bench")
        data, wide_r, wide_c = ewma_inputs(panel)
        last = data.date.max()
        fc = []
        for h in (1, 5):
            m = EwmaModel(horizon=h).fit(data, None, data.date.unique()[251])
            p = m.predict(data[data.date > data.date.unique()[-251]])
            fc.append(p[p.date == last].assign(horizon=h))
        forecasts = pd.concat(fc, ignore_index=True)
        rng = np.random.default_rng(a.seed)
        syms = wide_c.columns.to_numpy()
        n = a.books * a.positions
        pos = pd.DataFrame({"portfolio": np.repeat([f"P{i:04d}" for i in range(a.books)], a.positions),
                            "symbol": np.concatenate([rng.choice(syms, a.positions, replace=False) for _ in range(a.books)]),
                            "quantity": rng.integers(1, 1000, n) * np.where(rng.random(n) < 0.2, -1, 1),
                            "as_of": str(last.date()), "client_id": "bench"})
        pos.to_csv(home / "pos.csv", index=False)
        P.upgrade_db(s)
        t = time.perf_counter(); P.import_positions(s, home / "pos.csv"); imp = time.perf_counter() - t
        t0 = time.perf_counter(); held = P.read_positions(s, last); t_db = time.perf_counter() - t0
        t = time.perf_counter(); empty = P._empty_books(s, last, None, None, set(held["portfolio_id"])); t_db += time.perf_counter() - t
        t = time.perf_counter(); prices, returns, _ = P._market(s, sorted(held["symbol"].unique()), last, s.portfolio_corr_days); t_store = time.perf_counter() - t
        t = time.perf_counter()
        pf = portfolio_forecast(held[["portfolio_id", "symbol", "quantity"]], forecasts, returns, prices, horizons=(1, 5),
                                n_sims=a.sims, seed=0, copula="t")
        t_risk = time.perf_counter() - t
        t = time.perf_counter()
        bk, lo = P._by_book(pf.books), P._by_book(pf.left_out)
        meta = dict(level=0.95, horizons=[1, 5])
        lines = [l for pid in sorted(bk) for l in P._book_lines(pf, pid, meta, bk, lo)]
        t_report = time.perf_counter() - t
        total = t_db + t_store + t_risk + t_report
        print(f"  {f'import of {n:,} rows (not in the total)':<42}{imp:8.2f} s")
        print(f"  DB read (positions, empty books)          {t_db:8.2f} s")
        print(f"  store read (closes, returns)              {t_store:8.2f} s")
        print(f"  risk.portfolio_forecast                   {t_risk:8.2f} s")
        print(f"  {f'CLI report lines ({len(lines):,})':<42}{t_report:8.2f} s")
        print(f"  whole                                     {total:8.2f} s   ratio to the {TARGET_S:g} s target: {total / TARGET_S:.2f}; "
              f"{len(empty)} book(s) without positions")
    finally:
        with psycopg.connect("postgresql://postgres@127.0.0.1:5432/postgres", autocommit=True) as c:
            c.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
