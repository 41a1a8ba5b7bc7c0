"A damaged store is detected and named (never a symbol silently gone, never `internal error`), nothing commits on top, and `swb store` repairs it"
import json, os, re, shutil, time
from pathlib import Path
import pandas as pd, pytest
from conftest import swb
from stock_workbench.config import Settings
from stock_workbench.store import OhlcvStore, commit_file
from stock_workbench.storecare import check_home
from stock_workbench.synthetic import synthetic_market

MARKET = synthetic_market(5, 1, seed=5)                  # SYN000..SYN004, 252 sessions
FIRST = ["SYN000", "SYN001", "SYN002"]                   # version 0; SYN003 is version 1, SYN004 version 2 (the newest)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory):
    "A home whose store has versions 0, 1, 2 written through the store (so `.swb-version` is there)"
    home = tmp_path_factory.mktemp("pristine") / "home"
    st = OhlcvStore.from_settings(Settings(home, env={}))
    st.write(MARKET[MARKET["symbol"].isin(FIRST)], source="first")
    st.write(MARKET[MARKET["symbol"] == "SYN003"], source="second")
    st.write(MARKET[MARKET["symbol"] == "SYN004"], source="third")
    return home


@pytest.fixture
def damaged_home(pristine, home):
    "A copy of the pristine home as this test's SWB_HOME"
    shutil.rmtree(home); shutil.copytree(pristine, home)
    return home


def _data_file(home, sym): return next((home / "data" / f"symbol={sym}").glob("*.parquet"))

def _truncate(f: Path): f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])

LOG_DAMAGE = {   # case -> (damage, the file the error names, the version to restore)
    "newest commit emptied": (lambda h: commit_file(h / "data", 2).write_bytes(b""), lambda h: commit_file(h / "data", 2), 1),
    "newest commit deleted": (lambda h: commit_file(h / "data", 2).unlink(), lambda h: commit_file(h / "data", 2), 1),
    "newest commit truncated": (lambda h: _truncate(commit_file(h / "data", 2)), lambda h: commit_file(h / "data", 2), 1),
    "middle commit deleted": (lambda h: commit_file(h / "data", 1).unlink(), lambda h: commit_file(h / "data", 1), 0),
    "checkpoint hint to nothing": (lambda h: (h / "data/_delta_log/_last_checkpoint").write_text('{"version": 2, "size": 9}'),
                                   lambda h: h / "data/_delta_log/_last_checkpoint", 2),
}


def _one_error_line(r, *needles):
    assert r.returncode != 0, r.stdout
    lines = r.stderr.strip().splitlines()
    assert lines[-1].startswith("swb: error: ") and "internal error" not in r.stderr and "Traceback" not in r.stderr, r.stderr
    for n in needles: assert n in lines[-1], (n, lines[-1])
    return lines[-1]


@pytest.mark.parametrize("case", list(LOG_DAMAGE))
def test_damaged_log_is_named_refused_and_restored(damaged_home, case):
    damage, named, good = LOG_DAMAGE[case]
    store = OhlcvStore.from_settings(Settings(damaged_home))
    damage(damaged_home)
    log_before = sorted(p.name for p in (damaged_home / "data/_delta_log").iterdir())
    line = _one_error_line(swb("info"), str(named(damaged_home)), "swb store check", f"swb store restore --version {good}")
    # nothing commits on top of a damaged log (that made a loss permanent)
    with pytest.raises(Exception, match=re.escape(str(named(damaged_home)))):
        store.write(MARKET[MARKET["symbol"] == "SYN000"].assign(volume=1.0))
    assert sorted(p.name for p in (damaged_home / "data/_delta_log").iterdir()) == log_before
    # the way back the line gives
    r = swb("store", "check")
    assert r.returncode == 1 and str(named(damaged_home)) in r.stdout and f"restore --version {good}" in r.stdout, r.stdout + r.stderr
    r = swb("store", "restore", "--version", good)
    assert r.returncode == 0, r.stderr
    assert swb("info").returncode == 0
    if good < 2:          # the damaged commit is set aside, never deleted (a deleted one is simply gone)
        kept = list((damaged_home / "data/_delta_log").glob(".damaged-*/*.json"))
        assert case == "newest commit deleted" or kept, r.stdout
        lost = sorted(set(MARKET["symbol"]) - set(store.symbols()))
        assert lost and any(f"ingest {lost[0]}" in str(p.way_back) for p in check_home(Settings(damaged_home)))
        for s in lost: store.write(MARKET[MARKET["symbol"] == s], source="again")
    assert check_home(Settings(damaged_home)) == []
    pd.testing.assert_frame_equal(store.read(), MARKET.sort_values(["symbol", "date"], ignore_index=True), check_exact=False)


def test_emptied_commit_then_cli_ingest_is_refused(damaged_home, tmp_path):
    "The issue's sequence: the newest commit emptied, `swb ingest` next: refused, the log as it was"
    from conftest import write_yahoo_csv
    commit_file(damaged_home / "data", 2).write_bytes(b"")
    csv = write_yahoo_csv(synthetic_market(1, 1, seed=9).assign(symbol="NEWX"), tmp_path / "NEWX.csv")
    before = sorted(p.name for p in (damaged_home / "data/_delta_log").iterdir())
    _one_error_line(swb("ingest", "--source", "csv", "--path", csv), "00000000000000000002.json is empty (0 bytes)")
    assert sorted(p.name for p in (damaged_home / "data/_delta_log").iterdir()) == before


