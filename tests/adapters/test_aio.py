from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from adapters.aio import in_thread, wait_for


def test_a_pool_thread_can_wait_for_coroutines_on_the_loop():
    loop_threads = []

    async def on_loop(value):
        loop_threads.append(threading.current_thread())
        await asyncio.sleep(0.01)
        return value * 2

    def work(value):
        # The loop is free meanwhile: the coroutine runs on it while this thread waits.
        return wait_for(on_loop(value)) + wait_for(on_loop(value)), threading.current_thread()

    async def main():
        with ThreadPoolExecutor(4) as pool:
            results = await asyncio.gather(*(in_thread(pool, work, n) for n in range(8)))
        return results, threading.current_thread()

    results, main_thread = asyncio.run(main())
    assert [total for total, _ in results] == [4 * n for n in range(8)]
    assert all(thread is not main_thread for _, thread in results)
    assert set(loop_threads) == {main_thread}


def test_errors_on_either_side_reach_the_caller():
    async def failing():
        raise KeyError("from the loop")

    async def main():
        with ThreadPoolExecutor(1) as pool:
            with pytest.raises(KeyError, match="from the loop"):
                await in_thread(pool, lambda: wait_for(failing()))
            with pytest.raises(ZeroDivisionError):
                await in_thread(pool, lambda: 1 / 0)

    asyncio.run(main())


def test_wait_for_outside_in_thread_is_a_clear_error():
    async def nothing():
        return None

    with pytest.raises(RuntimeError, match="only on a thread started by in_thread"):
        wait_for(nothing())
