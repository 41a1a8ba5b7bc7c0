"Market series (VIX, FRED downloads) end to end through `swb`: ingest, info, features, never forecast; bad files leave the store unchanged"
import json
import numpy as np, pandas as pd, pytest
from conftest import sample, swb, tree_digest, write_yahoo_csv
from test_cli import one_line_error

FAST = {"SWB_TRAIN_DAYS": "126", "SWB_REFIT_DAYS": "63"}


def vix_values(days):
    "A positive VIX-like path, one value per day"
    return np.round(15 * np.exp(np.cumsum(np.random.default_rng(4).normal(0, 0.05, len(days)))), 2)


@pytest.fixture
def market(home, tmp_path):
    "A home with 3 synthetic symbols (2015-01-02, one year) and two VIX files: Yahoo OHLC up to 2015-06-30, FRED after it"
    r = swb("ingest", "--source", "synthetic", "--symbols", 3, "--years", 1, "--seed", 5)
    assert r.returncode == 0, r.stderr
    days = pd.bdate_range("2014-01-02", "2015-12-31")
    v = pd.Series(vix_values(days), index=days)
    early = v[v.index <= "2015-06-30"]
    ohlc = pd.DataFrame({"Date": early.index.strftime("%Y-%m-%d"), "Open": early.values, "High": early.values + 1, "Low": early.values - 0.5,
                         "Close": early.values, "Adj Close": early.values, "Volume": 0})
    ohlc.to_csv(tmp_path / "%5EVIX.csv", index=False)
    late = v[v.index > "2015-06-30"]
    text = ["DATE,VIXCLS"] + [f"{d:%Y-%m-%d},{'.' if i % 10 == 3 else f'{x:.2f}'}" for i, (d, x) in enumerate(late.items())]
    (tmp_path / "VIXCLS.csv").write_text("\n".join(text) + "\n")
    missing = [d for i, d in enumerate(late.index) if i % 10 == 3]
    return home, tmp_path, v.drop(missing), missing


