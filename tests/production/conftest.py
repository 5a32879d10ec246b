"""Prints what the production tests measured at the end of the run.

The numbers come from `tests.support.production.measure`.
"""

from __future__ import annotations

from typing import Any

from tests.support.production import MEASUREMENTS


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not MEASUREMENTS:
        return
    terminalreporter.section("replica measurements")
    for test, values in MEASUREMENTS:
        terminalreporter.write_line(test)
        for name, value in values.items():
            terminalreporter.write_line(f"  {name}: {value}")
