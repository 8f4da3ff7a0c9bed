"""Resource limits for the CSPm front end and the checker: memory and wall-clock time.

A :class:`Guard` enforces a :class:`Limits` on the code it wraps (a CLI command):

* a watchdog thread samples the process's resident memory and the clock every
  ``TICK_S`` seconds; past a limit it interrupts the main thread, which raises
  :class:`ResourceLimitExceeded` (a :class:`CspmEvalError` naming the limit), and
  keeps interrupting until the guard stops (so code that swallows front-end
  errors cannot hide it);
* the address-space limit (``RLIMIT_AS``) is lowered to the current size plus
  the memory budget plus a margin, so a single huge allocation in C fails with
  ``MemoryError`` instead of exhausting the machine; the guard turns that
  ``MemoryError`` into a :class:`ResourceLimitExceeded` as well;
* while it is active, :func:`max_memory` tells the evaluator the budget, so
  it refuses to build a set or sequence that cannot fit, with the position of
  the expression (``{0..100000000}``) instead of running out of memory.

Interrupts reach the main thread only: a guard started in another thread
enforces the limits through ``RLIMIT_AS`` and the evaluator's size checks.
"""

from __future__ import annotations

import _thread
import contextlib
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from types import FrameType, TracebackType

from processors.csp.language.errors import CspmEvalError

TICK_S = 0.05
REFIRE_S = 0.5  # interrupt again this long after the last interrupt if still over the limit
AS_MARGIN = 512 << 20
DEFAULT_MEMORY_FRACTION = 0.75
# bytes a set or sequence element costs (an int in a frozenset: the int and its hash slots)
BYTES_PER_ELEMENT = 100
_SIGNAL = signal.SIGUSR1

_ACTIVE: ContextVar[Limits | None] = ContextVar("csp_limits", default=None)


@dataclass(frozen=True)
class Limits:
    """``max_memory``: bytes of resident memory for the whole process; ``timeout``: seconds."""

    max_memory: int | None = None
    timeout: float | None = None


class ResourceLimitExceeded(CspmEvalError):
    """The memory or time limit was reached (``kind`` is ``"memory"`` or ``"time"``)."""

    def __init__(self, kind: str, message: str) -> None:
        self.kind = kind
        super().__init__(message, "<limits>", 0, 0)


def _physical_memory() -> int:
    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        total = 8 << 30
    try:
        with open("/sys/fs/cgroup/memory.max", encoding="ascii") as f:
            raw = f.read().strip()
        if raw.isdigit():
            total = min(total, int(raw))
    except OSError:
        pass
    return int(total)


def default_max_memory() -> int:
    """The default budget: 75% of the machine's memory (or of the cgroup's limit)."""
    return int(_physical_memory() * DEFAULT_MEMORY_FRACTION)


def max_memory() -> int:
    """The memory budget in force (the active guard's, else the default)."""
    lim = _ACTIVE.get()
    if lim is not None and lim.max_memory is not None:
        return lim.max_memory
    return default_max_memory()


def check_size(count: int, what: str) -> str | None:
    """Why a collection of ``count`` elements cannot be built, or None if it fits the budget."""
    budget = max_memory()
    if count * BYTES_PER_ELEMENT <= budget:
        return None
    return (
        f"{what} has {count} elements: too large for the memory limit of {show_size(budget)} "
        f"(raise it with --max-memory)"
    )


def parse_size(text: str) -> int:
    """``"2G"``, ``"512M"``, ``"640K"``, ``"1000000"`` (bytes) -> bytes; ValueError if malformed."""
    t = text.strip().upper().removesuffix("B").removesuffix("I")
    mult = 1
    if t and t[-1] in "KMGT":
        mult = 1 << (10 * ("KMGT".index(t[-1]) + 1))
        t = t[:-1]
    try:
        value = float(t)
    except ValueError:
        raise ValueError(f"not a memory size: {text!r} (use e.g. 512M or 4G)") from None
    if value <= 0:
        raise ValueError(f"the memory size must be positive, not {text!r}")
    return int(value * mult)


