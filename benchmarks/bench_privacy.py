"""Personal data scrubbing of news: quality on the labelled set and throughput.

Prints measured figures; asserts nothing. Usage: python benchmarks/bench_privacy.py [--n 100000] [--pii-share 0.1] [--seed 7]
  quality      precision / recall / F1 per type on tests/fixtures/news/pii_cases.jsonl (a found span counts when it overlaps a
               labelled span of the same type), exact-span matches, and finance false positives (finance headlines changed);
               the same finance headlines through Presidio out of the box (every predefined recognizer, no-op NLP engine) for
               comparison. The labelled set was written together with the rules: expect lower figures on unseen formats.
  throughput   `Scrubber.scrub_many` over n generated headlines (templated finance text with tickers, prices, share counts,
               dates; `pii-share` of them a labelled personal-data headline) in 1 process, then `scrub_parallel` with
               `news_workers` processes (spawn and each worker's Presidio start-up included), and the share that skipped the
               analyzer.
"""
import argparse, json, os, random, resource, sys, time
from pathlib import Path

from stock_workbench.config import Settings
from stock_workbench.privacy import _MAY, PII_TYPES, Scrubber, scrub_parallel

CASES = Path(__file__).resolve().parents[1] / "tests/fixtures/news/pii_cases.jsonl"
ALLOW = ["AAPL", "MSFT", "GOOG", "TSLA", "NVDA", "AMZN", "META", "JPM", "XOM", "UNH", "Apple", "Microsoft", "Amazon.com"]
TEMPLATES = ["{s} shares rose {p:.1f}% to ${x:,.2f} after Q{q} results", "{s} beats estimates; EPS ${e:.2f} vs ${f:.2f} expected",
             "{s} to buy back {n:,} shares through {y}", "Analysts lift {s} target to ${x:,.0f} on {y}-{m:02d}-{d:02d}",
             "{s} falls {p:.1f}% as revenue misses by ${b:.1f} billion", "{s} declares dividend of ${e:.2f} payable {m:02d}/{d:02d}/{y}",
             "Fed decision weighs on {s}; 10-year yield at {p:.2f}%", "{s} (CUSIP 037833100) added to S&P 500 at 4,783.45",
             "NASDAQ:{s} volume {n:,} vs 30-day average", "${s} options: {n:,} contracts traded, IV {p:.1f}%"]


def generate(n:int, pii_share:float, seed:int, pii:list[str])->list[str]:
    "n headlines: templated finance text, `pii_share` of them a labelled personal-data headline"
    rng = random.Random(seed)
    syms = ALLOW[:10]
    out = []
    for _ in range(n):
        if rng.random() < pii_share: out.append(rng.choice(pii)); continue
        out.append(rng.choice(TEMPLATES).format(s=rng.choice(syms), p=rng.uniform(0, 9), x=rng.uniform(5, 3000), q=rng.randint(1, 4),
                   e=rng.uniform(0, 9), f=rng.uniform(0, 9), n=rng.randint(10**5, 10**8), y=rng.randint(2015, 2026),
                   m=rng.randint(1, 12), d=rng.randint(1, 28), b=rng.uniform(0, 20)))
    return out


def quality(cases:list[dict], scrubber:Scrubber):
    s = {t: [0, 0, 0] for t in PII_TYPES}
    exact = total = 0
    for c in cases:
        pred, gold = scrubber.find(c["text"]), c["pii"]
        for g in gold:
            total += 1
            exact += any((a, b, t) == (g["start"], g["end"], g["type"]) for a, b, t in pred)
            s[g["type"]][0 if any(a < g["end"] and g["start"] < b and t == g["type"] for a, b, t in pred) else 2] += 1
        for a, b, t in pred:
            if not any(a < g["end"] and g["start"] < b and t == g["type"] for g in gold): s[t][1] += 1
    print(f"labelled set: {sum(c['kind'] == 'pii' for c in cases)} headlines with {total} personal-data spans, "
          f"{sum(c['kind'] == 'finance' for c in cases)} finance-only headlines")
    print(f"{'type':14s} {'spans':>5s} {'P':>6s} {'R':>6s} {'F1':>6s}")
    for t, (tp, fp, fn) in s.items():
        p, r = tp / max(1, tp + fp), tp / max(1, tp + fn)
        print(f"{t:14s} {tp + fn:5d} {p:6.3f} {r:6.3f} {2 * p * r / max(1e-12, p + r):6.3f}   (fp {fp}, fn {fn})")
    print(f"exact span boundaries: {exact}/{total}")
    fin = [c["text"] for c in cases if c["kind"] == "finance"]
    changed = [t for t in fin if scrubber.scrub(t).text != t]
    print(f"finance false positives (ours): {len(changed)}/{len(fin)} finance headlines changed")