def test_ingest_info_features(market):
    home, tmp, v, missing = market
    r = swb("ingest", "--source", "csv", "--path", tmp / "%5EVIX.csv", "--series", "market", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert (out["market_series"], out["rows"], out["dropped_missing"], out["inserted"]) == (["^VIX"], int((v.index <= "2015-06-30").sum()), 0, out["rows"])
    r = swb("ingest", "--source", "csv", "--path", tmp / "VIXCLS.csv", "--symbol", "^VIX", "--series", "market")
    assert r.returncode == 0, r.stderr
    assert f"{len(missing)} missing value(s) dropped" in r.stdout and "never forecast or traded" in r.stdout

    got = json.loads(swb("info", "--json").stdout)
    assert sorted(got["symbols"]) == ["SYN000", "SYN001", "SYN002"]            # the price store: no ^VIX
    assert got["market"]["symbols"] == {"^VIX": {"rows": len(v), "first": "2014-01-02", "last": "2015-12-31"}}
    text = swb("info").stdout
    assert "market series" in text and "^VIX" in text

    r = swb("features", "--output", tmp / "f.csv")
    assert r.returncode == 0, r.stderr
    f = pd.read_csv(tmp / "f.csv", parse_dates=["date"])
    assert {"vix_level", "vix_chg_1d", "vix_chg_5d", "vix_pct_1y"} <= set(f.columns)
    assert sorted(f.symbol.unique()) == ["SYN000", "SYN001", "SYN002"]
    one = f[f.symbol == "SYN000"].set_index("date")
    # as of each session: the last VIX value dated on or before it (a FRED "." day has the day before's)
    asof = v.reindex(one.index, method="ffill")
    np.testing.assert_allclose(one.vix_level.to_numpy(), asof.to_numpy(), rtol=0, atol=1e-9)
    gap = [d for d in missing if d in one.index]
    assert gap and all(one.vix_level[d] == v[v.index < d].iloc[-1] for d in gap)
    lv = np.log(v.to_numpy())
    chg = pd.Series(np.r_[np.nan, lv[1:] - lv[:-1]], index=v.index).reindex(one.index, method="ffill")
    np.testing.assert_allclose(one.vix_chg_1d.to_numpy(), chg.to_numpy(), rtol=0, atol=1e-9)
    last = v[v.index <= one.index[-1]].iloc[-252:]
    assert one.vix_pct_1y.iloc[-1] == pytest.approx((last <= last.iloc[-1]).mean())


@pytest.mark.parametrize("body, needle", [
    ("DATE,VIXCLS\n2015-01-02,14.1\n2015-01-05,-3.2\n", "VIXCLS='-3.2' is not positive"),
    ("DATE,VIXCLS\n2015-01-02,14.1\n2015-01-05,15\n2015-01-02,16\n", "DATE='2015-01-02' repeats row 1"),
])
def test_bad_file_is_refused_and_writes_nothing(market, body, needle):
    home, tmp, v, missing = market
    assert swb("ingest", "--source", "csv", "--path", tmp / "%5EVIX.csv", "--series", "market").returncode == 0
    before = tree_digest(home / "market")
    bad = tmp / "BAD.csv"
    bad.write_text(body)
    line = one_line_error(swb("ingest", "--source", "csv", "--path", bad, "--symbol", "^VIX", "--series", "market"), needle)
    assert "BAD.csv row 2" in line or "BAD.csv row 3" in line, line
    assert tree_digest(home / "market") == before and before


def test_a_symbol_is_prices_or_market_not_both(market):
    home, tmp, v, missing = market
    data_before = tree_digest(home / "data")
    one_line_error(swb("ingest", "--source", "csv", "--path", tmp / "VIXCLS.csv", "--symbol", "SYN000", "--series", "market"),
                   "SYN000 is a traded price series")
    assert not (home / "market").exists()
    assert swb("ingest", "--source", "csv", "--path", tmp / "VIXCLS.csv", "--symbol", "^VIX", "--series", "market").returncode == 0
    prices = write_yahoo_csv(sample("X", days=30), tmp / "prices.csv")
    one_line_error(swb("ingest", "--source", "csv", "--path", prices, "--symbol", "^VIX"), "^VIX is a market series")
    assert tree_digest(home / "data") == data_before


def test_never_forecast(market):
    home, tmp, v, missing = market
    assert swb("ingest", "--source", "csv", "--path", tmp / "%5EVIX.csv", "--series", "market").returncode == 0
    r = swb("train", "--model", "naive", "--json", env=FAST)
    assert r.returncode == 0, r.stderr
    r = swb("predict", "--json")
    assert r.returncode == 0, r.stderr
    syms = {row["symbol"] for row in json.loads(r.stdout)["predictions"]}
    assert syms == {"SYN000", "SYN001", "SYN002"}


def test_two_series_with_one_feature_name_and_market_symbols_asked_as_traded(market):
    home, tmp, v, missing = market
    assert swb("ingest", "--source", "csv", "--path", tmp / "%5EVIX.csv", "--series", "market").returncode == 0
    before = tree_digest(home / "market")
    # VIX would name its features vix_* like ^VIX: refused at ingest, never a store every later command refuses
    one_line_error(swb("ingest", "--source", "csv", "--path", tmp / "VIXCLS.csv", "--symbol", "VIX", "--series", "market"),
                   "market series VIX and ^VIX would both name features vix_*")
    assert tree_digest(home / "market") == before
    assert swb("features", "--output", tmp / "f.csv").returncode == 0
    for cmd in (["evaluate", "--model", "naive"], ["features", "--output", tmp / "g.csv"], ["train", "--model", "naive"]):
        one_line_error(swb(*cmd, "--symbols", "SYN000,^VIX"), "^VIX is a market series: a feature of every symbol, never forecast or traded")
    one_line_error(swb("evaluate", "--model", "naive", "--horizon", "0"), "--horizon must be a whole number of sessions >= 1, not 0")


@pytest.mark.parametrize("setting, needle", [("SWB_VERDICT_ALPHA=1.5", "setting verdict_alpha=1.5 from SWB_VERDICT_ALPHA: must be a number between 0 and 1"),
                                             ("SWB_BOOTSTRAP_REPS=1", "setting bootstrap_reps=1 from SWB_BOOTSTRAP_REPS: must be a whole number of resamples >= 100"),
                                             ("SWB_GARCH_MIN_OBS=5", "setting garch_min_obs=5 from SWB_GARCH_MIN_OBS: must be a whole number of returns >= 10")])
def test_bad_evaluation_settings_are_errors(market, setting, needle):
    k, val = setting.split("=")
    one_line_error(swb("evaluate", "--model", "ewma", env={k: val, **FAST}), needle)
