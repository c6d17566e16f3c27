"""Prevention tips as data: `tips.toml`, one entry per alert type, sent to a member after an incident."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from importlib.resources import files


@dataclass(frozen=True, slots=True, kw_only=True)
class Tip:
    """One practical prevention step in plain words."""

    title: str
    text: str


def load_tips() -> dict[str, Tip]:
    """The tips of `tips.toml` by alert type; a malformed entry raises `ValueError` naming it."""
    data = tomllib.loads(files("vigil.alerting").joinpath("tips.toml").read_text(encoding="utf-8"))
    tips = {}
    for alert_type, entry in data.items():
        if not isinstance(entry, dict) or not all(isinstance(entry.get(key), str) for key in ("title", "text")):
            raise ValueError(f"tips.toml: [{alert_type}] needs a title and a text, both strings")
        tips[alert_type] = Tip(title=entry["title"], text=" ".join(entry["text"].split()))
    return tips
