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


def test_cancelling_the_caller_cancels_what_its_thread_waits_for():
    events = []

    async def slow_runner_call():
        try:
            await asyncio.sleep(5)
            events.append("runner finished")
        except asyncio.CancelledError:
            events.append("runner call cancelled")
            raise

    def work():
        try:
            wait_for(slow_runner_call())
        except BaseException as exc:
            events.append(f"thread got {type(exc).__name__}")
            raise

    async def main():
        with ThreadPoolExecutor(1) as pool:
            task = asyncio.ensure_future(in_thread(pool, work))
            await asyncio.sleep(0.2)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            started = loop.time()
            # The thread is free again at once: the next job runs without waiting 5 s.
            assert await in_thread(pool, lambda: "next") == "next"
            return loop.time() - started

    loop = asyncio.new_event_loop()
    try:
        waited = loop.run_until_complete(main())
    finally:
        loop.close()
    assert waited < 1
    assert sorted(events) == ["runner call cancelled", "thread got CancelledError"]


def test_wait_for_refuses_to_block_an_event_loop():
    async def inner():
        return 1

    async def loop_side():
        return wait_for(inner())  # would deadlock: this runs on the loop

    def work():
        return wait_for(loop_side())

    async def main():
        with ThreadPoolExecutor(1) as pool:
            with pytest.raises(RuntimeError, match="would block an event loop"):
                await in_thread(pool, work)

    asyncio.run(main())
