"""The in-process worker's dispatch: grouped models go out a group at a time (to be batched),
and jobs that arrive just after a group went out join it; other models' jobs go to the next
free thread."""

from __future__ import annotations

import threading
import time

from pixelgate.engine import ThreadWorker


def peak_concurrency(*, grouped: bool, jobs: int = 6) -> int:
    running = 0
    peak = 0
    lock = threading.Lock()

    def handler(job_id: str) -> None:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        time.sleep(0.2)
        with lock:
            running -= 1

    worker = ThreadWorker(handler, threads=6, group_size=2, grouped=lambda model: grouped)
    worker.start()
    for index in range(jobs):
        worker.enqueue(f"job_{index}", "some/model")
    deadline = time.monotonic() + 10
    while worker.depth and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.3)
    worker.stop()
    return peak


def test_a_grouped_model_runs_one_group_at_a_time() -> None:
    assert peak_concurrency(grouped=True) == 2


def test_an_ungrouped_model_uses_every_free_thread() -> None:
    assert peak_concurrency(grouped=False) == 6


def test_jobs_arriving_just_after_a_group_went_out_join_it_later_ones_wait() -> None:
    started: dict[str, float] = {}
    lock = threading.Lock()

    def handler(job_id: str) -> None:
        with lock:
            started[job_id] = time.monotonic()
        time.sleep(0.6)

    worker = ThreadWorker(
        handler, threads=6, group_size=4, grouped=lambda model: True, gather_seconds=0.2
    )
    worker.start()
    begin = time.monotonic()
    worker.enqueue("first", "m")
    time.sleep(0.05)
    worker.enqueue("joiner-1", "m")
    worker.enqueue("joiner-2", "m")
    time.sleep(0.25)  # the group no longer takes joiners
    worker.enqueue("late", "m")
    deadline = time.monotonic() + 10
    while len(started) < 4 and time.monotonic() < deadline:
        time.sleep(0.01)
    worker.stop()

    assert started["joiner-1"] - begin < 0.2 and started["joiner-2"] - begin < 0.2
    assert started["late"] - begin >= 0.6  # after the group was done
