"One symbol rule: the stored data's check in the expectation suite is the same regex `check_symbol` uses"
import json
from pathlib import Path
from stock_workbench.parse import SYMBOL_REGEX, check_symbol

SUITE = Path(__file__).resolve().parents[1] / "expectations" / "ohlcv_daily.json"


def test_suite_uses_the_symbol_rule():
    regexes = [e["kwargs"]["regex"] for e in json.loads(SUITE.read_text())["expectations"]
               if e["kwargs"].get("column") == "symbol" and "regex" in e["kwargs"]]
    assert regexes == [SYMBOL_REGEX]
    for s in ["^GSPC", "BRK.B", "BF-B", "EURUSD=X", "ES=F", "0700.HK"]: assert check_symbol(s.lower()) == s
