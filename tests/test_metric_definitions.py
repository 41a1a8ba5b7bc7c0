"""One definition per metric (issue 11): on one hand-checkable toy ledger, every place that shows a hit rate, coverage, MAE, pinball or
calibration shows the same numbers: `metrics.accuracy`, the ledger, the EOD report's score tables and the dashboard's summaries.
(The stream job shows no accuracy metric: it forecasts and alerts only.)"""
import numpy as np, pandas as pd, pytest
from stock_workbench import dashboard, figures, ledger, metrics

DATES = pd.to_datetime(["2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05"])   # forecasts from the first three closes
W = 0.0125                                                                       # every band is p50 -/+ W
# realized log returns y (from each forecast date to the next) and the forecast p50, per symbol
Y = {"A": [.01, -.02, .03], "B": [-.01, 0., .02], "C": [.01, -.01, .02]}         # B's second session does not move: y = 0
P50 = {"A": [0., 0., .01], "B": [.005, .01, 0.], "C": [-.005, -.005, .01]}        # four forecasts with p50 = 0

# Hand-checked, row by row (A1 A2 A3 B1 B2 B3 C1 C2 C3):
#  hit: .5 .5 1 | 0 - .5 | 0 1 1     (p50 = 0 scores half; B2's y = 0 is no move) -> 4.5 / 8
#  up:   1  0 1 | 0 - 1  | 1 0 1     -> 5 / 8
#  |y - p50|: .01 .02 .02 | .015 .01 .02 | .015 .005 .01 -> .125 / 9
#  where y fell: A1 in, A2 below p10, A3 above p90, B1 below p10, B2 in (below p50), B3 above, C1 above, C2 in (below p50), C3 in (p50..p90)
HIT, SHARE_UP, MAE, N = 4.5 / 8, 5 / 8, .125 / 9, 9
COVERAGE, BELOW = 4 / 9, {"below_p10": 2 / 9, "below_p50": 4 / 9, "below_p90": 6 / 9}
PIT = [2 / 9, 2 / 9, 2 / 9, 3 / 9]                    # below p10, p10 to p50, p50 to p90, p90 and above
OLD_SIGN_RULE_HIT = 2 / 9                             # what sign(y) == sign(p50) over all rows gave: A3, C2 only


def _pinball(y, p50):
    "Textbook pinball loss of the three quantiles p50 - W, p50, p50 + W, averaged"
    loss = 0.
    for q, p in ((.1, p50 - W), (.5, p50), (.9, p50 + W)):
        d = y - p
        loss += q * d if d >= 0 else (q - 1) * d
    return loss / 3


PINBALL = np.mean([_pinball(y, p) for s in Y for y, p in zip(Y[s], P50[s])])


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    "The toy ledger recorded in a real PredictionLedger, the prices whose log returns are Y, and the realized rows"
    prices = pd.concat([pd.DataFrame({"symbol": s, "date": DATES, "adj_close": 100 * np.exp(np.r_[0., np.cumsum(Y[s])])})
                        for s in Y], ignore_index=True)
    prices["close"] = prices["adj_close"]
    wide = pd.concat([pd.DataFrame({"symbol": s, "date": DATES[:3], "p10_1d": np.subtract(P50[s], W), "p50_1d": P50[s],
                                    "p90_1d": np.add(P50[s], W)}) for s in Y], ignore_index=True)
    led = ledger.PredictionLedger(tmp_path_factory.mktemp("ledger") / "predictions")
    led.record(ledger.forecasts_long(wide, "1", "naive", "eod", model_id="run-1"))
    rows = led.read()
    assert len(rows) == N
    return rows, prices, ledger.realize(rows, prices)


def _same(got: dict):
    "Every metric a place shows equals the hand-computed one"
    for k, v in dict(n=N, hit_rate=HIT, share_up=SHARE_UP, mae=MAE, coverage_80=COVERAGE, pinball=PINBALL, **BELOW).items():
        if k in got: assert got[k] == pytest.approx(v, abs=1e-12), (k, got[k], v)


