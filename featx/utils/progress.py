"""A dependency-free progress bar on stderr (images/s and ETA), drawn only on a terminal."""

from __future__ import annotations

import sys
import time

__all__ = ["Progress"]


def _hms(seconds: float) -> str:
    s = int(max(0, seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


class Progress:
    """``Progress(label, verbose)``; ``start(total)``, ``update(n)``, ``close(skipped)``.

    ``verbose=0`` prints nothing. ``verbose>=1`` draws the bar when stderr is a TTY and reports
    the skipped files (path and reason: the dataset's own ``skipped`` entries, then the images
    extraction could not decode) on close either way.

    Examples
    --------
    >>> p = Progress("demo", verbose=0)
    >>> p.start(10); p.update(10); p.close([])
    """

    def __init__(self, label: str, verbose: int = 1, stream=None) -> None:
        self.label, self.verbose = label, int(verbose)
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.total = self.done = 0
        self.t0 = self._last_draw = time.monotonic()

    def start(self, total: int) -> None:
        self.total, self.done = int(total), 0
        self.t0 = time.monotonic()

    def waiting(self, where) -> None:
        if self.verbose:
            print(f"{self.label}: waiting for another process writing {where}", file=self.stream)

    def update(self, n: int) -> None:
        self.done += int(n)
        now = time.monotonic()
        if self.verbose and self.tty and (now - self._last_draw > 0.2 or self.done >= self.total):
            self._last_draw = now
            rate = self.done / max(now - self.t0, 1e-9)
            eta = (self.total - self.done) / rate if rate > 0 else 0.0
            pct = 100.0 * self.done / max(self.total, 1)
            width = 24
            fill = int(width * self.done / max(self.total, 1))
            self.stream.write(
                f"\r{self.label} [{'#' * fill}{'.' * (width - fill)}] {self.done}/{self.total} "
                f"{pct:3.0f}% {rate:6.1f} img/s ETA {_hms(eta)} "
            )
            self.stream.flush()

    def close(self, skipped) -> None:
        if not self.verbose:
            return
        if self.tty and self.total:
            self.stream.write("\n")
        if skipped:
            lines = "".join(f"\n  {p}: {r}" for p, r in skipped[:10])
            more = f"\n  ... and {len(skipped) - 10} more" if len(skipped) > 10 else ""
            print(f"{self.label}: skipped {len(skipped)} file(s) (see FeatureSet.skipped):"
                  f"{lines}{more}", file=self.stream)
