"""Adaptive batching for /assess: events that arrive while a batch runs go together in the next one."""
import asyncio

import anyio


class Batcher:
    """Adaptive batching for /assess, whose body is one event (BentoML batches only list-shaped inputs).

    While one batch is being assessed, arriving events queue and go together in the next one, so the batch size
    follows the load and an idle server assesses an event at once (no timer, no added latency); the text models
    run once per batch. (Answering each event as soon as it was filed, instead of with its batch, measured no
    better: it only adds thread switches.) With max_batch=1 every event runs on its own, up to `threads` at a
    time: the "batching off" mode of the bench.
    """

    def __init__(self, assess_many, max_batch: int, threads: int):
        self.assess_many = assess_many
        self.max_batch = max_batch
        self.threads = threads
        self._queue: list[tuple[dict, asyncio.Future]] = []
        self._draining = 0

    async def submit(self, event: dict):
        """The event's result, or the exception that refused it."""
        future = asyncio.get_running_loop().create_future()
        self._queue.append((event, future))
        if self._draining < (1 if self.max_batch > 1 else self.threads):
            self._draining += 1
            asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch, self._queue = self._queue[:self.max_batch], self._queue[self.max_batch:]
                try:
                    results = await anyio.to_thread.run_sync(self.assess_many, [event for event, _ in batch])
                except Exception as exc:  # noqa: BLE001 - handed to every caller of the batch
                    results = [exc] * len(batch)
                for (_, future), result in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(result)
        finally:
            self._draining -= 1
