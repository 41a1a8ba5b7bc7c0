"""News throughput: synthetic headlines through `news.process_items` (language, scrub, match, score, check, store), per stage.

Prints measured figures; asserts nothing. Usage: python benchmarks/bench_news.py [--n 100000] [--workers 2] [--pii-share 0.05]
Target (issue 15): >= 2000 headlines/s through scrub + score + store for 100 000 headlines on the 2-core machine.
The lexicons, Presidio and Great Expectations are loaded first (timed on their own): a long-running ingest pays them once.
"""
import argparse, os, random, resource, shutil, tempfile, time
from pathlib import Path
import pandas as pd


def main():  # guarded: the scrub workers are spawned and import this file as a module
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--pii-share", type=float, default=0.05, help="share of headlines carrying an e-mail, phone or handle")
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    os.environ["SWB_QUIET"] = "1"

    work = Path(tempfile.mkdtemp(prefix="swb-bench-news-"))
    os.environ.update(SWB_HOME=str(work / "home"), SWB_NEWS_HASH_KEY="bench-key-0123456789abcdef", SWB_NEWS_WORKERS=str(a.workers))
    (work / "home").mkdir()

    t = time.perf_counter()
    from stock_workbench.config import Settings
    from stock_workbench import news, privacy
    news.default_scorers(); news._english_words(); privacy.Scrubber().scrub("warm up a@example.com")
    news.validate_news(news.empty_news().astype({"title": "str"}), Settings())   # GX import and context
    print(f"imports and lexicons, Presidio, GX loaded: {time.perf_counter() - t:.2f} s")

    rng = random.Random(a.seed)
    cos = ["Apple", "Microsoft", "Nvidia", "Tesla", "Amazon", "Alphabet", "Meta", "IBM", "Intel", "Oracle", "Pfizer", "Exxon", "Boeing",
           "JPMorgan", "Goldman Sachs", "Walmart", "Disney", "Netflix", "Ford", "Chevron"]
    tick = ["AAPL", "MSFT", "NVDA", "TSLA", "AMZN", "GOOGL", "META", "IBM", "INTC", "ORCL", "PFE", "XOM", "BA", "JPM", "GS", "WMT", "DIS", "NFLX", "F", "CVX"]
    verbs = ["beats estimates as", "misses forecasts after", "shares jump on", "shares slump after", "faces lawsuit over", "may cut jobs amid",
             "raises outlook on", "warns of losses from", "wins approval for", "settles probe into", "posts record profit on", "recalls products after"]
    what = ["strong demand", "weak sales", "supply delays", "regulatory scrutiny", "a court ruling", "higher costs", "AI spending",
            "uncertain guidance", "a merger deal", "rising rates", "a data breach", "cloud growth"]
    pii = [" - tips to desk{}@example.com", " (call +1 212-555-{:04d})", " via @trader_{}"]
    rows = []
    t0 = pd.Timestamp("2024-01-02 13:00", tz="UTC")
    for i in range(a.n):
        k = rng.randrange(len(cos))
        title = f"{cos[k]} {rng.choice(verbs)} {rng.choice(what)}" + (f" (NASDAQ: {tick[k]})" if rng.random() < 0.3 else "") + f" #{i}"
        if rng.random() < a.pii_share: title += rng.choice(pii).format(i % 10000)
        rows.append((t0 + pd.Timedelta(minutes=i), rng.choice(["reuters", "bloomberg", "newswire"]), f"https://news.example.com/a/{i}",
                     title, "", "", None, f"bench:{i + 1}"))
    raw = pd.DataFrame(rows, columns=news.RAW_COLUMNS)
    raw["published_at"] = raw["published_at"].astype("datetime64[us, UTC]")
    print(f"{a.n:,} synthetic headlines ({a.pii_share:.0%} with personal data), {a.workers} worker process(es); scratch {work}")

    cpu = lambda: sum(getattr(resource.getrusage(w), k) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN) for k in ("ru_utime", "ru_stime"))
    for run in ("first ingest", "re-ingest (all duplicates)"):
        t, c = time.perf_counter(), cpu()
        s = news.process_items(raw, Settings(), where="bench")
        dt, dc = time.perf_counter() - t, cpu() - c   # CPU seconds: this process and the scrub workers (a shared machine's wall time is not ours)
        print(f"{run}: {dt:.2f} s = {a.n / dt:,.0f} headlines/s ({dc:.1f} CPU s = {a.n / dc:,.0f} headlines per CPU second); "
              f"stored {s['stored']:,}, duplicates {s['duplicates']:,}, personal data {sum(s['pii'].values()):,}")
        for stage, sec in s["seconds"].items(): print(f"  {stage:<10} {sec:7.2f} s  ({a.n / sec if sec else float('inf'):>12,.0f} /s)")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
