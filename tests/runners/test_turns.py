"""Passes take turns: one at a time, the family with the least recent runner time first."""

from __future__ import annotations

import threading
import time

from runners.turns import FairTurns


def test_one_pass_at_a_time():
    turns = FairTurns()
    inside, most = [0], [0]
    lock = threading.Lock()

    def work(family: str) -> None:
        for _ in range(20):
            with turns.turn(family):
                with lock:
                    inside[0] += 1
                    most[0] = max(most[0], inside[0])
                time.sleep(0.0005)
                with lock:
                    inside[0] -= 1

    threads = [threading.Thread(target=work, args=(f,)) for f in ("a", "b", "c", "a")]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert most[0] == 1


def test_the_family_with_least_recent_time_goes_first():
    now = [0.0]
    turns = FairTurns(half_life=10.0, clock=lambda: now[0])
    with turns.turn("clip"):
        now[0] += 0.5  # a long CLIP pass
    with turns.turn("faces"):
        now[0] += 0.1
    assert turns.used("clip", now[0]) > turns.used("faces", now[0])

    order = []
    holder = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with turns.turn("ocr"):
            holder.set()
            release.wait(5)
            now[0] += 0.05

    def wait_for(family: str) -> None:
        with turns.turn(family):
            order.append(family)

    first = threading.Thread(target=hold)
    first.start()
    holder.wait(5)
    waiters = [threading.Thread(target=wait_for, args=(f,)) for f in ("clip", "faces", "ocr")]
    for waiter in waiters:  # clip asks first, but has used the most
        waiter.start()
        time.sleep(0.05)
    release.set()
    for thread in [first, *waiters]:
        thread.join()
    assert order == ["ocr", "faces", "clip"]


def test_use_decays_with_the_half_life():
    now = [0.0]
    turns = FairTurns(half_life=10.0, clock=lambda: now[0])
    with turns.turn("clip"):
        now[0] += 1.0
    now[0] += 10.0
    assert abs(turns.used("clip", now[0]) - 0.5) < 1e-9


def test_waiters_never_wait_for_each_other_when_the_ranking_changes_under_them():
    # Rankings that differ with who looks (as decayed uses that underflow to 0 at different
    # moments can): every waiter sees the other one first. The turn must still pass on.
    class Flipping(FairTurns):
        def used(self, family: str, now: float) -> float:
            return float(threading.current_thread().name == family)

    turns = Flipping()
    done = []
    holder, release = threading.Event(), threading.Event()

    def hold() -> None:
        with turns.turn("c"):
            holder.set()
            release.wait(5)

    def wait_for(family: str) -> None:
        with turns.turn(family):
            done.append(family)

    first = threading.Thread(target=hold)
    first.start()
    holder.wait(5)
    waiters = [threading.Thread(target=wait_for, args=(f,), name=f, daemon=True) for f in ("a", "b")]
    for waiter in waiters:
        waiter.start()
    time.sleep(0.1)
    release.set()
    for thread in [first, *waiters]:
        thread.join(5)
    assert sorted(done) == ["a", "b"]
