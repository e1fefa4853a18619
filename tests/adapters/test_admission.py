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


def test_memory_is_trimmed_each_second_in_which_requests_finished(monkeypatch):
    trims = []
    monkeypatch.setattr(admission_module.memory, "trim", lambda: trims.append(1))

    async def main() -> None:
        admission = Admission(2)
        janitor = asyncio.create_task(admission.give_back_memory(every=0.02))
        await asyncio.sleep(0.1)
        assert trims == []  # nothing was done
        async with admission.slot():
            await asyncio.sleep(0.1)
            assert trims == []  # nothing finished yet
        await asyncio.sleep(0.05)
        assert trims == [1]
        await asyncio.sleep(0.1)
        assert trims == [1]  # nothing finished since
        janitor.cancel()

    asyncio.run(main())


def test_a_worker_idle_after_work_for_the_time_given_starts_afresh_once(monkeypatch):
    monkeypatch.setattr(admission_module.memory, "trim", lambda: None)
    now = [0.0]
    fresh = []

    async def main() -> None:
        admission = Admission(2, start_afresh_after=1.0, start_afresh=lambda: fresh.append(now[0]),
                              clock=lambda: now[0])
        janitor = asyncio.create_task(admission.give_back_memory(every=0.01))
        now[0] = 5.0
        await asyncio.sleep(0.05)
        assert fresh == []  # idle, but it never worked: nothing to give back
        async with admission.slot():
            now[0] = 10.0
            await asyncio.sleep(0.05)
        assert fresh == []  # at work
        now[0] = 10.5
        await asyncio.sleep(0.05)
        assert fresh == []  # not idle long enough
        now[0] = 11.6
        await asyncio.wait_for(janitor, 1.0)  # it ends once it has called for a fresh start
        assert fresh == [11.6]

    asyncio.run(main())
    never = Admission(2, start_afresh_after=0.0, start_afresh=lambda: fresh.append(-1.0))
    never.finished = 1
    assert not never.idle_for_good(last_work=-1e9)  # MODEL_TTL=0 (or preloads): workers stay


def test_over_http_no_batch_holds_more_image_requests_than_the_limit(tmp_path):
    # One image request worked on at a time: concurrent requests all succeed, one after another,
    # and no runner batch ever holds two of them.
    import concurrent.futures

    from tests.adapters.test_ocr import immich_entries, ocr
    from tests.conftest import LIMITS
    from tests.support.bento_server import BentoServer
    from tests.support.metrics import batch_sizes
    from tests.support.ocr_cases import BATCH, FIXTURES, squash

    server = BentoServer(".", tmp_path, {**LIMITS, "IMMICH_CN_ML_MAX_ACTIVE_REQUESTS": "1"}).start()
    try:
        images = [(FIXTURES / "batch" / f"{n:02d}.png").read_bytes() for n in range(8)]
        with concurrent.futures.ThreadPoolExecutor(len(images)) as pool:
            answers = list(pool.map(lambda image: ocr(server, image, immich_entries()), images))
        for n, response in enumerate(answers):
            assert response.status_code == 200 and squash(response.json()["ocr"]["text"]) == squash(BATCH[n])
        for api in ("ocr_detect", "ocr_recognize"):
            batches, calls, single_call_batches = batch_sizes(server.url, api)
            assert calls == batches == single_call_batches == 8, api
    finally:
        server.stop()
