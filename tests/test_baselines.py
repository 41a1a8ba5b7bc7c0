"The ewma and garch volatility baselines through the walk-forward evaluation (issue 11)"
import warnings
import numpy as np, pandas as pd, pytest
from stock_workbench.walkforward import walk_forward
from stock_workbench.features import add_targets, build_features
from stock_workbench.metrics import coverage_80
from stock_workbench.volatility import EwmaModel, FallbackWarning, GarchModel
from stock_workbench.synthetic import synthetic_market

TRAIN, REFIT = 504, 63


@pytest.fixture(scope="module")
def feats():
    "8 symbols x 4 years, plus LATE: listed 300 sessions after the others (too short for garch's first folds)"
    p = synthetic_market(9, 4, seed=5)
    late = p["symbol"] == p["symbol"].unique()[-1]
    first = np.sort(p["date"].unique())[300]
    p = p[~late | (p["date"] >= first)].copy()
    p.loc[late, "symbol"] = "LATE"
    p = p.sort_values(["symbol", "date"], ignore_index=True)
    return add_targets(build_features(p), horizons=(1, 5))


def run(feats, cls, horizon=1, **kw):
    "Walk-forward forecasts and the models it fitted, with the warnings they raised"
    made = []
    def make():
        made.append(cls(horizon, **kw)); return made[-1]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        res = walk_forward(feats, make, horizon=horizon, train_days=TRAIN, refit_days=REFIT, progress=False)
    return res, made, caught


@pytest.mark.parametrize("cls", [EwmaModel, GarchModel])
@pytest.mark.parametrize("horizon", [1, 5])
def test_walk_forward_band(feats, cls, horizon):
    res, made, _ = run(feats, cls, horizon)
    assert len(made) == len(res.attrs["folds"]) >= 4
    assert all(m.context_days == 250 for m in made)
    assert res[["p10", "p50", "p90"]].notna().all().all()          # a band on every row, LATE included
    assert (res.p50 == 0).all() and (res.p10 < 0).all() and (res.p90 > 0).all()
    ok = res.y.notna()
    cov = coverage_80(res.y[ok], res.p10[ok], res.p90[ok])
    assert 0.7 < cov < 0.9, cov


def test_garch_fallbacks_counted(feats):
    res, made, caught = run(feats, GarchModel)
    fb = [m.fallbacks_ for m in made]
    assert all(isinstance(f, dict) for f in fb)
    assert fb[0] == {"LATE": f"too short ({TRAIN - 300 - 1} < 250 returns)"}  # 203 training rows with a return in fold 0
    assert all(set(f) <= {"LATE"} for f in fb) and fb[-1] == {}
    # inside the walk-forward the fallbacks are counted, not warned: the evaluation reports them with the scores
    assert not [w for w in caught if str(w.message).startswith("garch:")]
    assert res.attrs["fallbacks"] == fb                              # one {symbol: reason} per fold
    # a fit outside it warns once, naming the count and the symbol
    with warnings.catch_warnings(record=True) as direct:
        warnings.simplefilter("always")
        f0 = res.attrs["folds"][0]
        GarchModel(1).fit(feats, f0["train_start"], f0["train_end"])   # fold 0's window
    msgs = [str(w.message) for w in direct if issubclass(w.category, FallbackWarning)]
    assert len(msgs) == 1 and "1 of 9 symbol(s) fall back to the ewma band (LATE: too short" in msgs[0], msgs
    # the fallback rows carry the ewma band of the same fold
    ew, _, _ = run(feats, EwmaModel)
    f0 = (res.fold == 0) & (res.symbol == "LATE")
    pd.testing.assert_frame_equal(res[f0].reset_index(drop=True), ew[(ew.fold == 0) & (ew.symbol == "LATE")].reset_index(drop=True))


@pytest.mark.parametrize("cls", [EwmaModel, GarchModel])
def test_walk_forward_point_in_time(feats, cls):
    "Rewriting one symbol's returns after a date changes no forecast made on or before it"
    base, _, _ = run(feats, cls)
    sym, day = "SYN003", np.sort(feats["date"].unique())[700]
    after = (feats.symbol == sym) & (feats.date > day)
    shocked = feats.assign(ret_1d=feats.ret_1d.mask(after, feats.ret_1d * 3))
    moved, _, _ = run(shocked, cls)
    early = (base.date <= day).to_numpy()
    assert early.sum() > 0 and (~early).sum() > 0
    pd.testing.assert_frame_equal(moved[early], base[early])
    late = ((base.symbol == sym) & (base.date > day)).to_numpy()
    assert (moved.p90[late] > base.p90[late]).mean() > 0.9


def test_garch_symbol_not_in_training_is_said_and_counted(feats):
    "A symbol with no training row gets the ewma band: a warning on predict, and the walk-forward counts it as a fallback"
    f0 = walk_forward(feats, lambda: EwmaModel(1), horizon=1, train_days=TRAIN, refit_days=REFIT, progress=False).attrs["folds"][0]
    m = GarchModel(1).fit(feats[feats.symbol != "LATE"], f0["train_start"], f0["train_end"])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        p = m.predict(feats[feats.date > pd.Timestamp(f0["train_end"])])
    assert m.unseen_ == {"LATE": "not in the training window"}
    msgs = [str(w.message) for w in caught if issubclass(w.category, FallbackWarning)]
    assert msgs == ["garch: 1 symbol(s) not in the training window get the ewma band (LATE)"], msgs
    assert p[["p10", "p50", "p90"]].notna().all().all()
    res, made, caught = run(feats[~((feats.symbol == "LATE") & (feats.date <= pd.Timestamp(f0["train_end"])))], GarchModel)
    assert res.attrs["fallbacks"][0].get("LATE") == "not in the training window"
    assert not [w for w in caught if str(w.message).startswith("garch:")]
