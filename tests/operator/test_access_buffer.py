"""The access log keeps its lines and writes them in one piece, whatever the stream buffers."""

from __future__ import annotations

import io
import logging
import os
from pathlib import Path

from aegis.proxy.access_log import BufferedLineHandler


class CountingStream(io.StringIO):
    """A stream that writes through, as ``sys.stdout`` does under ``PYTHONUNBUFFERED``."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, s: str) -> int:
        self.writes += 1
        return super().write(s)


def logger_with(handler: logging.Handler, name: str) -> logging.Logger:
    log = logging.getLogger(name)
    log.handlers = [handler]
    log.propagate = False
    log.setLevel(logging.INFO)
    return log


def test_lines_are_kept_and_written_in_one_piece() -> None:
    stream = CountingStream()
    handler = BufferedLineHandler(stream, flush_interval_s=3600)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log = logger_with(handler, "test.access.one_piece")
    for i in range(100):
        log.info('{"n":%d}', i)
    assert stream.writes == 0  # nothing per line
    handler.flush_now()
    assert stream.writes == 1
    assert stream.getvalue() == "".join(f'{{"n":{i}}}\n' for i in range(100))
    handler.flush_now()  # nothing kept: nothing written
    assert stream.writes == 1


def test_a_full_buffer_or_an_elapsed_interval_writes_it_out() -> None:
    stream = CountingStream()
    handler = BufferedLineHandler(stream, flush_interval_s=3600, max_buffered=100)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log = logger_with(handler, "test.access.full")
    for _ in range(10):
        log.info("x" * 29)  # 30 characters with its newline: the 4th line fills 100
    assert stream.writes == 2
    assert stream.getvalue() == ("x" * 29 + "\n") * 8
    handler.flush_interval_s = 0  # an interval that has passed: the next line goes out
    log.info("last")
    assert stream.getvalue() == ("x" * 29 + "\n") * 10 + "last\n"


def test_closing_writes_what_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    with path.open("w", buffering=1) as stream:
        handler = BufferedLineHandler(stream, flush_interval_s=3600)
        log = logger_with(handler, "test.access.close")
        log.info("one")
        log.info("two")
        assert os.path.getsize(path) == 0
        handler.close()
        assert path.read_text() == "one\ntwo\n"
