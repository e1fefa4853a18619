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


@pytest.mark.parametrize("start", ["to_thread", "in_thread"])
def test_a_cancelled_caller_goes_on_only_when_its_thread_has_finished(start):
    # The thread's work holds the request's image: the request's admission slot must not be
    # freed before the work ends.
    from adapters.aio import to_thread

    finished = threading.Event()

    def work():
        threading.Event().wait(0.3)
        finished.set()
        return "done"

    async def main():
        with ThreadPoolExecutor(2) as pool:
            call = to_thread(work) if start == "to_thread" else in_thread(pool, work)
            task = asyncio.ensure_future(call)
            await asyncio.sleep(0.05)
            task.cancel()
            task.cancel()  # a second cancellation does not cut the wait short either
            with pytest.raises(asyncio.CancelledError):
                await task
            return finished.is_set()

    assert asyncio.run(main()) is True


def test_a_result_still_comes_back_when_nobody_cancels():
    from adapters.aio import to_thread

    assert asyncio.run(to_thread(sum, [1, 2, 3])) == 6