@pytest.mark.parametrize("how", ["deleted", "truncated"])
def test_damaged_data_file_is_named_and_dropped(damaged_home, how):
    store = OhlcvStore.from_settings(Settings(damaged_home))
    f = _data_file(damaged_home, "SYN003")
    f.unlink() if how == "deleted" else _truncate(f)
    _one_error_line(swb("info"), f"symbol=SYN003/{f.name}", "swb store drop --symbols SYN003", "swb store restore --version 0")
    with pytest.raises(Exception, match=f.name):
        store.read(["SYN003"])
    pd.testing.assert_frame_equal(store.read(["SYN000"]), MARKET[MARKET["symbol"] == "SYN000"].reset_index(drop=True), check_exact=False)
    r = swb("store", "check")
    assert r.returncode == 1 and f.name in r.stdout, r.stdout
    r = swb("store", "drop", "--symbols", "SYN003")
    assert r.returncode == 0 and "dropped SYN003" in r.stdout, r.stderr
    store.write(MARKET[MARKET["symbol"] == "SYN003"], source="again")
    assert swb("store", "check").returncode == 0
    assert len(store.read(["SYN003"])) == 252


def test_symbol_on_disk_in_no_version_is_named(damaged_home):
    "A store from before `.swb-version` loses its newest commit: the symbol's files are in no version; info warns, check names it"
    (damaged_home / "data/.swb-version").unlink()
    commit_file(damaged_home / "data", 2).unlink()
    r = swb("info", env={"SWB_QUIET": ""})
    assert r.returncode == 0 and "SYN004" not in r.stdout
    assert "warning: store" in r.stderr and "symbol=SYN004" in r.stderr and "swb store check" in r.stderr, r.stderr
    r = swb("store", "check")
    assert r.returncode == 1 and "symbol=SYN004" in r.stdout and "ingest SYN004 again" in r.stdout, r.stdout


def test_maintain_removes_old_orphans_and_keeps_retained_versions(damaged_home):
    "Killed writes' files older than the retention go; every file a version of the retention window needs stays"
    store = OhlcvStore.from_settings(Settings(damaged_home))
    g = MARKET[MARKET["symbol"] == "SYN000"]
    for i in range(3): store.write(g.assign(volume=g["volume"] + i + 1), source=f"revision {i}")   # versions 3-5 rewrite SYN000
    orphans = []
    for i in range(30):   # what a killed write leaves: data files no commit names, two days old
        o = damaged_home / "data/symbol=SYN001" / f"part-killed-{i}.parquet"
        shutil.copy(_data_file(damaged_home, "SYN002"), o)
        old = time.time() - 48 * 3600; os.utime(o, (old, old)); orphans.append(o)
    young = damaged_home / "data/symbol=SYN001/part-under-way.parquet"; shutil.copy(orphans[0], young)
    frames = {v: store.read(version=v) for v in range(store.version + 1)}
    r = swb("store", "maintain", "--retention-hours", "24", "--json")
    assert r.returncode == 0, r.stderr
    m = json.loads(r.stdout)["ohlcv"]
    assert m["vacuumed"] == 30 and m["files_after"] == m["files_before"] - 30, m
    assert not any(o.exists() for o in orphans) and young.exists()
    for v, df in frames.items(): pd.testing.assert_frame_equal(store.read(version=v), df)   # every retained version reads
    assert check_home(Settings(damaged_home)) == []


def test_a_killed_write_is_not_damage_when_every_commit_is_in_the_log(damaged_home, tmp_path):
    "B1: `.swb-version` equal to the newest version vouches for the log: files in no version are a killed write, not a lost commit"
    killed = damaged_home / "data/symbol=NEWX/part-killed.parquet"; killed.parent.mkdir()
    shutil.copy(_data_file(damaged_home, "SYN002"), killed)
    r = swb("store", "check")
    assert r.returncode == 0 and "healthy" in r.stdout and "1 files in no version" in r.stdout, r.stdout
    r = swb("info", env={"SWB_QUIET": ""})
    assert r.returncode == 0 and "warning" not in r.stderr, r.stderr
    assert swb("store", "maintain", "--retention-hours", "0").returncode == 0 and not killed.exists()
    # a first write killed into an empty home: no log, no mark: nothing committed was lost, and the next ingest works
    home2 = tmp_path / "fresh"; (home2 / "data/symbol=SYN000").mkdir(parents=True)
    shutil.copy(_data_file(damaged_home, "SYN000"), home2 / "data/symbol=SYN000/part-killed.parquet")
    r = swb("store", "check", env={"SWB_HOME": str(home2)})
    assert r.returncode == 0 and "killed before its first commit" in r.stdout, r.stdout
    # the log gone from a table the workbench committed to (the mark is there): damage
    shutil.rmtree(damaged_home / "data/_delta_log")
    r = swb("store", "check")
    assert r.returncode == 1 and "but no Delta log" in r.stdout, r.stdout


