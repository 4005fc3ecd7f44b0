"""Timestamped progress lines on stderr, apart from a benchmark's results on stdout."""

from __future__ import annotations

import sys
import time


def progress(message: str, source: str = "validate") -> None:
    """``[source HH:MM:SS] message`` on stderr.

    The GPU stages keep the ``validate`` tag: rope_ab.py reads their stock
    prefill lines back from the committed logs.
    """
    print(f"[{source} {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)
