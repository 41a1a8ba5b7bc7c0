"""`swb news ingest|info` end to end through the CLI: every format, bad input skipped with its reason, duplicates once, fail closed,
personal data never stored or printed"""
import json, shutil
from pathlib import Path
import pandas as pd, pytest
from conftest import tree_digest
from stock_workbench.cli import main
from stock_workbench.config import Settings
from stock_workbench.news import NEWS_COLUMNS, NewsStore, news_id

FIX = Path(__file__).parent / "fixtures" / "news"
FILES = ["good.rss", "atom.xml", "malformed.xml", "page.html", "nohead.html", "latin1.html", "latin1_declared.html", "german.html",
         "items.jsonl", "bad.jsonl"]
# personal data the fixtures carry in titles, bodies, authors and urls: none of it may be stored or printed
PII = ["jane.roe", "example.org", "Jane Roe", "212-555-0147", "555-0147", "desk.editor", "203.0.113.77", "sam.reporter", "Sam Reporter",
       "sam_reports", "alex.example", "Alex Example", "7946 0958", "555-0100", "owner.help", "chris.contact", "Chris Contact",
       "cnbc_viewer_99", "analyst.one", "uid=12345", "reader="]


@pytest.fixture
def env(tmp_path, monkeypatch):
    "A fresh home with its own pseudonym key file outside it; progress notes on (they must not leak either)"
    for k in [k for k in __import__("os").environ if k.startswith("SWB_")]: monkeypatch.delenv(k)
    home = tmp_path / "home"; home.mkdir()
    monkeypatch.setenv("SWB_HOME", str(home))
    monkeypatch.setenv("SWB_NEWS_HASH_KEY_FILE", str(tmp_path / "keys" / "news.key"))
    monkeypatch.setenv("SWB_NEWS_WORKERS", "1")
    return home


def swb(capsys, *args):
    "Run `swb ARGS` in this process: (exit code, stdout, stderr)"
    capsys.readouterr()
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def copy(tmp_path, *names, to="in"):
    d = tmp_path / to; d.mkdir(exist_ok=True)
    for n in names: shutil.copy(FIX / n, d / n)
    return d


def write_jsonl(path, items):
    path.write_text("".join(json.dumps(i) + "\n" for i in items))
    return path


def one_line_error(code, err, *needles):
    assert code == 1
    lines = [l for l in err.strip().splitlines() if not l.startswith("swb: news: ")]   # progress notes, then the one error line
    assert len(lines) == 1 and lines[0].startswith("swb: error: "), err
    for n in needles: assert n in lines[0], (n, lines[0])


def test_every_format_and_every_bad_input(env, tmp_path, capsys):
    code, out, err = swb(capsys, "news", "ingest", "--path", copy(tmp_path, *FILES), "--json")
    assert code == 0, err
    s = json.loads(out)
    assert (s["stored"], s["duplicates"], s["version"]) == (13, 2, 0)
    assert s["read"] == s["stored"] + s["duplicates"] + len(s["skipped"])
    assert {k["where"]: k["reason"] for k in s["skipped"]} == {
        "malformed.xml": "malformed feed", "nohead.html": "no headline", "latin1.html": "undecodable bytes", "german.html": "language",
        "bad.jsonl:2": "malformed JSON", "bad.jsonl:3": "malformed JSON", "bad.jsonl:4": "no headline", "bad.jsonl:5": "no headline",
        "bad.jsonl:6": "no publication time", "bad.jsonl:7": "bad publication time", "bad.jsonl:8": "bad symbols", "bad.jsonl:9": "undecodable bytes"}
    assert s["skipped_by_reason"]["malformed JSON"] == 2 and sum(s["skipped_by_reason"].values()) == 12
    df = NewsStore.from_settings(Settings(env)).read()
    assert list(df.columns) == NEWS_COLUMNS and len(df) == 13 and df["id"].is_unique
    assert df["published_at"].is_monotonic_increasing and str(df["published_at"].dtype) == "datetime64[us, UTC]"
    assert (df["published_at"] <= df["fetched_at"]).all()
    by_title = df.set_index("title")
    # one of each format, with its source: RSS, Atom, HTML (UTF-8 and declared latin-1), JSONL
    assert by_title.loc["$AAPL shares jump after record profit beats estimates", "source"] == "reuters"
    assert by_title.loc["Oil prices rise as supply tightens", "source"] == "bloomberg"
    assert by_title.loc["Nvidia soars as AI chip demand lifts record revenue", ["source", "url"]].tolist() == ["ft", "https://www.ft.com/content/nvidia-soars"]
    assert by_title.loc["Café chain shares rise after profit warning", "source"] == "marketwatch"
    assert by_title.loc["Tesla recalls 2 million cars over Autopilot flaw", "source"] == "newswire"
    # symbols: cashtag, exchange prefix in the body, given in JSONL, none = market-wide
    assert by_title.loc["$AAPL shares jump after record profit beats estimates", "symbols"] == "AAPL"
    assert by_title.loc["IBM faces lawsuit over pension losses", "symbols"] == "IBM"
    assert by_title.loc["Microsoft (NASDAQ: MSFT) shares may decline amid uncertain regulatory approval", "symbols"] == "MSFT"
    assert by_title.loc["Acme Corp lifts dividend after strong quarter", "symbols"] == "ACME"
    assert by_title.loc["Fed holds rates steady, signals patience on cuts", "symbols"] == ""
    # scores: an LM-negative, litigious headline scores negative; a record profit positive; sentiment = mean of the two lexicons
    assert by_title.loc["IBM faces lawsuit over pension losses", "sentiment"] < 0 < by_title.loc["$AAPL shares jump after record profit beats estimates", "sentiment"]
    assert by_title.loc["IBM faces lawsuit over pension losses", "lm_litigious"] > 0
    assert ((df["lm_polarity"] + df["vader_compound"]) / 2 - df["sentiment"]).abs().max() < 1e-12
    # the author only as a pseudonym; personal data counted per item
    assert set(df["author"]) <= {""} | {a for a in df["author"] if a.startswith("author_") and len(a) == 23}
    assert (df["author"] != "").sum() == 4
    assert s["pii"] == {"AUTHOR": 4, "EMAIL_ADDRESS": 4, "HANDLE": 2, "IP_ADDRESS": 1, "PHONE_NUMBER": 3}
    assert json.loads(by_title.loc["IBM faces lawsuit over pension losses", "pii"]) == {"IP_ADDRESS": 1}


