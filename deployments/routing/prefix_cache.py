"""Ray Serve LLM's PrefixCacheAffinityRouter, fed token ids, that never drops a request.

Ray's router matches prompt *text* in a prefix tree; the pools here receive
token ids (the ingress tokenizes once), which it would read as an empty
prompt (and divide by its length). This adapter spells each token id as one
character, so the tree matches token prefixes: the same decision Ray makes on
text, made on what the engine's cache is actually keyed by.

On Ray 2.58 and 2.59 the router also loses requests (ray-project/ray#66325):
a routing task still choosing a replica for its request retires when the
count of pending requests drops below the count of routing tasks, and since
this router fulfils requests only by their own id, no other task ever picks
that request up; it waits until its timeout. Serve's default router hides
the bug by fulfilling in FIFO order. Ray 2.60 fixed the loop itself; here the
retirement check is answered so that a task holding an unassigned request
keeps routing it, which is what 2.60 does, on every supported Ray.
"""

from __future__ import annotations

import asyncio
import weakref

from ray.serve.llm.request_router import PrefixCacheAffinityRouter

# Past the surrogate range, so every id maps to a valid, distinct code point.
_CODE_POINT_BASE = 0xE000


def _current_task() -> asyncio.Task | None:
    """The running task, or None where no event loop runs in this thread."""
    try:
        return asyncio.current_task()
    except RuntimeError:
        return None


class TokenPrefixCacheAffinityRouter(PrefixCacheAffinityRouter):
    def __init__(self, *args, **kwargs):
        # Which request each routing task is choosing a replica for; keyed
        # weakly, so finished tasks drop out on their own.
        self._request_of_task: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        super().__init__(*args, **kwargs)

    def _extract_text_from_request(self, pending_request) -> str:
        for arg in pending_request.args:
            prompt = getattr(arg, "prompt", None)
            if isinstance(prompt, list) and prompt and isinstance(prompt[0], int):
                return "".join(chr(_CODE_POINT_BASE + token) for token in prompt)
        return super()._extract_text_from_request(pending_request)

    def _get_next_pending_request_to_route(self):
        pending_request = super()._get_next_pending_request_to_route()
        task = _current_task()
        if task is not None:
            self._request_of_task[task] = pending_request
        return pending_request

    @property
    def target_num_routing_tasks(self) -> int:
        """Serve's target, except to the task that still owes its request a replica.

        Serve's routing loop retires a task when more tasks run than this
        target; asked from inside a task whose request is unassigned, the
        answer is "all of them", so that task finishes its request first.
        """
        target = super().target_num_routing_tasks
        task = _current_task()
        owed = self._request_of_task.get(task) if task is not None else None
        if owed is not None and not owed.future.done():
            return max(target, len(self._routing_tasks))
        return target
