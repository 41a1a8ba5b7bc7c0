"Issue 10, kinds 5 and 7: prices of any magnitude print readably; successful runs are quiet on stderr"
import json, re
import numpy as np, pandas as pd, pytest
from conftest import FIELD, built_once, swb
from stock_workbench.alerts import alert_text, move_alerts
from stock_workbench.display import format_band, format_price

NUMBER = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+|\d+)?\.?\d+(?:e[-+]?\d+)?")


def _numbers(text: str) -> list[tuple[float, str]]:
    "Every number printed in `text`, with the text it was printed as"
    return [(float(m.group().replace(",", "")), m.group()) for m in NUMBER.finditer(text)]


def _decimals(tok: str) -> int:
    "Decimals a printed number carries (a mantissa's, plus its exponent for 1.2e-07)"
    mant, _, exp = tok.lstrip("+-").partition("e")
    d = len(mant.split(".")[1]) if "." in mant else 0
    return d - int(exp or 0)


def _shows(value: float, tok: str) -> bool:
    "`tok` prints `value` to its own precision and with at least 3 significant digits' worth of accuracy"
    printed = float(tok.replace(",", ""))
    return (abs(printed - value) <= 0.5 * 10 ** -_decimals(tok) * (1 + 1e-9) + 1e-300
            and abs(printed - value) <= 5e-3 * abs(value))


def _find_in_order(values: list[float], text: str) -> list[str]:
    "The printed tokens that show `values`, matched in order; fails naming the first value not shown"
    toks, i, out = _numbers(text), 0, []
    for v in values:
        while i < len(toks) and not _shows(v, toks[i][1]): i += 1
        assert i < len(toks), f"{v!r} is not printed readably in {text!r}"
        out.append(toks[i][1]); i += 1
    return out


def _variant(path, scale: float, out):
    "The field file with every price multiplied by `scale`: other magnitudes of the same kind"
    df = pd.read_csv(path)
    for c in ["Open", "High", "Low", "Close", "Adj Close"]: df[c] = df[c] * scale
    df.to_csv(out, index=False, float_format="%.10g")
    return out


# the field file (about $0.001), the same series at about $1e-7 (scientific), and at about $2,000 (thousands separators)
CASES = {"PNY": 1.0, "MIC": 1e-4, "BIG": 2e6}


def _penny_forecasts(folder):
    "The field series and its variants ingested, volq trained; the predict table and its JSON"
    import os
    h = folder / "home"
    h.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWB_")}
    env.update(SWB_HOME=str(h), SWB_QUIET="1")
    run = lambda *a: swb(*a, env=env)
    for sym, scale in CASES.items():
        path = FIELD / "penny_4y.csv" if scale == 1 else _variant(FIELD / "penny_4y.csv", scale, folder / f"{sym}.csv")
        r = run("ingest", "--source", "csv", "--path", path, "--symbol", sym)
        assert r.returncode == 0, r.stderr
    r = run("train", "--model", "volq")
    assert r.returncode == 0, r.stderr
    table, js = run("predict"), run("predict", "--json")
    assert table.returncode == 0 and js.returncode == 0, table.stderr + js.stderr
    return table.stdout, json.loads(js.stdout)


@pytest.fixture(scope="module")
def penny_home(tmp_path_factory):
    "The predict table and JSON of the penny home, made once per test run (every xdist worker shares them)"
    return tuple(built_once(tmp_path_factory, "penny-display", _penny_forecasts)[1])


@pytest.mark.parametrize("symbol", list(CASES))
def test_predict_table_prints_prices_by_significant_digits(penny_home, symbol):
    table, js = penny_home
    pred = next(p for p in js["predictions"] if p["symbol"] == symbol)
    row = next(l for l in table.splitlines() if l.split()[:1] == [symbol])
    hs = sorted({int(k[4:-1]) for k in pred if k.startswith("p50_")})
    want = [pred["close"]] + [pred[f"price_{q}_{h}d"] for h in hs for q in ("p10", "p90")]
    toks = _find_in_order(want, row[len(symbol):])
    assert toks[0] != "0.00" and all(t.strip("+-0.,") for t in toks), row
    if symbol == "BIG": assert "," in toks[0], row              # money style: thousands separators