def test_the_hand_numbers_differ_from_the_old_sign_rule():
    assert HIT != pytest.approx(OLD_SIGN_RULE_HIT)


def test_evaluate_accuracy(toy):
    _, _, sc = toy
    a = metrics.accuracy(sc["y"], sc["p10"], sc["p50"], sc["p90"])
    assert set(a) >= {"n", "hit_rate", "share_up", "mae", "coverage_80", "pinball", *BELOW}
    _same(a)


def test_the_ledger(toy):
    _, _, sc = toy
    acc = ledger.accuracy_by_version(sc)
    assert len(acc) == 1 and acc["model_version"].iloc[0] == "1"
    _same(acc.iloc[0].to_dict())
    assert (acc["first"].iloc[0], acc["last"].iloc[0]) == (DATES[0], DATES[2])
    cal = ledger.calibration(sc).iloc[0]
    _same(cal.to_dict())
    assert cal["inside"] == pytest.approx(COVERAGE) and cal["above_p90"] == pytest.approx(PIT[3])
    assert ledger.pit_shares(ledger.calibration(sc))[list(ledger.PIT_BINS)].iloc[0].tolist() == pytest.approx(PIT)


def test_the_eod_report_tables(toy):
    _, _, sc = toy
    t = figures.score_tables(sc, DATES[3])
    _same(t["accuracy"].iloc[0].to_dict())
    _same(t["calibration"].iloc[0].to_dict()); _same(t["calibration_all"].iloc[0].to_dict())
    # the rows realized at the last close: A3 (hit, above), B3 (p50 = 0: half, above), C3 (hit, inside)
    assert t["today"]["symbol"].tolist() == ["A", "B", "C"] and t["today"]["hit"].tolist() == [1., .5, 1.]
    today = t["today_accuracy"]
    assert (today["n"], today["hit_rate"], today["share_up"], today["coverage_80"]) == (3, pytest.approx(2.5 / 3), 1., pytest.approx(1 / 3))
    assert "hit rate 83%" in figures.realized_line(today) and "33% inside" in figures.realized_line(today)
    fig = figures.calibration_figure(t["calibration"])
    assert [b.get_height() for b in fig.axes[0].patches] == pytest.approx(PIT)


def test_the_dashboard(toy):
    rows, prices, _ = toy
    ra = dashboard.realized_accuracy(rows, prices)
    _same(ra["overall"].iloc[0].to_dict()); _same(ra["by_source"].iloc[0].to_dict()); _same(ra["calibration"].iloc[0].to_dict())
    html = dashboard.calibration_html(ra)
    assert "<td>9</td>" in html and "<th>share_up</th>" in html and "<td>0.625</td>" in html, html
    # one symbol's summary under the price chart: A's hits .5, .5, 1; inside once; |errors| .01 .02 .02
    fp = dashboard.forecast_prices(rows[rows["symbol"] == "A"], prices[prices["symbol"] == "A"])
    s = dashboard.forecast_summary(fp)
    assert (s["realized"], s["hit_rate"], s["share_up"], s["inside_80"]) == (3, pytest.approx(2 / 3), pytest.approx(2 / 3), pytest.approx(1 / 3))
    assert s["mae"] == pytest.approx(.05 / 3) and s["pinball"] == pytest.approx(np.mean([_pinball(y, p) for y, p in zip(Y["A"], P50["A"])]))
    # all three symbols' summaries pooled are the ledger's numbers
    fps = pd.concat([dashboard.forecast_prices(rows[rows["symbol"] == x], prices[prices["symbol"] == x]) for x in Y], ignore_index=True)
    _same({"n": len(fps), "hit_rate": np.nanmean(fps["hit"]), "coverage_80": fps["inside_80"].mean()})
