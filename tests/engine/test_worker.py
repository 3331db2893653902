"""The in-process worker's dispatch: a grouped model has at most a batch's worth of jobs out at
a time (its batcher merges them), other models' jobs go to the next free thread."""

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


def test_a_grouped_model_has_at_most_a_group_out_at_a_time() -> None:
    assert peak_concurrency(grouped=True) == 2


def test_an_ungrouped_model_uses_every_free_thread() -> None:
    assert peak_concurrency(grouped=False) == 6
