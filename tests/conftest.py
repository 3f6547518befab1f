from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from pytest_asyncio import is_async_test

from tests.helpers import PillionProcess, running_pillion

pytest_plugins = ["tests.watchdog"]

# How long tasks that are just finishing (a cancellation being delivered, a close
# completing) get at the end of a test before they count as left behind.
_FINISHING_GRACE = 1.0


@pytest.fixture(autouse=True)
def _no_asyncio_pending_tasks(request: pytest.FixtureRequest) -> None:
    """Fail an asyncio test that leaves tasks running on its loop when it ends."""
    if is_async_test(request.node):
        request.getfixturevalue("_asyncio_tasks_left")


@pytest.fixture
async def _asyncio_tasks_left() -> AsyncIterator[None]:
    """Runs on the test's own loop (function-scoped, as every loop here): compares
    the loop's tasks before and after the test and its other fixtures."""
    before = asyncio.all_tasks()
    yield
    this = asyncio.current_task()

    def left() -> set[asyncio.Task[object]]:
        return {t for t in asyncio.all_tasks() - before if t is not this and not t.done()}

    loop = asyncio.get_running_loop()
    deadline = loop.time() + _FINISHING_GRACE
    while (remaining := left()) and loop.time() < deadline:
        await asyncio.wait(remaining, timeout=deadline - loop.time())
    if remaining:
        names = sorted(_describe(task) for task in remaining)
        for task in remaining:
            task.cancel()
        await asyncio.wait(remaining, timeout=_FINISHING_GRACE)
        pytest.fail(f"tasks left pending by the test: {', '.join(names)}", pytrace=False)


def _describe(task: asyncio.Task[object]) -> str:
    """The task's coroutine and where it waits."""
    coro = task.get_coro()
    name = getattr(coro, "__qualname__", repr(coro))
    frame = getattr(coro, "cr_frame", None)
    where = f" at {frame.f_code.co_filename}:{frame.f_lineno}" if frame is not None else ""
    return f"{name} ({task.get_name()}{where})"


@pytest.fixture
def pillion(tmp_path: Path) -> Iterator[PillionProcess]:
    """A started, ready ``pillion run`` on free loopback ports; stopped afterwards."""
    with running_pillion(tmp_path, "lifecycle:\n  drain_timeout: 10s\n") as process:
        yield process