def test_duplicates_once_and_reingest_adds_nothing(env, tmp_path, capsys):
    d = copy(tmp_path, "good.rss")
    code, out, err = swb(capsys, "news", "ingest", "--path", d / "good.rss", "--json")
    s = json.loads(out)
    assert code == 0 and (s["read"], s["stored"], s["duplicates"]) == (4, 3, 1)   # the 4th item restates the 1st (case, blanks, `!`)
    before = tree_digest(env / "news" / "_delta_log")
    code, out, err = swb(capsys, "news", "ingest", "--path", d / "good.rss", "--json")
    s = json.loads(out)
    assert code == 0 and (s["stored"], s["duplicates"], s["version"]) == (0, 4, 0)
    assert tree_digest(env / "news" / "_delta_log") == before                       # no new commit
    # the same headline from another source is another item; from the same source with other punctuation it is not
    write_jsonl(tmp_path / "more.jsonl", [
        {"time": "2024-03-08T10:00:00Z", "source": "cnbc", "title": "IBM faces lawsuit over pension losses"},
        {"time": "2024-03-08T10:00:00Z", "source": "Reuters", "title": "IBM faces lawsuit over pension losses..."}])
    s = json.loads(swb(capsys, "news", "ingest", "--path", tmp_path / "more.jsonl", "--json")[1])
    assert (s["stored"], s["duplicates"], s["version"]) == (1, 1, 1)
    ids = NewsStore.from_settings(Settings(env)).ids()
    assert news_id("cnbc", "IBM faces lawsuit over pension losses") in ids and len(ids) == 4


@pytest.mark.parametrize("name,reason,stored", [("malformed.xml", "malformed feed", 0), ("nohead.html", "no headline", 0),
                                                ("latin1.html", "undecodable bytes", 0), ("german.html", "language", 0),
                                                ("bad.jsonl", "malformed JSON", 2)])
def test_bad_input_alone_is_skipped_and_the_rest_kept(env, tmp_path, capsys, name, reason, stored):
    code, out, err = swb(capsys, "news", "ingest", "--path", copy(tmp_path, name) / name)
    assert code == 0, err
    assert f"skipped {name}" in out and reason in out and f"{stored:,} stored" in out


