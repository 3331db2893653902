"""The housekeeping thread: each chore on its own clock, a failing one no stop to the rest."""

from __future__ import annotations

import threading
import time

from pixelgate.service.maintenance import Chore, Housekeeper


def test_each_chore_runs_on_its_own_clock_and_a_failure_stops_none() -> None:
    runs = {"often": 0, "rarely": 0, "failing": 0}
    lock = threading.Lock()

    def count(name: str) -> None:
        with lock:
            runs[name] += 1
        if name == "failing":
            raise RuntimeError("the database is down")

    housekeeper = Housekeeper(
        [
            Chore("often", 0.02, lambda: count("often")),
            Chore("rarely", 60.0, lambda: count("rarely")),
            Chore("failing", 0.02, lambda: count("failing")),
        ]
    )
    housekeeper.start()
    time.sleep(0.5)
    housekeeper.stop()
    settled = dict(runs)
    time.sleep(0.1)

    assert settled["often"] >= 5
    assert settled["failing"] >= 5  # tried again at each turn
    assert settled["rarely"] == 1  # at the start, then not for a minute
    assert runs == settled  # nothing runs after stop
