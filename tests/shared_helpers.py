"""Helpers shared by the broker tests of several folders (the tests folder is on sys.path)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from gateway.sdk import Platform
from infra.settings import Settings
from streams.admin import ensure_topics


def new_platform(bootstrap: str, tmp: Path) -> Platform:
    """A platform client in a fresh namespace (its runtime topics created), data dir ``tmp``."""
    ns = f"t{uuid.uuid4().hex[:8]}"
    platform = Platform(bootstrap, namespace=ns, settings=Settings(data_dir=tmp, kafka_bootstrap=bootstrap))
    ensure_topics(bootstrap, platform.topics.specs())
    return platform


@contextmanager
def stoppable_thread(target: Callable[[threading.Event], Any]) -> Iterator[None]:
    """Run ``target(stop)`` (an engine's ``run``) in a thread; at exit set ``stop``, join, and
    raise what the thread raised."""
    stop = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            target(stop)
        except BaseException as exc:  # surfaced by the test
            errors.append(exc)

    t = threading.Thread(target=run, daemon=True)
    t.start()
    try:
        yield
    finally:
        stop.set()
        t.join(60)
        assert not errors, errors
