"""Personal data scrubbing of news (issue 15, privacy part): recall and precision per type on a labelled set, finance text kept,
idempotence, keyed pseudonyms and their key file, parallel scrubbing, no network, nothing logged"""
import json, logging, os, stat, subprocess, sys
from pathlib import Path
import pytest
from stock_workbench.config import Settings, SwbError
from stock_workbench.privacy import PII_TYPES, PLACEHOLDERS, Scrubber, news_hash_key, pseudonym, scrub_parallel

CASES = [json.loads(l) for l in (Path(__file__).parent / "fixtures/news/pii_cases.jsonl").read_text().splitlines() if l.strip()]
ALLOW = ["AAPL", "MSFT", "GOOG", "TSLA", "NVDA", "Apple", "Microsoft", "Amazon.com"]   # the universe: never masked


@pytest.fixture(scope="module")
def scrubber():
    return Scrubber(allow=ALLOW)


@pytest.fixture(scope="module")
def found(scrubber):
    "Spans found in every case, by case id"
    return {c["id"]: scrubber.find(c["text"]) for c in CASES}


def expected(c):
    "The case's text with each labelled span replaced by its placeholder"
    t = c["text"]
    for g in sorted(c["pii"], key=lambda g: -g["start"]): t = t[:g["start"]] + PLACEHOLDERS[g["type"]] + t[g["end"]:]
    return t


def per_type_scores(found):
    "(tp, fp, fn) per type: a span counts when it overlaps a labelled span of the same type"
    s = {t: [0, 0, 0] for t in PII_TYPES}
    for c in CASES:
        pred, gold = found[c["id"]], c["pii"]
        for g in gold:
            s[g["type"]][0 if any(a < g["end"] and g["start"] < b and t == g["type"] for a, b, t in pred) else 2] += 1
        for a, b, t in pred:
            if not any(a < g["end"] and g["start"] < b and t == g["type"] for g in gold): s[t][1] += 1
    return s


def test_labelled_set_covers_every_type_in_many_formats():
    n = {t: sum(g["type"] == t for c in CASES for g in c["pii"]) for t in PII_TYPES}
    assert sum(c["kind"] == "pii" for c in CASES) >= 150 and min(n.values()) >= 20, n
    assert sum(c["kind"] == "finance" for c in CASES) >= 50


def test_recall_and_precision_per_type(found):
    for t, (tp, fp, fn) in per_type_scores(found).items():
        p, r = tp / max(1, tp + fp), tp / max(1, tp + fn)
        print(f"{t:14s} P={p:.3f} R={r:.3f} (tp {tp}, fp {fp}, fn {fn})")
        assert p >= 0.95 and r >= 0.95, (t, p, r)


def test_no_personal_data_survives(scrubber, found):
    for c in CASES:
        covered = {i for a, b, _ in found[c["id"]] for i in range(a, b)}
        out = scrubber.scrub(c["text"]).text
        for g in c["pii"]:
            left = [c["text"][i] for i in range(g["start"], g["end"]) if c["text"][i].isalnum() and i not in covered]
            assert not left, (c["text"], g["value"])
            if c["text"].count(g["value"]) == 1: assert g["value"] not in out, (c["text"], out)


def test_scrubbed_text_is_exactly_the_placeholders(scrubber):
    "Everything outside the labelled spans (tickers, prices, CUSIPs, dates next to the personal data) is kept byte for byte"
    for c in CASES:
        assert scrubber.scrub(c["text"]).text == expected(c), c["text"]


def test_finance_text_survives_byte_for_byte(scrubber):
    fin = [c["text"] for c in CASES if c["kind"] == "finance"]
    out = scrubber.scrub_many(fin)
    assert [r.text for r in out] == fin and all(r.found == {} for r in out)


def test_counts_per_type(scrubber):
    for c in CASES:
        want = {}
        for g in c["pii"]: want[g["type"]] = want.get(g["type"], 0) + 1
        assert scrubber.scrub(c["text"]).found == want, c["text"]


def test_idempotent(scrubber):
    for c in CASES:
        once = scrubber.scrub(c["text"]).text
        assert scrubber.scrub(once).text == once and scrubber.scrub(once).found == {}, once


def test_allow_list_is_never_masked():
    t = "@AAPL and @jane_doe on twitter"
    assert Scrubber(allow=["AAPL"]).scrub(t).text == "@AAPL and <HANDLE> on twitter"
    assert Scrubber().scrub(t).text == "<HANDLE> and <HANDLE> on twitter"


def test_pseudonym_stable_per_key_and_key_never_shown(tmp_path, scrubber):
    k1, k2 = b"a" * 32, b"b" * 32
    assert pseudonym("Jane Doe", k1) == pseudonym("jane  doe", k1) == pseudonym(" JANE DOE ", k1)
    assert pseudonym("@jane_doe", k1, "handle") == pseudonym("jane_doe", k1, "handle")
    assert pseudonym("Jane Doe", k1) != pseudonym("Jane Doe", k2) != pseudonym("John Doe", k2)
    assert pseudonym("Jane Doe", k1).startswith("author_") and len(pseudonym("Jane Doe", k1)) == len("author_") + 16
    home = tmp_path / "home"; home.mkdir()
    key = news_hash_key(Settings(home, env={"SWB_NEWS_HASH_KEY_FILE": str(tmp_path / "secrets" / "news.key")}))
    shown = [pseudonym(c["text"], key) for c in CASES] + [scrubber.scrub(key.decode()).text]
    assert not any(key.decode() in s for s in shown[:-1]) and key.decode()[:16] not in "".join(shown[:-1])


