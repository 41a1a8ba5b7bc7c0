"swb dashboard in a real Chromium (Debian's, driven by Playwright): the page renders its widgets, a new symbol redraws the chart, an empty home reads as a message; screenshots land in test-artifacts/"
import os, signal, socket, subprocess, sys, threading, time
from contextlib import contextmanager
from pathlib import Path
import pytest
from conftest import BIN, swb
from test_jobs import FAST

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parent.parent/"test-artifacts"
SECTIONS = ["Price and forecasts", "Backtest of the forecast signal", "Top predicted movers at the latest close",
            "Model leaderboard", "Serving: A/B split, drift and fallback", "Calibration of the realized forecasts", "Data quality"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); return s.getsockname()[1]


def _env(home: Path, **extra) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SWB_")}
    return {**env, "SWB_HOME": str(home), "SWB_QUIET": "1", **extra}


@contextmanager
def serve(home: Path, env: dict):
    "`swb dashboard` on a free port; yields the URL it prints; stops it (and its Voila) on exit"
    port = _free_port()
    p = subprocess.Popen([str(BIN/"swb"), "dashboard", "--port", str(port), "--no-browser"], env=env, cwd=str(home),
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = []
        t = threading.Thread(target=lambda: line.append(p.stdout.readline()), daemon=True); t.start(); t.join(120)   # printed once a page is preheated
        assert line and line[0].startswith("dashboard for"), (line, p.poll(), p.stderr.read() if p.poll() is not None else "")
        url = line[0].split(" at ")[1].split()[0]
        assert url == f"http://127.0.0.1:{port}/"
        yield url
    finally:
        p.send_signal(signal.SIGTERM)
        try: p.wait(20)
        except subprocess.TimeoutExpired: p.kill(); p.wait()
        with socket.socket() as s:   # Voila went with it
            assert s.connect_ex(("127.0.0.1", port)) != 0, f"Voila still listens on {port}"


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        msg = f"{CHROMIUM} is missing: apt-get install -y chromium"
        if os.environ.get("CI"): pytest.fail(msg)    # CI installs it: a missing browser is a broken CI, not a skip
        pytest.skip(msg)
    from playwright.sync_api import sync_playwright
    pw = sync_playwright().start()
    b = pw.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"])
    try: yield b
    finally: b.close(); pw.stop()


@pytest.fixture(scope="module")
def populated(tmp_path_factory):
    "A home after one EOD run (and its first retrain) on the small sample market, plus a challenger"
    h = tmp_path_factory.mktemp("dash")/"home"; h.mkdir()
    env = _env(h, **FAST)
    r = swb("run", "eod", env=env)
    assert r.returncode == 0, r.stderr
    return h, env


def _open(browser, url):
    page = browser.new_page(viewport={"width": 1280, "height": 2600})   # tall: the whole page in one screenshot
    page.goto(url, wait_until="commit")
    return page


@contextmanager
def evidence(page, name: str):
    "On a failure inside, save a screenshot to test-artifacts/ and add the page's text to the error"
    try: yield
    except Exception as e:
        ARTIFACTS.mkdir(exist_ok=True)
        try: page.screenshot(path=str(ARTIFACTS/f"{name}-failed.png"), full_page=True); text = page.inner_text("body")
        except Exception as e2: text = f"(no page text: {e2})"
        raise AssertionError(f"{e}\n--- the page ({ARTIFACTS/name}-failed.png) ---\n{text[:3000]}") from e


def test_dashboard_renders_its_widgets_and_redraws_on_a_new_symbol(browser, populated):
    home, env = populated
    ARTIFACTS.mkdir(exist_ok=True)
    with serve(home, env) as url:
        page = _open(browser, url)
        with evidence(page, "dashboard"): _renders_and_redraws(page)


def _renders_and_redraws(page):
    "The page's widgets and sections, then a new symbol and horizon redraw it"
    t0 = time.monotonic()
    symbol = page.locator(".widget-text input").first
    symbol.wait_for(timeout=60_000)
    chart = page.locator("img.widget-image").first
    page.wait_for_function("() => { const i = document.querySelector('img.widget-image'); return i && i.naturalWidth > 100 }", timeout=60_000)
    first_s = time.monotonic() - t0
    page.get_by_text("buy_and_hold").first.wait_for(timeout=60_000)   # the backtest: a preheated page is served complete
    text = page.inner_text("body")
    assert "Loading widget" not in text and "Traceback" not in text and "Error" not in text, text[:2000]
    for s in SECTIONS: assert s in text, s
    assert symbol.input_value() == "SYN000" and "SYN000 · horizon 1" in text
    options = page.locator("select").first.inner_text().replace("\xa0", " ")
    assert "champion: v1 · gbm" in options and "challenger:" not in options, options   # v1 is champion only: a challenger is another version
    assert "no challenger" in text and ("No drift status yet" in text or "fallback level" in text), text[:3000]   # the serving section
    assert "PASSED" in text and "40 of 40 checks passed" in text                       # data quality
    assert "Client portfolios" in text                                                  # the picker, or one line saying why there is none
    assert "the best baseline (" in text or "the best baseline on these rows" in text    # leaderboard verdict: against the best baseline
    assert page.locator("input[type=date]").count() == 2 and page.locator("button", has_text="5 days").count() == 1
    assert "import " not in text and "build_app" not in text                             # no code shown
    page.screenshot(path=str(ARTIFACTS/"dashboard.png"), full_page=True)

    before = chart.get_attribute("src")
    symbol.fill("SYN003"); symbol.press("Enter")
    page.wait_for_function("s => document.querySelector('img.widget-image').getAttribute('src') != s", arg=before, timeout=10_000)
    page.get_by_text("SYN003 · horizon 1").wait_for(timeout=10_000)
    page.locator("button", has_text="5 days").click()
    page.get_by_text("SYN003 · horizon 5").wait_for(timeout=10_000)
    page.screenshot(path=str(ARTIFACTS/"dashboard-SYN003.png"), full_page=True)
    assert first_s < 10, f"first chart after {first_s:.1f} s"   # issue 5: interactive within 10 s (about 2-3 s here)


def test_an_empty_home_shows_a_clear_message(browser, home):
    with serve(home, _env(home)) as url:
        page = _open(browser, url)
        msg = page.get_by_text("is empty: there is nothing to show yet")
        msg.wait_for(timeout=60_000)
        text = page.inner_text("body")
        assert "swb run eod" in text and "Traceback" not in text
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS/"dashboard-empty.png"), full_page=True)
    assert list(home.iterdir()) == []      # the page wrote nothing into the home


def test_a_taken_port_is_a_one_line_error(home):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0)); s.listen()
        r = swb("dashboard", "--port", s.getsockname()[1], "--no-browser")
    assert r.returncode != 0 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and "already in use" in r.stderr, r.stderr
