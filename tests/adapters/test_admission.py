"""At most ``limit`` image requests are worked on at once; memory goes back when all are done."""

from __future__ import annotations

import asyncio

import adapters.admission as admission_module
from adapters.admission import Admission


def test_no_more_than_the_limit_work_at_once_and_all_finish_in_order():
    async def main() -> tuple[int, list[int]]:
        admission = Admission(3)
        inside, most, order = 0, 0, []

        async def request(n: int) -> None:
            nonlocal inside, most
            async with admission.slot():
                order.append(n)
                inside += 1
                most = max(most, inside)
                await asyncio.sleep(0.01)
                inside -= 1

        await asyncio.gather(*(request(n) for n in range(10)))
        assert admission.active == 0 and admission.finished == 10
        return most, order

    most, order = asyncio.run(main())
    assert most == 3
    assert order == list(range(10))


def test_memory_is_trimmed_once_idle_after_work(monkeypatch):
    trims = []
    monkeypatch.setattr(admission_module.memory, "trim", lambda: trims.append(1))

    async def main() -> None:
        admission = Admission(2)
        janitor = asyncio.create_task(admission.give_back_memory(interval=0.01, busy_every=1000))
        await asyncio.sleep(0.05)
        assert trims == []  # nothing was done
        async with admission.slot():
            await asyncio.sleep(0.05)
            assert trims == []  # still working
        await asyncio.sleep(0.05)
        assert trims == [1]
        await asyncio.sleep(0.05)
        assert trims == [1]  # once per bout of work
        janitor.cancel()

    asyncio.run(main())


def test_memory_is_trimmed_now_and_then_while_requests_keep_coming(monkeypatch):
    trims = []
    monkeypatch.setattr(admission_module.memory, "trim", lambda: trims.append(1))

    async def main() -> None:
        admission = Admission(2)
        janitor = asyncio.create_task(admission.give_back_memory(interval=0.01, busy_every=5))
        async with admission.slot():
            for _ in range(20):  # one request always in work, others finishing
                async with admission.slot():
                    await asyncio.sleep(0.01)
        janitor.cancel()

    asyncio.run(main())
    assert 1 <= len(trims) <= 6
