"Issue 10, kind 2: Yahoo-style symbols (^GSPC, BRK.B, BF-B, EURUSD=X) round-trip through ingest, info, features, train, predict, the EOD job and the stream"
import json, shutil, subprocess
import pandas as pd, pytest, redis
from conftest import BIN, FIELD, swb, tree_digest, write_yahoo_csv
from stock_workbench.config import Settings
from stock_workbench.leases import StreamKeys
from stock_workbench.replay import publish_ticks
from stock_workbench.synthetic import synthetic_market
from stock_workbench.ticks import tick_frame
from test_field_parse import write_dates

GSPC = FIELD / "^GSPC.csv"
OTHERS = ["BRK.B", "BF-B", "EURUSD=X"]
SYMS = sorted(["^GSPC", *OTHERS])
FAST = {"SWB_TRAIN_DAYS": "252", "SWB_REFIT_DAYS": "126", "SWB_PROMOTE_EVAL_DAYS": "126", "SWB_BACKTEST_DAYS": "126"}
URL = "redis://127.0.0.1:6379/0"


def ok(r):
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    return r


def one_line(r, *needles):
    assert r.returncode != 0, r.stdout
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("swb: error: ") and "Traceback" not in r.stdout + r.stderr, r.stderr
    for n in needles: assert n in lines[0], (n, lines[0])


def info(**kw):
    return json.loads(ok(swb("info", "--json", **kw)).stdout)


def others_panel() -> pd.DataFrame:
    "Synthetic daily bars for the other symbols on the field file's sessions (2021-01-04 .. 2022-12-30)"
    gspc = pd.read_csv(GSPC, parse_dates=["Date"])
    mk = synthetic_market(len(OTHERS), len(gspc) / 252, seed=5, start=str(gspc["Date"].iloc[0].date()))
    assert mk["date"].drop_duplicates().tolist() == gspc["Date"].tolist(), "sessions differ"
    return mk.assign(symbol=mk["symbol"].map(dict(zip(sorted(mk["symbol"].unique()), OTHERS))))


def test_caret_symbol_from_file_name_and_from_symbol_flag(home, tmp_path):
    "^GSPC.csv is ^GSPC; a browser's %5EGSPC.csv too; --symbol ^gspc names any file; bad names are one line"
    ok(swb("ingest", "--source", "csv", "--path", GSPC))
    i = info()
    assert list(i["symbols"]) == ["^GSPC"] and i["symbols"]["^GSPC"]["rows"] == 503, i
    assert (i["symbols"]["^GSPC"]["first"], i["symbols"]["^GSPC"]["last"]) == ("2021-01-04", "2022-12-30")
    before = tree_digest(home / "data")
    shutil.copy(GSPC, tmp_path / "%5EGSPC.csv")
    ok(swb("ingest", "--source", "csv", "--path", tmp_path / "%5EGSPC.csv"))          # the same rows again: nothing changes
    assert list(info()["symbols"]) == ["^GSPC"]
    shutil.copy(GSPC, tmp_path / "download (1).csv")
    one_line(swb("ingest", "--source", "csv", "--path", tmp_path / "download (1).csv"), "download (1)", "--symbol")
    ok(swb("ingest", "--source", "csv", "--path", tmp_path / "download (1).csv", "--symbol", "^gspc"))
    assert list(info()["symbols"]) == ["^GSPC"] and info()["symbols"]["^GSPC"]["rows"] == 503
    for bad in ["^", "GS PC", "../GSPC", "A/B", "^^GSPC"]:
        one_line(swb("ingest", "--source", "csv", "--path", GSPC, "--symbol", bad), "not a valid symbol")
    assert tree_digest(home / "data") == before
    # a folder: ^GSPC.csv as it is named on disk beside another Yahoo symbol; neither fails the other
    folder = tmp_path / "folder"; folder.mkdir()
    shutil.copy(GSPC, folder / "^GSPC.csv")
    write_yahoo_csv(others_panel().query("symbol == 'BF-B'"), folder / "BF-B.csv")
    ok(swb("ingest", "--source", "csv", "--path", folder))
    i = info()["symbols"]
    assert sorted(i) == ["BF-B", "^GSPC"] and i["^GSPC"]["rows"] == i["BF-B"]["rows"] == 503, i




