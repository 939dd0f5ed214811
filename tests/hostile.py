"""The tally of hostile requests the suite sends (forged, replayed, malformed, oversized,
unauthenticated) and how many of them the services accepted, printed at the end of a run."""

from __future__ import annotations

from typing import Protocol

import pytest


class _Answer(Protocol):
    status_code: int


_sent: list[tuple[str, int]] = []


def hostile(what: str, answer: _Answer) -> _Answer:
    """Count one hostile request and the status it got; returns the answer for the assertions."""
    _sent.append((what, answer.status_code))
    return answer


def accepted() -> list[tuple[str, int]]:
    """The hostile requests answered with a 2xx so far."""
    return [(what, status) for what, status in _sent if 200 <= status < 300]


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print how many hostile requests were sent and which (if any) were accepted."""
    if not _sent:
        return
    taken = accepted()
    terminalreporter.write_sep("-", "hostile requests")
    terminalreporter.write_line(
        f"hostile requests sent: {len(_sent)}, accepted (2xx): {len(taken)}"
    )
    for what, status in taken:
        terminalreporter.write_line(f"  accepted: {what} -> {status}")