@pytest.mark.parametrize("args, needle", [(["restore", "--version", "-1"], "--version -1 must be a version number >= 0"),
                                          (["maintain", "--retention-hours", "nan"], "--retention-hours nan must be"),
                                          (["maintain", "--retention-hours", "inf"], "--retention-hours inf must be")])
def test_store_arguments_out_of_range_are_one_line(damaged_home, args, needle):
    "B1: before, `internal error: OverflowError` / `ValueError: cannot convert float NaN`"
    _one_error_line(swb("store", *args), needle)


def _checkpointed(home):
    "The copy with a checkpoint at version 2 and a commit 3 after it (SYN000 revised)"
    from deltalake import DeltaTable
    DeltaTable(str(home / "data")).create_checkpoint()
    g = MARKET[MARKET["symbol"] == "SYN000"]
    OhlcvStore.from_settings(Settings(home, env={})).write(g.assign(volume=g["volume"] + 1), source="revision")
    return home / "data/_delta_log"


def test_a_damaged_checkpoint_is_named_and_set_aside(damaged_home):
    "B1: before, `unreadable (... Corrupt footer)` naming no file, and `move the table aside and ingest again` (all commits were there)"
    log = _checkpointed(damaged_home)
    cp = log / "00000000000000000002.checkpoint.parquet"
    _truncate(cp)
    _one_error_line(swb("info"), str(cp), "swb store restore --version 3")
    r = swb("store", "restore", "--version", "3")
    assert r.returncode == 0 and cp.name in r.stdout, r.stdout + r.stderr
    assert swb("store", "check").returncode == 0 and len(OhlcvStore.from_settings(Settings(damaged_home)).read()) == 5 * 252


def test_a_commit_of_json_but_no_delta_action_is_damage(damaged_home):
    "B1: before, delta-rs skipped it (version 3's rows silently gone; `store check` healthy) and `swb info` was an internal error"
    log = _checkpointed(damaged_home)
    (log / "00000000000000000003.json").write_text('{"foo": 1}\n')
    _one_error_line(swb("info"), "00000000000000000003.json is corrupt", "swb store restore --version 2")
    assert swb("store", "check").returncode == 1


def test_an_old_commit_before_the_checkpoint_damaged(damaged_home):
    "B1: before, `swb info` was an internal error (DeltaProtocolError from the history) and `store check` said healthy"
    log = _checkpointed(damaged_home)
    (log / "00000000000000000001.json").write_bytes(os.urandom(300))
    r = swb("info")
    assert r.returncode == 0 and "history unreadable" in r.stdout, r.stdout + r.stderr
    r = swb("store", "check")
    assert r.returncode == 1 and "00000000000000000001.json" in r.stdout and "the latest version is whole" in r.stdout, r.stdout


def test_maintain_twice_is_idempotent_and_a_vacuumed_version_is_refused(damaged_home):
    "B1: before, every maintain re-listed the files an earlier vacuum deleted (`vacuumed 3,200` again) and logged two more versions"
    store = OhlcvStore.from_settings(Settings(damaged_home))
    g = MARKET[MARKET["symbol"] == "SYN000"]
    store.write(g.assign(volume=g["volume"] + 1), source="revision")
    first = json.loads(swb("store", "maintain", "--retention-hours", "0", "--json").stdout)["ohlcv"]
    assert first["vacuumed"] >= 1, first
    again = json.loads(swb("store", "maintain", "--retention-hours", "0", "--json").stdout)["ohlcv"]
    assert (again["vacuumed"], again["version"], again["files_after"]) == (0, first["version"], first["files_after"]), (first, again)
    _one_error_line(swb("store", "restore", "--version", "0"), "version 0 needs", "vacuumed or damaged")
    assert swb("store", "check").returncode == 0


def test_two_maintains_at_once_and_a_read_of_a_vacuumed_version(damaged_home):
    "B1: before, a second maintain at once was `internal error: DeltaError ... not found`, and a read whose version a vacuum removed said "
    "`data file ... is missing ... swb store drop --symbols SYN000 and ingest SYN000 again` (the store was whole)"
    from stock_workbench.schedule import exclusive_flock
    from stock_workbench.storecare import maintain_home
    with exclusive_flock(damaged_home / "schedule/maintain.lock", "maintain", "`swb store maintain`"):
        _one_error_line(swb("store", "maintain"), "`swb store maintain` is already running")
    assert swb("store", "maintain", "--dry-run").returncode == 0        # a dry run takes no lock
    store = OhlcvStore.from_settings(Settings(damaged_home))
    g = MARKET[MARKET["symbol"] == "SYN000"]
    store.write(g.assign(volume=g["volume"] + 1), source="revision")
    maintain_home(Settings(damaged_home), retention_hours=0)
    with pytest.raises(Exception, match="files of version 0 were vacuumed .* the latest version is whole: run the command again"):
        store.read(["SYN000"], version=0)
    assert swb("store", "check").returncode == 0
