"Service-level tests of `load_yahoo`: real yfinance against the recorded Yahoo responses served on 127.0.0.1"
import atexit, json, os, shutil, subprocess, sys, tempfile, time
from pathlib import Path
import numpy as np, pandas as pd, pytest
import yfinance as yf
from yfinance.data import YfData
from stock_workbench.config import Settings, SwbError
from stock_workbench.sources import OHLCV_COLUMNS
from stock_workbench.yahoo import load_yahoo

sys.path.insert(0, str(Path(__file__).parent))
from yahoo_server import FIXTURES, YahooServer, closed_url, serve_yahoo

# yfinance keeps time zones and cookies in a user-wide cache: give these tests their own, so nothing a real run
# stored is read here (and nothing from here is kept); it must be set before yfinance first opens it
_YF_CACHE = tempfile.mkdtemp(prefix="yf-cache-")
yf.set_tz_cache_location(_YF_CACHE)
atexit.register(shutil.rmtree, _YF_CACHE, True)


@pytest.fixture(scope="module")
def server():
    with YahooServer() as srv: yield srv


@pytest.fixture
def settings(server, tmp_path):
    server.requests.clear()
    return Settings(tmp_path, env={"SWB_YAHOO_BASE_URL": server.url})


def recorded(sym:str)->pd.DataFrame:
    "The fixture's bars for `sym`, read straight from the JSON, in the canonical schema"
    res = json.loads((FIXTURES/"chart"/f"{sym}.json").read_text())["chart"]["result"][0]
    q = res["indicators"]["quote"][0]
    dates = pd.to_datetime(res["timestamp"], unit="s", utc=True).tz_convert("America/New_York").normalize().tz_localize(None)
    return pd.DataFrame({"symbol": pd.Series([sym]*len(dates), dtype="str"), "date": dates.astype("datetime64[ns]"),
                         **{c: np.array(q[c], dtype="float64") for c in ["open", "high", "low", "close"]},
                         "adj_close": np.array(res["indicators"]["adjclose"][0]["adjclose"], dtype="float64"),
                         "volume": np.array(q["volume"], dtype="float64")})


def test_panel_equals_the_recorded_bars(settings):
    p = load_yahoo(["MSFT", "aapl"], "2024-01-01", "2024-02-29", settings=settings)
    want = pd.concat([recorded("MSFT"), recorded("AAPL")], ignore_index=True)
    pd.testing.assert_frame_equal(p, want, check_exact=True)
    assert list(p.columns) == OHLCV_COLUMNS and len(p) == 82
    assert p.date.min() == pd.Timestamp("2024-01-02") and pd.Timestamp("2024-01-15") not in set(p.date)  # MLK day


def test_dates_are_inclusive_and_default_from_settings(server, settings, tmp_path):
    p = load_yahoo(["AAPL"], "2024-01-03", "2024-01-05", settings=settings)
    assert p.date.dt.strftime("%Y-%m-%d").tolist() == ["2024-01-03", "2024-01-04", "2024-01-05"]
    s = Settings(tmp_path, env={"SWB_YAHOO_BASE_URL": server.url, "SWB_YAHOO_START": "2024-02-26"})
    p = load_yahoo(["AAPL", "AAPL"], settings=s)  # no end: up to the latest session; duplicates read once
    assert p.date.dt.strftime("%Y-%m-%d").tolist() == ["2024-02-26", "2024-02-27", "2024-02-28", "2024-02-29"]


def test_every_request_goes_to_the_base_url(server, settings):
    load_yahoo(["AAPL"], "2024-01-02", "2024-01-31", settings=settings)
    hosts = {r["host"] for r in server.requests}
    assert hosts <= {"fc.yahoo.com", "query1.finance.yahoo.com", "query2.finance.yahoo.com", "guce.yahoo.com"}, hosts
    chart = [r["query"] for r in server.requests if r["path"] == "/v8/finance/chart/AAPL" and "period1" in r["query"]]
    ny = lambda d: int(pd.Timestamp(d, tz="America/New_York").timestamp())
    assert [(int(q["period1"]), int(q["period2"]), q["interval"]) for q in chart] == [(ny("2024-01-02"), ny("2024-02-01"), "1d")]


