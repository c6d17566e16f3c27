"""`vigil stack up|down|status` over the three pieces of local infrastructure."""

from __future__ import annotations

from collections.abc import Callable

from stack import kafka, mosquitto, postgres
from vigil.settings import Settings

Component = tuple[str, Callable[[Settings], str], Callable[[Settings], bool], Callable[[Settings], object]]
COMPONENTS: list[Component] = [
    ("postgresql", postgres.up, postgres.down, postgres.status),
    ("kafka", kafka.up, kafka.down, kafka.status),
    ("mqtt", mosquitto.up, mosquitto.down, mosquitto.status),
]


def up(settings: Settings, report: Callable[[str, str], None] = lambda *_: None) -> dict[str, str]:
    """Start (or reuse) each component in dependency order; the database first, it holds the registry."""
    settings.state_dir.mkdir(parents=True, exist_ok=True)
    states = {}
    for name, start, _stop, _status in COMPONENTS:
        states[name] = start(settings)
        report(name, states[name])
    return states


def down(settings: Settings) -> dict[str, bool]:
    return {name: stop(settings) for name, _start, stop, _status in reversed(COMPONENTS)}


def status(settings: Settings) -> dict[str, tuple[str, str]]:
    result = {}
    for name, _start, _stop, probe in COMPONENTS:
        answer = probe(settings)
        if isinstance(answer, dict):
            answer = (answer.get("state", "?"), answer.get("detail", ""))
        result[name] = answer
    return result