def test_hash_key_file_made_once_mode_600_outside_home(tmp_path):
    home, kf = tmp_path / "home", tmp_path / "secrets" / "sub" / "news.key"
    home.mkdir()
    st = Settings(home, env={"SWB_NEWS_HASH_KEY_FILE": str(kf)})
    k = news_hash_key(st)
    assert kf.exists() and stat.S_IMODE(kf.stat().st_mode) == 0o600 and len(k) == 64
    assert news_hash_key(st) == k                                    # read back, not remade
    assert news_hash_key(Settings(home, env={"SWB_NEWS_HASH_KEY": "s" * 24, "SWB_NEWS_HASH_KEY_FILE": str(kf)})) == b"s" * 24
    assert not list(home.iterdir())                                  # nothing written into the home


@pytest.mark.parametrize("where", ["home/news.key", "home/data/news.key", "relative"])
def test_hash_key_file_inside_home_or_store_refused(tmp_path, where):
    home = tmp_path / "home"; home.mkdir()
    path = "news.key" if where == "relative" else str(tmp_path / where)
    with pytest.raises(SwbError, match="inside the workbench home") as e:
        news_hash_key(Settings(home, env={"SWB_NEWS_HASH_KEY_FILE": path}))
    assert "\n" not in str(e.value) and not (home / "news.key").exists()


def test_hash_key_file_unreadable_or_short(tmp_path):
    home = tmp_path / "home"; home.mkdir()
    (tmp_path / "adir").mkdir()                                      # a folder cannot be read as a file, even by root
    with pytest.raises(SwbError, match="unreadable"):
        news_hash_key(Settings(home, env={"SWB_NEWS_HASH_KEY_FILE": str(tmp_path / "adir")}))
    (tmp_path / "short.key").write_text("secretpw\n")
    with pytest.raises(SwbError, match="shorter than 16 bytes") as e:
        news_hash_key(Settings(home, env={"SWB_NEWS_HASH_KEY_FILE": str(tmp_path / "short.key")}))
    assert "secretpw" not in str(e.value)


def test_nothing_reaches_a_log(scrubber, caplog):
    with caplog.at_level(logging.DEBUG):
        for c in CASES: scrubber.scrub(c["text"])
    assert not any(g["value"] in caplog.text for c in CASES for g in c["pii"])


def test_no_network_on_first_use(tmp_path):
    "A fresh process with every non-loopback connection refused builds a Scrubber and checks an e-mail's domain"
    code = ("import socket\n"
            "def deny(*a, **k): raise OSError('network used')\n"
            "socket.socket.connect = deny; socket.create_connection = deny; socket.getaddrinfo = deny\n"
            "from stock_workbench.privacy import Scrubber\n"
            "print(Scrubber().scrub('mail jane.doe@example.co.uk now').text)\n")
    env = dict(os.environ, HOME=str(tmp_path), XDG_CACHE_HOME=str(tmp_path / "cache"))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert out.returncode == 0 and out.stdout.strip() == "mail <EMAIL> now", out.stderr[-2000:]


def test_scrub_parallel_equals_scrub_many(tmp_path, scrubber):
    home = tmp_path / "home"; home.mkdir()
    texts = [c["text"] for c in CASES] * 3
    par = scrub_parallel(texts, Settings(home, env={"SWB_NEWS_WORKERS": "2"}), allow=ALLOW, chunk=100, min_parallel=0)
    assert par == scrubber.scrub_many(texts)
    assert scrub_parallel(texts[:5], Settings(home), allow=ALLOW, workers=1) == scrubber.scrub_many(texts[:5])


@pytest.mark.parametrize("text,value", [
    ('{"user_id": 12345678}', "12345678"), ('{"userId":"u_8812345"}', "u_8812345"), ('{"uid": "abc12345"}', "abc12345"),
    ("See u/janedoe", "janedoe"), ("See /u/janedoe", "janedoe"), ("https://example.com/unsub?e=jane%40example.com", "jane"),
    ("?recipient=jane%40example.com", "jane"), ("jane＠example.com", "jane"), ("news.ycombinator.com/user?id=janedoe", "janedoe"),
    ("stocktwits.com/janedoe", "janedoe"), ("janedoe.substack.com/", "janedoe"), ("youtube.com/channel/UCxyz123", "UCxyz123"),
    ("https://example.com/p#user=jdoe", "jdoe"), ("jane@[192.168.1.1]", "jane"), ("host 192.168.001.010", "192.168.001.010")])
def test_breaker_misses_are_caught(scrubber, text, value):
    r = scrubber.scrub(text)
    assert value not in r.text and r.found, r


@pytest.mark.parametrize("text", ["Net income 2125550143", "Revenue rose to 2125550143 in 2023", "Deal worth 1 800 555 0199 yen",
                                  "Protocol 1.2.3.4", "Release 1.2.3.4", "Firmware 1.2.3.4", "Build 1.2.3.4", "Rev 1.2.3.4"])
def test_finance_numbers_are_not_phones_or_ips(scrubber, text):
    assert scrubber.scrub(text).found == {}