def test_yfinance_state_is_restored(settings):
    before = YfData()._session
    load_yahoo(["AAPL"], "2024-01-02", "2024-01-05", settings=settings)
    assert YfData()._session is before and YfData()._crumb != "Pn5UBmUejt8"
    assert YfData.cache_get.cache_info().currsize == 0  # no local response is left for a later call to Yahoo
    assert yf.config.debug.hide_exceptions is True


def test_unknown_symbols_are_named_in_one_line(settings):
    with pytest.raises(SwbError, match=r"^yahoo: unknown or delisted symbol ZZZZ$"):
        load_yahoo(["AAPL", "ZZZZ"], "2024-01-02", settings=settings)
    # yfinance asks the quote endpoint for the first two, then reports a missing time zone: both read as unknown
    with pytest.raises(SwbError, match=r"^yahoo: unknown or delisted symbols ZZZA, ZZZB, ZZZC$"):
        load_yahoo(["ZZZA", "ZZZB", "ZZZC", "MSFT"], "2024-01-02", settings=settings)


def test_many_symbols_on_threads(settings):
    unknown = [f"ZZ{c}" for c in "ABCDEFGHIJKL"]
    with pytest.raises(SwbError, match=rf"^yahoo: unknown or delisted symbols {', '.join(unknown)}$"):
        load_yahoo(["AAPL", *unknown, "MSFT"], "2024-01-02", settings=settings)  # named in the order given


def test_no_rows_in_range(settings):
    with pytest.raises(SwbError, match=r"^yahoo: no rows for AAPL, MSFT from 2030-01-01 to 2030-01-31$"):
        load_yahoo(["AAPL", "MSFT"], "2030-01-01", "2030-01-31", settings=settings)
    with pytest.raises(SwbError, match=r"^yahoo: unknown or delisted symbol ZZZZ; no rows for AAPL from 2024-01-06 to 2024-01-07$"):
        load_yahoo(["ZZZZ", "AAPL"], "2024-01-06", "2024-01-07", settings=settings)  # a weekend


def test_unreachable_server_fails_fast(tmp_path):
    dead = closed_url()
    t = time.perf_counter()
    with pytest.raises(SwbError, match=rf"^yahoo: cannot reach {dead[7:]} \(curl: \(7\) Failed to connect .*\)$"):
        load_yahoo(["AAPL", "MSFT"], "2024-01-02", settings=Settings(tmp_path, env={"SWB_YAHOO_BASE_URL": dead}))
    assert time.perf_counter() - t < 10


@pytest.mark.parametrize("args, msg", [
    (dict(symbols=[]), "yahoo: no symbols given"),
    (dict(symbols=["NO SPACES"]), "not a valid symbol: 'NO SPACES'"),
    (dict(symbols=["AAPL"], start="soon"), "yahoo: start='soon' is not a date"),
    (dict(symbols=["AAPL"], start="2024-02-01", end="2024-01-01"), "yahoo: start 2024-02-01 is after end 2024-01-01"),
])
def test_bad_arguments(settings, server, args, msg):
    with pytest.raises(SwbError, match="^" + msg.replace("(", r"\(").replace(")", r"\)") + "$"):
        load_yahoo(**{"start": "2024-01-02", **args}, settings=settings)
    assert server.requests == []  # refused before any request


def test_subprocess_reaches_the_server_through_the_environment(tmp_path):
    code = ("from stock_workbench.yahoo import load_yahoo; "
            "p = load_yahoo(['AAPL', 'MSFT'], '2024-02-01', '2024-02-29'); print(len(p), p.adj_close.iloc[-1])")
    with serve_yahoo() as url:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                             env={**os.environ, "SWB_HOME": str(tmp_path), "SWB_YAHOO_BASE_URL": url})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["40", str(recorded("MSFT").adj_close.iloc[-1])]
    assert out.stderr == ""  # quiet: no yfinance warnings, no progress bar for two symbols
