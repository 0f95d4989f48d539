"""``aegis-proxy serve`` under cProfile, profiling only while asked to.

``python -m bench._profiled OUT.prof serve --config FILE``: SIGUSR1 starts profiling the CPU
time of the event loop's thread, SIGUSR2 stops and writes ``OUT.prof``, so start-up (imports,
config) stays out of a profile meant to show the cost per call.
"""

from __future__ import annotations

import cProfile
import signal
import sys
import time
from types import FrameType

from aegis.proxy.__main__ import main

# CPU time of the event loop's thread: wall time would charge GIL waits and idle polls to
# whatever function happened to be running.
_profile = cProfile.Profile(time.thread_time)


def _start(signum: int, frame: FrameType | None) -> None:
    _profile.enable()


def _stop(signum: int, frame: FrameType | None) -> None:
    _profile.disable()
    _profile.dump_stats(sys.argv[1])


if __name__ == "__main__":
    signal.signal(signal.SIGUSR1, _start)
    signal.signal(signal.SIGUSR2, _stop)
    raise SystemExit(main(sys.argv[2:]))
