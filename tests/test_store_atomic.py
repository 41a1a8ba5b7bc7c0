"An ingest killed in the middle of writing leaves the previous store version intact and readable"
import os, signal, subprocess, sys, time
from pathlib import Path
import pandas as pd
from conftest import BIN, sample, swb
from stock_workbench.config import Settings
from stock_workbench.store import OhlcvStore


def _data_files(path: Path) -> set:
    return {p for p in path.rglob("*.parquet")}


def test_sigkill_during_write_keeps_previous_version(home):
    store = OhlcvStore.from_settings(Settings(home))
    old = pd.concat([sample("OLD", 60), sample("ZZZ", 60, seed=9)], ignore_index=True)
    store.write(old, source="before")
    before, log_before, version = store.read(), sorted((home / "data" / "_delta_log").iterdir()), store.version
    killed_mid_write = False
    for attempt in range(3):
        files0 = _data_files(home / "data")
        p = subprocess.Popen([str(BIN / "swb"), "ingest", "--source", "synthetic", "--symbols", "300", "--years", "10"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 120
        while p.poll() is None and time.time() < deadline:
            if _data_files(home / "data") - files0:      # new data files exist: the write is under way
                os.kill(p.pid, signal.SIGKILL); break
            time.sleep(0.002)
        p.wait()
        log_now = sorted((home / "data" / "_delta_log").iterdir())
        if p.returncode == -signal.SIGKILL and log_now == log_before:
            killed_mid_write = True
            break
        store.write(old)  # the commit won the race: start again from a clean known state
        before, log_before, version = store.read(), log_now, store.version
    assert killed_mid_write, "never caught the ingest between writing data files and committing"
    assert len(_data_files(home / "data")) > len(files0)           # half-written files exist ...
    assert store.version == version                                 # ... but no commit references them
    pd.testing.assert_frame_equal(store.read(), before)
    r = swb("info", "--json")
    assert r.returncode == 0 and '"OLD"' in r.stdout and '"SYN001"' not in r.stdout
    # and the next ingest works on top of the leftovers
    r = swb("ingest", "--source", "synthetic", "--symbols", "3", "--years", "1")
    assert r.returncode == 0, r.stderr
    assert len(store.read(["SYN001"])) == 252
