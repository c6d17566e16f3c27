"""The liveness file is stamped only while every worker completes rounds."""

from __future__ import annotations

from pathlib import Path

import pytest

from claims_bridge.liveness import ALIVE_FILE, Liveness


def test_stamped_once_every_worker_has_completed_a_round(tmp_path: Path) -> None:
    liveness = Liveness(tmp_path, ["builder", "notices"])
    liveness.beat("builder")()
    liveness.beat("builder")()
    assert not (tmp_path / ALIVE_FILE).exists(), "the notice worker has not completed a round yet"
    liveness.beat("notices")()
    assert (tmp_path / ALIVE_FILE).exists()


def test_an_unknown_worker_is_a_bug(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown worker 'delivery'"):
        Liveness(tmp_path, ["builder"]).beat("delivery")
