"""Starting a model worker process (`model_host`), kept apart from `model_process` so that
`pixelgate serve` can start one before it imports anything else: its imports (torch,
diffusers: seconds) then overlap all of the API process's start. Standard library only."""

from __future__ import annotations

import socket
import subprocess
import sys
from dataclasses import dataclass

__all__ = ["HeadStart", "start_host"]


@dataclass(eq=False)
class HeadStart:
    """A model worker process started before its settings are known (`start_host`): it
    imports torch and diffusers meanwhile, and takes its `Configure` when it is adopted."""

    process: subprocess.Popen[bytes]
    socket: socket.socket

    def cancel(self) -> None:
        """Not needed after all: end it (it has done nothing but import)."""
        self.socket.close()
        self.process.kill()
        self.process.wait()


def start_host() -> HeadStart:
    """Start a model worker process (`model_host`) on one end of a new socket pair."""
    ours, theirs = socket.socketpair()
    try:
        process = subprocess.Popen(
            [sys.executable, "-m", "pixelgate.engine.model_host", str(theirs.fileno())],
            pass_fds=(theirs.fileno(),),
            stdin=subprocess.DEVNULL,
        )
    except BaseException:
        ours.close()
        raise
    finally:
        theirs.close()
    return HeadStart(process, ours)
