"""Passes take turns: one at a time, the family with the least recent runner time first."""

from __future__ import annotations

import threading
import time

from runners.turns import FairTurns


def waiters_after_a_held_turn(turns: FairTurns, holder: str, families: list[str], pause: float,
                              on_release=lambda: None) -> list[str]:
    """Hold a turn for ``holder``; meanwhile ``families`` ask for one each, ``pause`` seconds
    apart; then let go. The order in which they got their turns (threads named by family)."""
    order: list[str] = []
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with turns.turn(holder):
            held.set()
            release.wait(5)
            on_release()

    def wait_for(family: str) -> None:
        with turns.turn(family):
            order.append(family)

    first = threading.Thread(target=hold)
    first.start()
    held.wait(5)
    waiters = [threading.Thread(target=wait_for, args=(f,), name=f, daemon=True) for f in families]
    for waiter in waiters:
        waiter.start()
        time.sleep(pause)
    release.set()
    for thread in [first, *waiters]:
        thread.join(5)
    return order


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

    def later() -> None:
        now[0] += 0.05

    # clip asks first, but has used the most
    order = waiters_after_a_held_turn(turns, "ocr", ["clip", "faces", "ocr"], 0.05, later)
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
    done = waiters_after_a_held_turn(turns, "c", ["a", "b"], 0.0)
    assert sorted(done) == ["a", "b"]
