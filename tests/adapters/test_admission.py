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


def test_a_raised_limit_lets_more_work_at_once_at_once():
    async def main() -> int:
        admission = Admission(2)
        inside, most = 0, 0
        release = asyncio.Event()

        async def request() -> None:
            nonlocal inside, most
            async with admission.slot():
                inside += 1
                most = max(most, inside)
                await release.wait()
                inside -= 1

        tasks = [asyncio.create_task(request()) for _ in range(8)]
        await asyncio.sleep(0.01)
        assert inside == 2  # the others wait
        await admission.set_limit(5)
        await asyncio.sleep(0.01)
        assert inside == 5 and admission.limit == 5  # three waiting ones went in
        await admission.set_limit(3)  # lower: none of the five is stopped, none of the three waiting goes in
        await asyncio.sleep(0.01)
        assert inside == 5 and admission.limit == 3
        release.set()
        await asyncio.gather(*tasks)
        return most

    assert asyncio.run(main()) == 5


def test_a_lower_limit_holds_once_the_requests_over_it_finish():
    async def main() -> list[int]:
        admission = Admission(4)
        inside, seen = 0, []
        gates = [asyncio.Event() for _ in range(10)]

        async def request(gate: asyncio.Event) -> None:
            nonlocal inside
            async with admission.slot():
                inside += 1
                seen.append(inside)
                await gate.wait()
                inside -= 1

        tasks = [asyncio.create_task(request(gate)) for gate in gates]
        await asyncio.sleep(0.01)
        assert inside == 4
        await admission.set_limit(2)
        for gate in gates:  # one request finishes at a time
            gate.set()
            await asyncio.sleep(0.01)
        await asyncio.gather(*tasks)
        await admission.set_limit(1)  # lower while idle: the free slots go at once
        async with admission.slot():
            assert admission._slots.locked()
        await admission.set_limit(6)  # and up again
        async with admission.slot(), admission.slot(), admission.slot(), admission.slot(), admission.slot():
            async with admission.slot():
                assert admission.active == 6 and admission._slots.locked()
        return seen

    seen = asyncio.run(main())
    assert seen[:4] == [1, 2, 3, 4] and max(seen[4:]) <= 2


def test_the_limit_fits_the_runners_device_once_they_answer():
    def about(device: str, *answers: bool) -> dict:
        return {"device": device, "runners": [{"answers": answer} for answer in answers]}

    def fitted(answers: list, limit_on=lambda device: 32 if device == "cuda" else 2) -> tuple[str, int, int]:
        asked = 0

        async def ask() -> dict:
            nonlocal asked
            asked += 1
            answer = answers.pop(0)
            if isinstance(answer, Exception):
                raise answer
            return answer

        async def main() -> tuple[str, int]:
            admission = Admission(2)
            found = await admission.fit_to_device(ask, limit_on, every=0.001)
            return found, admission.limit

        found, limit = asyncio.run(main())
        return found, limit, asked

    # No runner up yet (elsewhere, or starting): asked again until one answers.
    assert fitted([ConnectionError("refused"), asyncio.TimeoutError(), about("cuda", True)]) == ("cuda", 32, 3)
    assert fitted([about("cpu", True, True)]) == ("cpu", 2, 1)
    # A CPU runner answering first does not settle it while another (a GPU box) is silent.
    assert fitted([about("cpu", True, False), about("cpu", True, False), about("cuda", True, True)]) == ("cuda", 32, 3)
    assert fitted([about("cpu", True, False), about("cpu", True, True)]) == ("cpu", 2, 2)


def test_the_limit_follows_a_runner_that_moves_to_another_device():
    # A GPU variant rolled out for a runner elsewhere, then rolled back.
    def about(device: str, *answers: bool) -> dict:
        return {"device": device, "runners": [{"answers": answer} for answer in answers]}

    async def main() -> list[int]:
        answers = [about("cpu", True, True), about("cuda", True, True), ConnectionError("all down"),
                   about("cpu", True, False),  # the GPU runner silent for a while: no move yet
                   about("cpu", True, True)]
        limits, done = [], asyncio.Event()
        admission = Admission(2)

        async def ask() -> dict:
            limits.append(admission.limit)
            if not answers:
                done.set()
                await asyncio.Event().wait()
            answer = answers.pop(0)
            if isinstance(answer, Exception):
                raise answer
            return answer

        follower = asyncio.create_task(admission.follow_device(
            ask, lambda device: 32 if device == "cuda" else 2, every=0.001, longest=0.001))
        await done.wait()
        follower.cancel()
        return limits

    assert asyncio.run(main()) == [2, 2, 32, 32, 32, 2]


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
