"""Progress and log output that works anywhere, and TensorFlow's start-up chatter kept off stderr.

:class:`Progress` draws a live bar (rich) when its stream is a terminal and writes a plain line
every :attr:`Progress.interval` seconds otherwise (logs, CI, ``nohup``, notebooks). :func:`say`
sends featx's messages to the ``"featx"`` logger when someone gave it a handler (the ``featx``
command does; so can an application) and to stderr otherwise. :func:`quiet_tensorflow` quiets
TensorFlow's start-up lines through TensorFlow's own settings (never by touching the host's
stderr); ``FEATX_TF_LOGS=1`` (or ``featx --debug``) keeps them.
"""

from __future__ import annotations

import contextlib
import importlib.abc
import importlib.util
import logging
import os
import re
import sys
import time
from contextlib import contextmanager

__all__ = ["TF_STARTUP_LINES", "Progress", "keep_tensorflow_logs", "logger", "quiet_tensorflow",
           "say"]

#: featx's logger; the ``featx`` command gives it a handler writing to stderr.
logger = logging.getLogger("featx")


def say(message: str, level: int = logging.INFO, stream=None) -> None:
    """Log ``message`` to the ``"featx"`` logger when it has a handler of its own, else print it
    on ``stream`` (default: stderr), so ``verbose=1`` shows it without any logging set-up."""
    if logger.handlers:
        logger.log(level, message)
    else:
        print(message, file=stream if stream is not None else sys.stderr, flush=True)


def _hms(seconds: float) -> str:
    s = int(max(0, seconds))
    return f"{s // 3600}:{s // 60 % 60:02d}:{s % 60:02d}"


class Progress:
    """``Progress(label, verbose)``; ``start(total)``, ``update(n)``, ``close(skipped)``.

    ``verbose=0`` prints nothing. ``verbose>=1`` draws a live bar (rich) when ``stream`` is a
    terminal, and otherwise writes plain lines (``label: done/total (pct) rate ETA``) at the
    start, every :attr:`interval` seconds and at the end; on close it reports the skipped files
    (path and reason: the dataset's own ``skipped`` entries, then the images extraction could
    not decode) either way.

    Examples
    --------
    >>> import io
    >>> out = io.StringIO()
    >>> p = Progress("extract demo", verbose=1, stream=out)
    >>> p.start(10); p.update(10); p.close([])
    >>> out.getvalue().splitlines()[0]
    'extract demo: 0/10 images'
    """

    #: seconds between two plain lines when the stream is not a terminal
    interval = 10.0

    def __init__(self, label: str, verbose: int = 1, stream=None) -> None:
        self.label, self.verbose = label, int(verbose)
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.total = self.done = 0
        self.t0 = self._last_line = time.monotonic()
        self._bar = self._task = None

    def _say(self, text: str, level: int = logging.INFO) -> None:
        say(text, level, self.stream)

    def start(self, total: int) -> None:
        self.total, self.done = int(total), 0
        self.t0 = self._last_line = time.monotonic()
        if not self.verbose or not self.total:
            return
        if self.tty:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                TaskProgressColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )
            from rich.progress import Progress as Bar

            self._bar = Bar(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                            TaskProgressColumn(), TextColumn("{task.fields[rate]}"),
                            TimeElapsedColumn(), TimeRemainingColumn(),
                            console=Console(file=self.stream), transient=False)
            self._task = self._bar.add_task(self.label, total=self.total, rate="")
            self._bar.start()
        else:
            self._say(f"{self.label}: 0/{self.total} images")

    def waiting(self, where) -> None:
        if self.verbose:
            self._say(f"{self.label}: waiting for another process writing {where}")

    def _rate(self) -> float:
        return self.done / max(time.monotonic() - self.t0, 1e-9)

    def update(self, n: int) -> None:
        self.done += int(n)
        if not self.verbose:
            return
        if self._bar is not None:
            self._bar.update(self._task, advance=int(n), rate=f"{self._rate():.1f} img/s")
        elif not self.tty and self.total and self.done < self.total \
                and time.monotonic() - self._last_line >= self.interval:
            self._last_line = time.monotonic()
            rate = self._rate()
            eta = (self.total - self.done) / rate if rate > 0 else 0.0
            self._say(f"{self.label}: {self.done}/{self.total} "
                      f"({100.0 * self.done / self.total:.0f}%) {rate:.1f} img/s "
                      f"ETA {_hms(eta)}")

    def close(self, skipped) -> None:
        if not self.verbose:
            return
        if self._bar is not None:
            self._bar.stop()
            self._bar = None
        elif not self.tty and self.total:
            elapsed = time.monotonic() - self.t0
            self._say(f"{self.label}: {self.done}/{self.total} images in {_hms(elapsed)} "
                      f"({self._rate():.1f} img/s)")
        if skipped:
            lines = "".join(f"\n  {p}: {r}" for p, r in skipped[:10])
            more = f"\n  ... and {len(skipped) - 10} more" if len(skipped) > 10 else ""
            self._say(f"{self.label}: skipped {len(skipped)} file(s) (see FeatureSet.skipped):"
                      f"{lines}{more}", logging.WARNING)