def presidio_out_of_the_box(cases:list[dict]):
    "Presidio's predefined recognizers on the finance headlines (its e-mail check pointed at the bundled suffix list: no network)"
    import tldextract
    from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
    from presidio_analyzer.nlp_engine import NoOpNlpEngine
    from presidio_analyzer.predefined_recognizers.generic import email_recognizer
    email_recognizer.tldextract.extract = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None)   # this process only
    nlp = NoOpNlpEngine(models=[{"lang_code": "en", "model_name": "noop"}])
    reg = RecognizerRegistry(supported_languages=["en"]); reg.load_predefined_recognizers(nlp_engine=nlp)
    eng = AnalyzerEngine(registry=reg, nlp_engine=nlp, supported_languages=["en"])
    fp, hit = {}, 0
    for c in (c for c in cases if c["kind"] == "finance"):
        rs = [r for r in eng.analyze(c["text"], language="en") if r.entity_type in PII_TYPES]
        hit += bool(rs)
        for r in rs: fp.setdefault(r.entity_type, []).append(c["text"][r.start:r.end])
    print(f"finance false positives (Presidio out of the box): {hit} finance headlines hit; "
          + "; ".join(f"{t} {len(v)} e.g. {v[:3]}" for t, v in fp.items()))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--pii-share", type=float, default=0.1)
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    cases = [json.loads(l) for l in CASES.read_text().splitlines() if l.strip()]
    t0 = time.perf_counter(); scrubber = Scrubber(allow=ALLOW)
    print(f"Scrubber start-up (Presidio import and recognizers): {time.perf_counter() - t0:.1f} s")
    quality(cases, scrubber)
    presidio_out_of_the_box(cases)
    texts = generate(a.n, a.pii_share, a.seed, [c["text"] for c in cases if c["kind"] == "pii"])
    skipped = sum(not any(rx.search(t) for rx in _MAY.values()) for t in texts)
    print(f"throughput on {len(texts):,} headlines ({a.pii_share:.0%} with personal data); {skipped / len(texts):.1%} skip the analyzer "
          f"on the pre-checks; {os.cpu_count()} cores")
    t0, c0 = time.perf_counter(), time.process_time(); one = scrubber.scrub_many(texts)
    dt1, cpu1 = time.perf_counter() - t0, time.process_time() - c0
    print(f"  scrub_many, 1 process:       {len(texts) / dt1:9,.0f} headlines/s wall ({dt1:.1f} s); "
          f"{len(texts) / cpu1:9,.0f} per CPU-second ({cpu1:.1f} s CPU)")
    st = Settings()
    c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter(); par = scrub_parallel(texts, st, allow=ALLOW, min_parallel=0); dtn = time.perf_counter() - t0
    c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpun = (c1.ru_utime + c1.ru_stime) - (c0.ru_utime + c0.ru_stime)
    print(f"  scrub_parallel, {st.news_workers} processes: {len(texts) / dtn:9,.0f} headlines/s wall ({dtn:.1f} s, worker start-up included); "
          f"{cpun:.1f} s CPU in the workers; same results as 1 process: {par == one}")
    print(f"  load average during the run: {os.getloadavg()[0]:.1f} (other processes on the machine share its cores)")
    print(f"  replaced: {sum(bool(r.found) for r in one):,} headlines")


if __name__ == "__main__":
    sys.exit(main())
