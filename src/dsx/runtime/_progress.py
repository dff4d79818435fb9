"""A small progress display for batch runs (Evaluate, optimizers); no dependency.

On a terminal it redraws one line in place (at most ten times a second); elsewhere (logs,
CI, captured output) it prints only the final line, so logs stay short. Given a function
instead, it sends it a line for every item when there are at most twenty, else at every
``ceil(total / 10)`` items — evenly spaced, so no count looks skipped — and at the end
(``dsx build`` uses this to print optimizer progress through its own log).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import IO, Any

__all__ = ["Progress", "Reporter"]

#: ``True`` (stderr), ``False`` (silent) or a function that takes each line.
Reporter = bool | Callable[[str], Any]

_BAR_WIDTH = 20
#: Up to this many items a reporter function gets a line for each; above, about ten lines.
_EVERY_ITEM = 20


class Progress:
    """Progress of ``total`` items with a running score and error count."""

    def __init__(
        self,
        total: int,
        *,
        desc: str,
        display: Reporter = True,
        stream: IO[str] | None = None,
        transient: bool = False,
    ) -> None:
        self.total = total
        self.desc = desc
        self.done = 0
        self.errors = 0
        self.score: float | None = None
        self._start = time.perf_counter()
        self._last_draw = 0.0
        self._last_step = 0
        self._step = 1 if total <= _EVERY_ITEM else -(-total // 10)
        self._sink = display if callable(display) else None
        self._stream = stream if stream is not None else sys.stderr
        self._live = display is True and _is_tty(self._stream)
        self._quiet = display is False
        self._drawn = False
        self.info: str | None = None
        # A transient display (a step inside a larger run) leaves nothing behind when closed.
        self._transient = transient

    @property
    def silent(self) -> bool:
        return self._quiet

    def update(
        self, done: int, *, score: float | None = None, errors: int = 0, info: str | None = None
    ) -> None:
        """``done`` items finished; ``score`` is the running percent (``None``: not shown)."""
        self.done, self.score, self.errors, self.info = done, score, errors, info
        if self._live:
            now = time.perf_counter()
            if now - self._last_draw >= 0.1 or done >= self.total:
                self._last_draw = now
                self._draw()
        elif self._sink is not None and self.total and not self._transient:
            step = done // self._step
            if step > self._last_step and done < self.total:
                self._last_step = step
                self._sink(self.line())

    def note(self, text: str) -> None:
        """Show a line of text (above the bar on a terminal)."""
        if self._quiet:
            return
        if self._sink is not None:
            self._sink(text)
            return
        if self._drawn:
            self._stream.write("\r\033[K")
        self._stream.write(text + "\n")
        if self._drawn:
            self._draw()
        self._stream.flush()

    def close(self, summary: str | None = None) -> None:
        """Finish the display with ``summary`` (default: the final progress line)."""
        text = summary if summary is not None else self.line()
        if self._transient:
            if self._drawn:
                self._stream.write("\r\033[K")
                self._stream.flush()
                self._drawn = False
            return
        if self._quiet:
            return
        if self._sink is not None:
            self._sink(text)
            return
        if self._drawn:
            self._stream.write("\r\033[K")
        self._stream.write(text + "\n")
        self._stream.flush()
        self._drawn = False

    def line(self) -> str:
        """The progress as one line of text."""
        if self._live:
            filled = self.done * _BAR_WIDTH // max(self.total, 1)
            bar = "█" * filled + "·" * (_BAR_WIDTH - filled)
            parts = [f"{self.desc} {self.done}/{self.total} [{bar}]"]
        else:  # a log line: no bar
            parts = [f"{self.desc}: {self.done}/{self.total}"]
        if self.score is not None:
            parts.append(f"score {self.score:.2f}%")
        if self.info:
            parts.append(self.info)
        if self.errors:
            parts.append(f"{self.errors} error{'s' if self.errors != 1 else ''}")
        elapsed = time.perf_counter() - self._start
        if self._live and self.done and elapsed > 0:
            parts.append(f"{self.done / elapsed:.1f}/s")
        return " · ".join(parts)

    def _draw(self) -> None:
        self._stream.write("\r\033[K" + self.line())
        self._stream.flush()
        self._drawn = True


def _is_tty(stream: IO[str]) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False
