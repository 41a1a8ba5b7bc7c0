"Every setting is checked when a command starts, with its key, its value and where it came from (environment or settings.ini)"
import pytest
from conftest import swb
from test_cli import one_line_error
from stock_workbench.cli import main

# (key, bad value, what the line says it must be): one case per kind of rule
KINDS = [
    ("train_days", "-5", "must be a positive whole number of sessions"),        # positive whole number (it trained on everything)
    ("train_days", "many", "must be a whole number"),                           # not a number at all
    ("max_missing_sessions", "-1", "must be a whole number of sessions >= 0"),  # non-negative whole number
    ("metrics_port", "70000", "must be a whole number from 0 to 65535"),        # a port
    ("alert_timeout_s", "0", "must be a positive number of seconds"),           # positive real
    ("fees_bps", "-1", "basis points >= 0"),                                    # checked at the backtest step only, before
    ("verdict_alpha", "1.5", "between 0 and 1"),                                # a share
    ("backtest_rule", "momentum", "must be one of long_flat, long_short"),      # a choice, checked at the backtest step only, before
    ("default_model", "xgb", "must be one of naive"),                           # a model name
    ("eod_time", "25:00", "must be a time of day HH:MM"),                       # HH:MM
    ("horizons", "1,0", "a list of positive whole numbers"),                    # a list of horizons
    ("exchange", "XMARS", "an exchange_calendars code"),                        # an exchange calendar
    ("eod_timezone", "Mars/Olympus", "a time zone name"),                       # a time zone
    ("synthetic_start", "2015-02-30", "a date YYYY-MM-DD"),                     # a date
    ("store_dir", "", "must name a folder inside the home"),                    # folders inside the home: empty,
    ("store_dir", "/tmp/elsewhere", "not an absolute path"),                    # absolute,
    ("reports_dir", "../out", "inside the home"),                               # or climbing out
    ("redis_url", "localhost:6379", "redis/rediss/unix URL"),                   # a URL's scheme
    ("mlflow_tracking_uri", "sqlite:///mlflow.db", "absolute sqlite path"),     # relative sqlite: the current folder, not the home
    ("symbols", "AAPL,MS FT", "not a valid symbol"),                            # tickers
    ("allowed_jumps", "AAPL", "SYM:YYYY-MM-DD"),                                # SYM:YYYY-MM-DD list
    ("snowflake_local_testing", "perhaps", "must be true or false"),            # a boolean
]
SECTION = {"train_days": "models", "fees_bps": "backtest", "backtest_rule": "backtest", "store_dir": "store", "eod_time": "schedule",
           "symbols": "universe", "metrics_port": "stream"}


def _line(capsys, *argv):
    code = main(list(argv))
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1 and len(err) == 1, (code, err)
    return err[0]


@pytest.mark.parametrize("key,value,why", KINDS, ids=[f"{k}={v}" for k, v, _ in KINDS])
def test_bad_setting_from_the_environment(home, monkeypatch, capsys, key, value, why):
    monkeypatch.setenv(f"SWB_{key.upper()}", value)
    line = _line(capsys, "info")
    assert line.startswith(f"swb: error: setting {key}=") and f" from SWB_{key.upper()}: " in line and why in line, line


@pytest.mark.parametrize("key,value,why", [k for k in KINDS if k[0] in SECTION], ids=[f"{k}={v}" for k, v, _ in KINDS if k in SECTION])
def test_bad_setting_from_settings_ini(home, capsys, key, value, why):
    (home / "settings.ini").write_text(f"[{SECTION[key]}]\n{key} = {value}\n")
    line = _line(capsys, "info")
    assert line.startswith(f"swb: error: setting {key}=") and f" from {home / 'settings.ini'} [{SECTION[key]}]: " in line and why in line, line


def test_commands_refuse_bad_settings_before_any_work(home, tmp_path):
    elsewhere = tmp_path / "elsewhere"
    # an absolute store_dir wrote the store outside the home; train_days=-5 trained on everything: now refused at start
    one_line_error(swb("ingest", "--source", "synthetic", "--symbols", 2, "--years", 0.2, env={"SWB_STORE_DIR": str(elsewhere)}),
                   f"setting store_dir='{elsewhere}' from SWB_STORE_DIR: must be a folder relative to the home")
    assert not elsewhere.exists() and list(home.iterdir()) == []
    one_line_error(swb("train", env={"SWB_TRAIN_DAYS": "-5"}), "setting train_days=-5 from SWB_TRAIN_DAYS: must be a positive whole number")
    assert list(home.iterdir()) == []


def test_settings_ini_not_utf8_is_one_line(home):
    (home / "settings.ini").write_bytes(b"[universe]\nsymbols = AAPL\n# r\xe9sum\xe9\n")   # Latin-1 from an old editor
    one_line_error(swb("info"), f"{home / 'settings.ini'}: not UTF-8 text (byte 0xe9 on line 3); save it as UTF-8")


def test_a_secret_is_never_shown(home, capsys, monkeypatch):
    monkeypatch.setenv("SWB_ALERT_WEBHOOK_URL", "hooks.example.com/T0KEN-s3cret")
    line = _line(capsys, "info")
    assert "alert_webhook_url=<hidden> from SWB_ALERT_WEBHOOK_URL" in line and "s3cret" not in line, line
