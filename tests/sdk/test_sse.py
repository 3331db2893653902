"""The event-stream decoder, on the cases the WHATWG rules single out."""

from __future__ import annotations

from pixelgate.sdk.sse import ServerSentEvent, SSEDecoder


def decode_all(lines: list[str]) -> list[ServerSentEvent]:
    decoder = SSEDecoder()
    return [event for line in lines if (event := decoder.decode(line)) is not None]


def test_fields_make_one_event_at_the_blank_line() -> None:
    events = decode_all(["id: 4", "event: running", 'data: {"a": 1}', ""])

    assert events == [ServerSentEvent(event="running", data='{"a": 1}', id="4")]


def test_comments_are_ignored_and_data_lines_join() -> None:
    events = decode_all([": keep-alive", "", "data: one", "data:two", ""])

    assert events == [ServerSentEvent(event="message", data="one\ntwo", id=None)]


def test_the_last_event_id_carries_over_to_later_events() -> None:
    events = decode_all(
        ["id: 7", "event: running", "data: {}", "", "event: progress", "data: 1", ""]
    )

    assert [(event.event, event.id) for event in events] == [("running", "7"), ("progress", "7")]


def test_an_event_without_data_is_not_dispatched() -> None:
    assert decode_all(["event: nothing", "", "retry: 1000", "data: x", ""]) == [
        ServerSentEvent(event="message", data="x", id=None, retry=1000)
    ]
