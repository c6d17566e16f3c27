"""The Faust corrections install only where they were written for: the pinned faust-streaming,
with every method they wrap present, so an upgrade or a rename upstream fails at start-up."""

from __future__ import annotations

import inspect
import tomllib
from pathlib import Path

import faust
import pytest
from aiokafka import AIOKafkaConsumer
from faust.tables.recovery import Recovery
from faust.transport.consumer import Consumer
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread

from streams import faust_fixes
from streams.faust_fixes import PINNED_FAUST_VERSION, FaustPatchError, install
from vigil.topics import HOT_PATH_FETCH_WAIT_MS

PYPROJECT = Path(__file__).resolve().parents[3] / "pyproject.toml"


def _renamed_consumer() -> type:
    """A fresh stand-in for a future Consumer where `_add_gap` was renamed."""

    class _Consumer:
        def _new_offset(self, tp):
            return 7

        def _add_gap_between(self, tp, offset_from, offset_to):
            return None

    return _Consumer


def _wrap_calls(calls: list[str]):
    def wrap(original):
        calls.append(original.__name__)

        def patched(self, *args):
            return ("patched", original(self, *args))

        return patched

    return wrap


def test_the_pin_in_the_code_is_the_pin_in_pyproject():
    dependencies = tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    assert f"faust-streaming=={PINNED_FAUST_VERSION}" in dependencies


@pytest.mark.parametrize(
    ("installed", "named"),
    [("0.16.0", "faust-streaming 0.16.0"), ("0.15.2", "faust-streaming 0.15.2"), (None, "no faust-streaming")],
)
def test_apply_refuses_any_other_faust_and_patches_nothing(monkeypatch, installed, named):
    calls: list[str] = []
    _Consumer = _renamed_consumer()
    monkeypatch.setattr(faust_fixes, "installed_faust_version", lambda: installed)
    monkeypatch.setattr(faust_fixes, "PATCHES", ((_Consumer, "_new_offset", _wrap_calls(calls)),))
    with pytest.raises(FaustPatchError) as refused:
        faust_fixes.apply()
    assert named in str(refused.value)
    assert f"corrects faust-streaming {PINNED_FAUST_VERSION}" in str(refused.value)
    assert calls == []
    assert _Consumer()._new_offset("tp") == 7


def test_a_renamed_method_fails_loudly_before_anything_is_patched():
    calls: list[str] = []
    _Consumer = _renamed_consumer()
    patches = (
        (_Consumer, "_new_offset", _wrap_calls(calls)),
        (_Consumer, "_add_gap", _wrap_calls(calls)),
    )
    with pytest.raises(FaustPatchError) as refused:
        install(patches)
    assert "cannot patch" in str(refused.value)
    assert "_Consumer._add_gap:" in str(refused.value)
    assert "_new_offset" not in str(refused.value)
    assert calls == []
    assert "_add_gap" not in vars(_Consumer)
    assert _Consumer()._new_offset("tp") == 7


def test_install_wraps_each_method_once():
    calls: list[str] = []
    _Consumer = _renamed_consumer()
    patches = ((_Consumer, "_new_offset", _wrap_calls(calls)),)
    install(patches)
    install(patches)
    assert calls == ["_new_offset"]
    assert _Consumer()._new_offset("tp") == ("patched", 7)


def test_apply_on_the_pinned_faust_wraps_every_named_method_once():
    faust_fixes.apply()
    first = {name: getattr(cls, name) for cls, name, _ in faust_fixes.PATCHES}
    faust_fixes.apply()
    for cls, name, _ in faust_fixes.PATCHES:
        assert getattr(cls, name) is first[name]
        assert getattr(cls, name)._vigil_patched is True
    assert {(cls, name) for cls, name, _ in faust_fixes.PATCHES} == {
        (Consumer, "_new_offset"),
        (Consumer, "_add_gap"),
        (Recovery, "on_recovery_completed"),
        (Recovery, "_resume_streams"),
        (AIOKafkaConsumerThread, "_create_worker_consumer"),
        (Consumer, "force_commit"),
        (Consumer, "_wait_next_records"),
    }


async def test_the_workers_consumer_waits_at_most_the_short_fetch_wait_for_records():
    """Built as Faust builds it (the real method, patched), the consumer carries the short wait into its fetcher."""
    faust_fixes.apply()
    app = faust.App("fetch-wait-test", broker="kafka://127.0.0.1:1", web_enabled=False, store="memory://")
    thread = app.consumer._thread
    consumer = thread._create_worker_consumer(app.transport)
    assert consumer._fetch_max_wait_ms == faust_fixes.FETCH_MAX_WAIT_MS == HOT_PATH_FETCH_WAIT_MS < 1500
    # The attribute its start() hands to the fetcher: a rename in aiokafka would leave the wait at 1.5 s.
    assert "self._fetch_max_wait_ms" in inspect.getsource(AIOKafkaConsumer.start)


def test_the_steps_registered_before_commit_run_before_the_commit_itself():
    import asyncio

    order: list[str] = []

    class _App:
        pass

    class _Consumer:
        app = _App()

        async def force_commit(self, topics=None):
            order.append("commit")
            return True

    _Consumer.force_commit = faust_fixes._steps_first(_Consumer.force_commit)

    async def write_states():
        await asyncio.sleep(0)
        order.append("states written")

    assert asyncio.run(_Consumer().force_commit()) is True
    assert order == ["commit"]  # no steps registered: a plain commit
    faust_fixes.before_commit(_Consumer.app, write_states)
    order.clear()
    assert asyncio.run(_Consumer().force_commit()) is True
    assert order == ["states written", "commit"]