def test_yahoo_symbols_round_trip(home, tmp_path, monkeypatch, rkeys):
    for k, v in FAST.items(): monkeypatch.setenv(k, v)
    oth = others_panel()
    gspc = pd.read_csv(GSPC)
    last = gspc["Date"].iloc[-1]                                   # 2022-12-30: the EOD session
    # a folder of all but the last session: ^GSPC as a browser saves it, the others as Yahoo names them
    folder = tmp_path / "csv"; folder.mkdir()
    gspc.iloc[:-1].to_csv(folder / "%5EGSPC.csv", index=False)
    for s, g in oth.groupby("symbol"): write_yahoo_csv(g[g["date"] < last], folder / f"{s}.csv")
    r = ok(swb("ingest", "--source", "csv", "--path", folder))
    assert r.stderr == "", r.stderr
    i = info()
    assert sorted(i["symbols"]) == SYMS, i
    assert {s: v["last"] for s, v in i["symbols"].items()} == {s: "2022-12-29" for s in SYMS}
    stored = tree_digest(home / "data")
    assert any("GSPC" in p for p in stored) and any("EURUSD" in p for p in stored)

    # features for the symbols by name, to a file
    ok(swb("features", "--symbols", ",".join(SYMS), "--output", tmp_path / "f.csv"))
    f = pd.read_csv(tmp_path / "f.csv")
    assert sorted(f["symbol"].unique()) == SYMS
    ok(swb("features", "--symbols", "^gspc,brk.b", "--output", tmp_path / "g.csv"))
    assert sorted(pd.read_csv(tmp_path / "g.csv")["symbol"].unique()) == ["BRK.B", "^GSPC"]

    # train (MLflow artifacts are named after a symbol), predict
    t = json.loads(ok(swb("train", "--model", "gbm", "--json")).stdout)
    assert t["alias"] == "champion"
    from mlflow import MlflowClient
    arts = {a.path for a in MlflowClient(f"sqlite:///{home}/mlflow.db").list_artifacts(t["run_id"])}
    assert any(a.startswith("fan_1d_") for a in arts), arts
    p = json.loads(ok(swb("predict", "--json")).stdout)
    assert p["date"] == "2022-12-29" and sorted(row["symbol"] for row in p["predictions"]) == SYMS
    text = ok(swb("predict")).stdout
    for s in SYMS: assert s in text, s

    # a replayed ^GSPC tick lands in swb:latest:^GSPC, with a forecast from the stored history
    r_, keys = rkeys
    ticks = tmp_path / "ticks.csv"
    ticks.write_text("symbol,event_time,price,size,tick_id\n^gspc,2022-12-30T14:30:00Z,87.2,10,g0\n^GSPC,2022-12-30T14:30:30Z,87.3,10,g1\n"
                     "EURUSD=X,2022-12-30T14:30:00Z,50.1,10,e0\n")
    r = ok(swb("replay", "--csv", ticks))
    assert r.stderr == "", r.stderr
    s = Settings()
    end = pd.Timestamp("2022-12-30 15:30").value // 10**6
    publish_ticks(r_, tick_frame(["^GSPC", "EURUSD=X"], [end] * 2, [87.4, 50.2], [1] * 2, ["g-end", "e-end"]), keys, s.stream_shards)
    st = subprocess.run([str(BIN / "swb"), "stream", "--idle-exit", "2"], capture_output=True, text=True, timeout=180)
    assert st.returncode == 0 and "Traceback" not in st.stderr, st.stderr
    lat = {k.decode(): v.decode() for k, v in r_.hgetall(f"{keys.prefix}:latest:^GSPC").items()}
    assert lat["price"] == "87.4" and lat["minute"] == "2022-12-30 14:30" and lat["trades"] == "2", lat
    assert "pred_p50_1d" in lat and lat["model_version"] == t["version"], lat
    assert r_.exists(f"{keys.prefix}:latest:EURUSD=X")

    # the EOD job brings the store up to date from the folder, now with the last session, and forecasts every symbol
    # (and kind 1 in the EOD job: BRK.B's dates as yfinance's history() writes them, BF-B's as YYYYMMDD integers)
    gspc.to_csv(folder / "%5EGSPC.csv", index=False)
    enc = {"BRK.B": lambda d: d.tz_localize("America/New_York").strftime("%Y-%m-%d %H:%M:%S%z").str.replace(r"(\d\d)(\d\d)$", r"\1:\2", regex=True),
           "BF-B": lambda d: d.strftime("%Y%m%d").astype(int), "EURUSD=X": lambda d: d.strftime("%Y-%m-%d")}
    for sym, g in oth.groupby("symbol"): write_dates(g, folder / f"{sym}.csv", enc[sym](pd.DatetimeIndex(g["date"])))
    assert open(folder / "BRK.B.csv").readlines()[1].startswith("2021-01-04 00:00:00-05:00,")
    r = swb("run", "eod", "--date", last, env={"SWB_EOD_SOURCE": "csv", "SWB_EOD_CSV_PATH": str(folder)})
    assert r.returncode == 0 and r.stderr == "", (r.stdout, r.stderr)
    assert r.stdout.strip().startswith(f"eod {last}: done.")
    assert {s: v["last"] for s, v in info()["symbols"].items()} == {s: last for s in SYMS}
    from stock_workbench.ledger import PredictionLedger
    led = PredictionLedger(home / "predictions").read(source="eod")
    assert sorted(led["symbol"].unique()) == SYMS and (led["date"] == pd.Timestamp(last)).all()
    html = (home / "reports" / "eod" / last / "eod.html").read_text()
    for s in SYMS: assert s in html, s
