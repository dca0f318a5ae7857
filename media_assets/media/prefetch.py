"""Run a producer on a background thread a few items ahead of its consumer.

Used where the producer's work releases the GIL (OpenCV decoding, JPEG reading and preprocessing) so that
it overlaps with the consumer's (thumbnails and hashes; the model's forward pass).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator

_DONE = object()


def prefetch(items: Iterator, depth: int = 2) -> Iterator:
    """Run the producer `items` on a background thread, `depth` items ahead of the consumer."""
    slots: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in items:
                if stop.is_set():
                    break
                slots.put(item)
            else:
                slots.put(_DONE)
        except BaseException as exc:  # handed to the consumer, raised there
            slots.put(exc)
        finally:
            close = getattr(items, "close", None)
            if close is not None:  # a generator's own cleanup (say, releasing a video) runs here
                close()

    thread = threading.Thread(target=produce, name="prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item = slots.get()
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():
            try:
                slots.get_nowait()
            except queue.Empty:
                thread.join(timeout=0.05)