def test_predict_table_penny_band_ends_differ(penny_home):
    "A band whose ends differ in the JSON does not print as the same number twice"
    table, js = penny_home
    for p in js["predictions"]:
        row = next(l for l in table.splitlines() if l.split()[:1] == [p["symbol"]])
        for h in sorted({int(k[4:-1]) for k in p if k.startswith("p50_")}):
            lo, hi = _find_in_order([p[f"price_p10_{h}d"], p[f"price_p90_{h}d"]], row)
            if p[f"price_p10_{h}d"] != p[f"price_p90_{h}d"]: assert lo != hi, row


@pytest.mark.parametrize("symbol", list(CASES))
def test_alert_text_on_real_forecasts(penny_home, symbol):
    "An alert on the predicted prices of the field series and its variants shows its close and band readably"
    _, js = penny_home
    p = next(p for p in js["predictions"] if p["symbol"] == symbol)
    fc = pd.DataFrame([p]).assign(date=pd.Timestamp(p["date"]))
    fc["p50_1d"] = fc["p90_1d"]      # volq's median is no move: raise the alert on its upper quantile instead
    al = move_alerts(fc[["symbol", "date", "close", "p10_1d", "p50_1d", "p90_1d"]], 0.01, js["version"])
    assert len(al) == 1
    text = alert_text(al.iloc[0])
    body = text.split(" on ")[0] + " " + text.split("80% band")[1]   # the close, then the band's prices after the percentages
    _find_in_order([p["close"], p["price_p10_1d"], p["price_p90_1d"]], body)
    assert format_price(p["close"]) in text and format_band(p["price_p10_1d"], p["price_p90_1d"]) in text, text
    assert " 0.00 " not in text and "+0.0%" not in text, text


@pytest.mark.parametrize("close,shown", [(0.0012, "0.0012"), (0.00123456, "0.001235"), (1.2e-7, "1.2e-07"),
                                         (61.05, "61.05"), (2983.1649, "2,983.16")])
def test_alert_text_variants(close, shown):
    fc = pd.DataFrame({"symbol": ["X"], "date": [pd.Timestamp("2024-01-02")], "close": [close],
                       "p10_1d": [np.log(0.9999)], "p50_1d": [np.log(1.08)], "p90_1d": [np.log(1.2)]})
    text = alert_text(move_alerts(fc, 5.0, "1").iloc[0])
    assert f"the close of {shown} on 2024-01-02" in text, text
    assert "-0.01% .. +20.0%" in text, text                  # a band end a hair below zero is not +0.0% or -0.0%
    _find_in_order([close, close * 1.08, close * 0.9999, close * 1.2], " ".join(text.split(" on ", 1)))


QUIET_FORBIDDEN = ("ERROR", "Warning", "KeyboardInterrupt", "Traceback")


def _noise(stderr: str) -> list[str]:
    "stderr lines other than papermill's progress bar that carry an error, a library warning or a traceback"
    lines = [l.strip() for l in stderr.replace("\r", "\n").splitlines()]
    return [l for l in lines if l and not l.startswith("Executing:") and any(w in l for w in QUIET_FORBIDDEN)]


def test_successful_runs_are_quiet(home, monkeypatch):
    "Successful eod (a fresh home: it trains first; then the same date again) and retrain runs print no error, warning or traceback"
    for k, v in {"SWB_SYNTHETIC_SYMBOLS": "3", "SWB_SYNTHETIC_YEARS": "3", "SWB_TRAIN_DAYS": "252", "SWB_REFIT_DAYS": "126",
                 "SWB_PROMOTE_EVAL_DAYS": "126", "SWB_BACKTEST_DAYS": "126"}.items():
        monkeypatch.setenv(k, v)
    runs = [("run", "eod"), ("run", "eod"), ("run", "retrain")]
    for args in runs:
        r = swb(*args)
        assert r.returncode == 0, r.stderr
        assert _noise(r.stderr) == [], (args, r.stderr)
        assert r.stdout.strip() and "done" in r.stdout, r.stdout


def test_runner_shuts_the_kernel_down_without_sigint():
    "The cause of the stray `KeyboardInterrupt caught in kernel`, checked directly: no SIGINT at shutdown"
    import asyncio, signal, subprocess
    from stock_workbench.runner import _ipc_kernel_manager

    async def signals_sent():
        km = _ipc_kernel_manager()(kernel_name="python3")
        await km.start_kernel(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        sent, real = [], km._async_signal_kernel
        async def spy(signum): sent.append(signum); await real(signum)
        km._async_signal_kernel = spy
        await km.shutdown_kernel()
        return sent, await km.is_alive()
    assert asyncio.run(signals_sent()) == ([], False)