# --------------------------------------------------------------------------- TensorFlow's logs
_QUIET = {"installed": False, "kept": False, "own_stderr": False}
_RETRACING = "triggered tf.function retracing"
#: TensorFlow's C++ start-up lines that no setting of TensorFlow's silences: absl writes what is
#: logged before its ``InitializeLog()`` to stderr whatever the level (the CUDA stub's "Could not
#: find cuda drivers" line on a machine without a GPU, and absl's own notice about it).
TF_STARTUP_LINES = re.compile(
    r"^WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR$"
    r"|^[IWE]\d{4} [\d:. ]+\d+ [\w.]+\.cc:\d+\] ")


def keep_tensorflow_logs() -> None:
    """Leave TensorFlow's logs alone from now on (``featx --debug`` calls this)."""
    _QUIET["kept"] = True
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, _QuietFinder)]


def _drop_retracing(record: logging.LogRecord) -> bool:
    """A filter on the ``"tensorflow"`` logger: drops only its ``tf.function retracing``
    warning, which a featx run triggers by design (each fine-tuning phase is compiled anew)."""
    return _RETRACING not in record.getMessage()


@contextmanager
def _stderr_filtered(pattern: re.Pattern):
    """For the ``featx`` command's own process only: file descriptor 2 goes to a temporary file
    for the block, then every line of it that ``pattern`` does not match is written to the real
    stderr (nothing written meanwhile is lost; only the matching lines are dropped)."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no real fd 2 (embedded interpreters)
        yield
        return
    import tempfile

    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            try:
                sys.stderr.flush()
            except (OSError, ValueError):
                pass
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            kept = [line for line in held.read().splitlines(keepends=True)
                    if not pattern.search(line.decode("utf-8", "replace").rstrip("\r\n"))]
            if kept:
                os.write(2, b"".join(kept))


class _QuietLoader(importlib.abc.Loader):
    """Runs the real loader of ``tensorflow`` with TensorFlow's own log settings."""

    def __init__(self, loader) -> None:
        self.loader = loader

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module) -> None:
        from unittest import mock  # here, not at the top: the command's start stays light

        module.__loader__ = self.loader
        # TensorFlow reads TF_CPP_MIN_LOG_LEVEL once, at its first log line (during this
        # import): setting it for the import alone quiets it and leaves os.environ as it was
        level = {"TF_CPP_MIN_LOG_LEVEL": os.environ.get("TF_CPP_MIN_LOG_LEVEL", "3")}
        with contextlib.ExitStack() as stack:
            stack.enter_context(mock.patch.dict(os.environ, level))
            if _QUIET["own_stderr"]:  # the featx command: its process, its stderr
                stack.enter_context(_stderr_filtered(TF_STARTUP_LINES))
            self.loader.exec_module(module)


class _QuietFinder(importlib.abc.MetaPathFinder):
    """One-shot: finds ``tensorflow`` with the other finders and wraps its loader."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname != "tensorflow":
            return None
        if self in sys.meta_path:
            sys.meta_path.remove(self)
        spec = importlib.util.find_spec(fullname)
        if spec is not None and spec.loader is not None:
            spec.loader = _QuietLoader(spec.loader)
        return spec


def quiet_tensorflow(own_stderr: bool = False) -> None:
    """Keep TensorFlow's start-up chatter (oneDNN, ``cuInit``, CPU-feature lines) and its
    ``tf.function retracing`` warning quiet, once per process and only where the user has not
    asked for them, through TensorFlow's own settings: the host program's stderr is never
    touched.

    Imports ``tensorflow`` (whenever that happens) with ``TF_CPP_MIN_LOG_LEVEL=3`` (unless it is
    set already; the environment is restored after the import) and filters the
    ``tf.function retracing`` warning from the ``"tensorflow"`` logger.
    Python exceptions are untouched. Lines that absl writes before its logging starts ignore
    every setting (:data:`TF_STARTUP_LINES`: on a machine without a GPU, "Could not find cuda
    drivers" and absl's notice, twice); they still reach stderr in Python.

    Parameters
    ----------
    own_stderr : bool, default=False
        Only for a program that owns its process's stderr (the ``featx`` command): also drop
        the :data:`TF_STARTUP_LINES` written while TensorFlow imports; everything else written
        to stderr meanwhile is passed on after the import.

    Does nothing when ``FEATX_TF_LOGS`` is set to anything but ``0`` or after
    :func:`keep_tensorflow_logs`.
    """
    if _QUIET["kept"] or os.environ.get("FEATX_TF_LOGS", "0") != "0":
        return
    _QUIET["own_stderr"] = _QUIET["own_stderr"] or bool(own_stderr)
    if _QUIET["installed"]:
        return
    _QUIET["installed"] = True
    logging.getLogger("tensorflow").addFilter(_drop_retracing)
    if "tensorflow" not in sys.modules:
        sys.meta_path.insert(0, _QuietFinder())
