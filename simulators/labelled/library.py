"""The scenario library: every labelled scenario, and choosing some by rule or by name."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable

from simulators.labelled import health, home, live
from simulators.labelled.model import Scenario
from vigil.rules.catalog import ALERT_TYPES

LIBRARY: tuple[Scenario, ...] = (*health.scenarios(), *home.scenarios(), *live.scenarios())
BY_NAME: dict[str, Scenario] = {s.name: s for s in LIBRARY}


def select(rules: Iterable[str] = (), names: Iterable[str] = (),
           library: tuple[Scenario, ...] = LIBRARY) -> list[Scenario]:
    """Scenarios exercising any of `rules` and matching any of `names` (shell patterns); none given: all."""
    rules, names = list(rules), list(names)
    unknown = sorted(set(rules) - set(ALERT_TYPES))
    if unknown:
        raise ValueError(f"unknown rule(s) {', '.join(unknown)}; choose from {', '.join(ALERT_TYPES)}")
    chosen = [s for s in library
              if (not rules or set(rules) & set(s.rules))
              and (not names or any(fnmatch.fnmatchcase(s.name, n) for n in names))]
    if not chosen:
        raise ValueError("no scenario matches " + " and ".join(
            part for part in (f"rules {', '.join(rules)}" if rules else "",
                              f"names {', '.join(names)}" if names else "") if part))
    return chosen