def show_size(n: int) -> str:
    for unit, shift in (("G", 30), ("M", 20), ("K", 10)):
        if n >= 1 << shift:
            return f"{n / (1 << shift):.1f} {unit}B".replace(".0 ", " ")
    return f"{n} B"


def resident_memory() -> int:
    """The process's resident set size in bytes (0 if unknown)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            fields = f.read().split()
        return int(fields[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _virtual_memory() -> int:
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            return int(f.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


class Guard:
    """Enforce ``limits`` between :meth:`start` and :meth:`stop` (or as a context manager)."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._reason: ResourceLimitExceeded | None = None
        self._old_handler: object = None
        self._old_as: tuple[int, int] | None = None
        self._token: object = None
        self._main = False
        self._t0 = 0.0

    # ------------------------------------------------------------ lifecycle
    def start(self) -> Guard:
        self._t0 = time.monotonic()
        self._token = _ACTIVE.set(self.limits)
        self._main = threading.current_thread() is threading.main_thread()
        if self._main:
            self._old_handler = signal.signal(_SIGNAL, self._on_signal)
        self._thread = threading.Thread(target=self._watch, name="csp-limits", daemon=True)
        self._thread.start()
        self._lower_address_space()
        return self

    def stop(self) -> None:
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        self._thread = None
        if self._old_as is not None:
            with contextlib.suppress(ValueError, OSError):
                import resource

                resource.setrlimit(resource.RLIMIT_AS, self._old_as)
            self._old_as = None
        if self._main:
            signal.signal(_SIGNAL, self._old_handler)  # type: ignore[arg-type]
        if self._token is not None:
            _ACTIVE.reset(self._token)  # type: ignore[arg-type]
            self._token = None

    def __enter__(self) -> Guard:
        return self.start()

    def __exit__(
        self, et: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
        if isinstance(exc, MemoryError):
            raise self.memory_error() from None

    def memory_error(self) -> ResourceLimitExceeded:
        budget = self.limits.max_memory or default_max_memory()
        return ResourceLimitExceeded(
            "memory",
            f"memory limit of {show_size(budget)} reached (resident {show_size(resident_memory())}); "
            "raise it with --max-memory",
        )

    # ------------------------------------------------------------- watching
    def _over(self) -> ResourceLimitExceeded | None:
        lim = self.limits
        if lim.timeout is not None and time.monotonic() - self._t0 > lim.timeout:
            return ResourceLimitExceeded(
                "time", f"time limit of {lim.timeout:g} s reached; raise it with --timeout"
            )
        if lim.max_memory is not None:
            rss = resident_memory()
            if rss > lim.max_memory:
                return ResourceLimitExceeded(
                    "memory",
                    f"memory limit of {show_size(lim.max_memory)} reached (resident {show_size(rss)}); "
                    "raise it with --max-memory",
                )
        return None

    def _watch(self) -> None:
        last = -REFIRE_S
        while not self._stop.wait(TICK_S):
            reason = self._over()
            if reason is None or time.monotonic() - last < REFIRE_S:
                continue
            self._reason = reason
            last = time.monotonic()
            if self._main:
                _thread.interrupt_main(_SIGNAL)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self._reason is not None and not self._stop.is_set():
            raise self._reason

    def _lower_address_space(self) -> None:
        budget = self.limits.max_memory
        if budget is None:
            return
        try:
            import resource
        except ImportError:  # pragma: no cover - not on Linux
            return
        soft, hard = resource.getrlimit(resource.RLIMIT_AS)
        want = _virtual_memory() + max(budget - resident_memory(), 0) + AS_MARGIN
        if hard != resource.RLIM_INFINITY:
            want = min(want, hard)
        if soft != resource.RLIM_INFINITY and soft <= want:
            return
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_AS, (want, hard))
            self._old_as = (soft, hard)


@contextlib.contextmanager
def enforced(limits: Limits) -> Iterator[Guard]:
    """``with enforced(Limits(...)):`` the same as ``with Guard(limits):``."""
    with Guard(limits) as g:
        yield g
