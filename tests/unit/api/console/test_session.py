"""Where a signed-in browser may be sent next: only to a path of this site."""

from __future__ import annotations

import pytest

from api.console.session import local_path


@pytest.mark.parametrize(
    ("target", "path"),
    [
        ("/alerts/1b9d6bcd-bbfd-4b2d-9b5d-ab8dfbbd4bed", "/alerts/1b9d6bcd-bbfd-4b2d-9b5d-ab8dfbbd4bed"),
        ("/", "/"),
        (None, "/"),
        ("", "/"),
        ("alerts/1", "/"),
        ("//evil.example/x", "/"),
        ("/\\evil.example", "/"),
        ("https://evil.example/", "/"),
        ("javascript:alert(1)", "/"),
    ],
)
def test_only_local_paths_are_followed(target: str | None, path: str) -> None:
    assert local_path(target) == path