def test_language_setting_keeps_german(env, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("SWB_NEWS_LANGUAGES", "en,de")
    code, out, err = swb(capsys, "news", "ingest", "--path", copy(tmp_path, "german.html") / "german.html", "--source", "local", "--json")
    s = json.loads(out)
    assert code == 0 and s["stored"] == 1
    assert NewsStore.from_settings(Settings(env)).read()["language"].tolist() == ["de"]


@pytest.mark.parametrize("item,check", [
    ({"time": "2024-03-08T10:00:00Z", "source": "nobody-knows", "title": "Shares rise"}, "known source"),
    ({"time": "2099-01-01T00:00:00Z", "source": "reuters", "title": "Shares rise"}, "published no later than fetched")])
def test_checks_fail_closed_and_write_nothing(env, tmp_path, capsys, item, check):
    good = {"time": "2024-03-08T09:00:00Z", "source": "reuters", "title": "Bonds steady ahead of data"}
    assert swb(capsys, "news", "ingest", "--path", write_jsonl(tmp_path / "ok.jsonl", [good]))[0] == 0
    before = tree_digest(env)
    code, out, err = swb(capsys, "news", "ingest", "--path", write_jsonl(tmp_path / "b.jsonl", [{**good, "title": "Another fine one"}, item]))
    one_line_error(code, err, "validation failed", check, "b.jsonl:2", "nothing was written")
    assert f"FAIL {check}" in out and "Shares rise" not in out + err       # the report names rows, never their text
    assert tree_digest(env) == before                                      # not the table, not the ingest log
    # on an empty home the failed batch leaves no news store behind
    shutil.rmtree(env / "news")
    assert swb(capsys, "news", "ingest", "--path", tmp_path / "b.jsonl")[0] == 1 and not (env / "news").exists()


def test_source_flag_names_items_without_one(env, tmp_path, capsys):
    f = write_jsonl(tmp_path / "x.jsonl", [{"time": "2024-03-08T09:00:00Z", "title": "Bonds steady ahead of data"}])
    one_line_error(*swb(capsys, "news", "ingest", "--path", f)[::2], "known source")
    assert swb(capsys, "news", "ingest", "--path", f, "--source", "Local")[0] == 0
    assert NewsStore.from_settings(Settings(env)).read()["source"].tolist() == ["local"]


def test_symbol_map_and_universe(env, tmp_path, capsys, monkeypatch):
    (env / "names.csv").write_text("name,symbol\nAcme Corp,ACME\nInternational Business Machines,IBM\n")
    monkeypatch.setenv("SWB_NEWS_SYMBOL_MAP", "names.csv")
    monkeypatch.setenv("SWB_SYMBOLS", "ACME,IBM,AAPL")
    f = write_jsonl(tmp_path / "s.jsonl", [
        {"time": "2024-03-08T09:00:00Z", "source": "newswire", "title": "Acme Corp wins contract"},
        {"time": "2024-03-08T09:01:00Z", "source": "newswire", "title": "$XYZ and $AAPL move", "body": "International Business Machines comments"},
        {"time": "2024-03-08T09:02:00Z", "source": "newswire", "title": "Markets wait for the Fed"}])
    assert swb(capsys, "news", "ingest", "--path", f)[0] == 0
    got = NewsStore.from_settings(Settings(env)).read().set_index("title")["symbols"].to_dict()
    assert got == {"Acme Corp wins contract": "ACME", "$XYZ and $AAPL move": "AAPL,IBM", "Markets wait for the Fed": ""}
    monkeypatch.setenv("SWB_NEWS_SYMBOL_MAP", "missing.csv")
    one_line_error(*swb(capsys, "news", "ingest", "--path", f)[::2], "missing.csv")


def test_news_info_json_and_text(env, tmp_path, capsys):
    code, out, err = swb(capsys, "news", "info", "--json")
    assert code == 0 and json.loads(out)["headlines"] == 0
    swb(capsys, "news", "ingest", "--path", copy(tmp_path, *FILES))
    code, out, err = swb(capsys, "news", "info", "--json")
    i = json.loads(out)
    assert code == 0 and set(i) == {"store", "version", "headlines", "first", "last", "sources", "by_source_day", "pii", "ingests", "skipped"}
    assert (i["headlines"], i["version"], i["ingests"]) == (13, 0, 1)
    assert i["by_source_day"]["reuters"] == {"2024-03-01": 2, "2024-03-02": 1} and i["sources"]["newswire"] == 5
    assert i["pii"] == {"AUTHOR": 4, "EMAIL_ADDRESS": 4, "HANDLE": 2, "IP_ADDRESS": 1, "PHONE_NUMBER": 3}
    assert i["skipped"]["total"] == 12 and i["skipped"]["by_reason"]["language"] == 1
    assert any((r["where"], r["reason"]) == ("german.html", "language") for r in i["skipped"]["recent"])
    code, out, err = swb(capsys, "news", "info")
    assert code == 0 and "13 headlines" in out and "reuters" in out and "malformed feed 1" in out


def test_personal_data_never_reaches_files_or_output(env, tmp_path, capsys):
    said = ""
    for args in (["news", "ingest", "--path", copy(tmp_path, *FILES)], ["news", "ingest", "--path", tmp_path / "in", "--json"],
                 ["news", "info"], ["news", "info", "--json"]):
        code, out, err = swb(capsys, *args)
        assert code == 0, err
        said += out + err
    raw = b"".join(p.read_bytes() for p in (env / "news").rglob("*") if p.is_file())
    assert any(p.suffix == ".parquet" for p in (env / "news").rglob("*"))
    for s in PII:
        assert s.encode() not in raw, s
        assert s not in said, s
    df = NewsStore.from_settings(Settings(env)).read()
    text = " ".join(df[["title", "body", "url", "author"]].to_numpy().ravel())
    assert "<EMAIL>" in text and "<PHONE>" in text and "<HANDLE>" in text and "<IP>" in text
    assert not any("?" in u or "#" in u for u in df["url"])        # query strings and fragments dropped


def test_missing_path_is_one_line(env, tmp_path, capsys):
    one_line_error(*swb(capsys, "news", "ingest", "--path", tmp_path / "nope")[::2], "no such file or folder")
