"""A Server-Sent Events decoder, fed one line at a time (the WHATWG event-stream rules)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ServerSentEvent:
    event: str
    data: str
    id: str | None
    """The stream's last event id when this event was dispatched: where to resume from."""
    retry: int | None = None


class SSEDecoder:
    """Turns lines (without their line endings) into events.

    >>> decoder = SSEDecoder()
    >>> [decoder.decode(line) for line in ["id: 3", "event: ping", "data: {}", ""]][-1]
    ServerSentEvent(event='ping', data='{}', id='3', retry=None)
    """

    def __init__(self) -> None:
        self._event = ""
        self._data: list[str] = []
        self._retry: int | None = None
        self.last_event_id: str | None = None

    def decode(self, line: str) -> ServerSentEvent | None:
        """The event a blank line completes; None for every other line."""
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self.last_event_id = value
        elif name == "retry" and value.isdigit():
            self._retry = int(value)
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        event, data, retry = self._event, self._data, self._retry
        self._event, self._data, self._retry = "", [], None
        if not data:
            return None
        return ServerSentEvent(
            event=event or "message", data="\n".join(data), id=self.last_event_id, retry=retry
        )
