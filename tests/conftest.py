"Shared fixtures: a throwaway workbench home, the `swb` console script, Yahoo-style CSV files"
import fcntl, hashlib, json, os, shutil, subprocess, sys
from pathlib import Path
import pandas as pd, pytest
from stock_workbench.synthetic import synthetic_market

BIN = Path(sys.executable).parent
YAHOO_HEADER = ["Date", "Open", "High", "Low", "Close", "Adj Close", "Volume"]


@pytest.fixture
def home(tmp_path, monkeypatch):
    "An empty workbench home, set as SWB_HOME for this test and its subprocesses"
    h = tmp_path / "home"
    h.mkdir()
    monkeypatch.setenv("SWB_HOME", str(h))
    monkeypatch.setenv("SWB_QUIET", "1")
    for k in [k for k in os.environ if k.startswith("SWB_") and k not in ("SWB_HOME", "SWB_QUIET")]:
        monkeypatch.delenv(k)
    return h


def built_once(tmp_path_factory, name: str, make) -> tuple[Path, object]:
    """A folder that `make(folder)` fills once per test run, shared by every xdist worker: the first to ask builds it under an
    exclusive lock while the others wait, then all reuse it. Returns (folder, what `make` returned, through JSON).
    Tests that change the folder copy it first (`shutil.copytree`: a copied home is self-contained)."""
    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"): root = root.parent        # this run's folder, above every worker's own
    folder, done = root / f"built-{name}", root / f"built-{name}.json"
    with open(root / f"built-{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)                                  # released when the file closes
        if not done.exists():
            shutil.rmtree(folder, ignore_errors=True)                     # what a failed build left
            folder.mkdir()
            done_value = make(folder)
            done.write_text(json.dumps(done_value))
        return folder, json.loads(done.read_text())


def swb(*args, env=None, exe="swb", timeout=300):
    "Run the installed console script; returns the CompletedProcess"
    return subprocess.run([str(BIN / exe), *map(str, args)], capture_output=True, text=True,
                          env={**os.environ, **(env or {})}, timeout=timeout)


def tree_digest(path: Path) -> dict:
    "Every file under `path` with the sha256 of its bytes (empty if `path` does not exist)"
    if not path.exists(): return {}
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file()}


def sample(symbol="ABC", days=60, seed=3) -> pd.DataFrame:
    "A valid canonical frame for one symbol: the first `days` sessions of a synthetic market"
    df = synthetic_market(1, days / 252, seed=seed)
    return df.assign(symbol=symbol)


def write_yahoo_csv(df: pd.DataFrame, path: Path) -> Path:
    "Write one symbol's canonical rows as a Yahoo-style CSV"
    out = df.drop(columns="symbol").rename(columns=dict(zip(
        ["date", "open", "high", "low", "close", "adj_close", "volume"], YAHOO_HEADER)))
    out["Date"] = out["Date"].dt.strftime("%Y-%m-%d")
    out["Volume"] = out["Volume"].round().astype("int64")
    path.parent.mkdir(parents=True, exist_ok=True)
    out.to_csv(path, index=False)
    return path


# Real-world input cases (read-only), beside the repository: ../shared/field/ (see its README)
FIELD = Path(__file__).resolve().parents[2] / "shared" / "field"
assert FIELD.is_dir(), f"the real-world input cases are missing: {FIELD}"


REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
def rkeys(home, monkeypatch):
    "A Redis key prefix of this test only (tests run side by side on one Redis); its keys are deleted afterwards"
    import uuid, redis
    from stock_workbench.leases import StreamKeys
    keys = StreamKeys(f"swbt-{uuid.uuid4().hex[:10]}")
    monkeypatch.setenv("SWB_STREAM_PREFIX", keys.prefix)
    monkeypatch.setenv("SWB_REDIS_URL", REDIS_URL)
    monkeypatch.setenv("SWB_METRICS_PORT", "0")
    r = redis.Redis.from_url(REDIS_URL)
    yield r, keys
    for k in r.scan_iter(f"{keys.prefix}:*", count=1000): r.delete(k)


def pytest_collection_modifyitems(config, items):
    "Tests marked snowflake_live need a real Snowflake account: without its credentials they are deselected (and reported so), never skipped"
    if all(os.environ.get(f"SNOWFLAKE_{k}") for k in ("ACCOUNT", "USER", "PASSWORD")): return
    live = [i for i in items if i.get_closest_marker("snowflake_live")]
    if live:
        config.hook.pytest_deselected(items=live)
        items[:] = [i for i in items if not i.get_closest_marker("snowflake_live")]
