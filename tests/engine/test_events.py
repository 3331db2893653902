from __future__ import annotations

import asyncio
import threading

from pixelgate.engine import EventBus, JobEventMessage


def test_events_published_from_a_thread_reach_the_event_loop() -> None:
    async def scenario() -> list[str]:
        bus = EventBus()
        subscription = bus.subscribe("job_1")
        other = bus.subscribe("job_2")

        def publish() -> None:
            for kind in ("running", "progress", "succeeded"):
                bus.publish(JobEventMessage("job_1", kind))

        threading.Thread(target=publish).start()
        received = [(await subscription.next(5)).type for _ in range(3)]
        subscription.close()
        other.close()
        bus.publish(JobEventMessage("job_1", "late"))  # nobody listens; nothing breaks
        return received

    assert asyncio.run(scenario()) == ["running", "progress", "succeeded"]


def test_a_quiet_subscription_times_out() -> None:
    async def scenario() -> None:
        subscription = EventBus().subscribe("job_1")
        try:
            await subscription.next(0.05)
        except TimeoutError:
            return
        raise AssertionError("expected a timeout")

    asyncio.run(scenario())
