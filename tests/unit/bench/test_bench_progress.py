"""Without a terminal (CI, a log file), every bench phase says when it starts, how it goes and when it ends."""

from __future__ import annotations

import io

from rich.console import Console

from bench import cli


def test_a_phase_without_a_terminal_writes_lines(monkeypatch):
    out = io.StringIO()
    monkeypatch.setattr(cli, "console", Console(file=out, force_terminal=False, width=100))
    monkeypatch.setattr(cli, "PROGRESS_EVERY_S", 0.0)

    with cli._phase("1 reading/msg: publishing") as status:
        status.update("1 reading/msg: 30,000 of 60,000 stored")

    lines = out.getvalue().splitlines()
    assert lines[0] == "→ 1 reading/msg: publishing"
    assert lines[1] == "  … 1 reading/msg: 30,000 of 60,000 stored"
    assert lines[2].startswith("  done in ") and lines[2].endswith(" s")


def test_progress_lines_are_spaced_out(monkeypatch):
    out = io.StringIO()
    monkeypatch.setattr(cli, "console", Console(file=out, force_terminal=False, width=100))

    with cli._phase("waiting") as status:
        for n in range(100):
            status.update(f"{n} stored")

    assert [line for line in out.getvalue().splitlines() if "stored" in line] == []
