"""Pool choice: the smallest band of the model that fits the request."""

from __future__ import annotations

from dataclasses import dataclass

from cluster.config import ClusterConfig, PoolConfig
from deployments.routing.rope_base import RopeChoice


class UnknownModel(LookupError):
    def __init__(self, model: str, known: list[str]):
        self.model = model
        self.known = known
        super().__init__(f"model {model!r} does not exist; available models: {', '.join(known)}")


class NoPoolFits(ValueError):
    """prompt + max_tokens exceeds every band of the model."""

    def __init__(self, model: str, prompt_tokens: int, max_tokens: int, limit: int):
        self.model = model
        self.prompt_tokens = prompt_tokens
        self.max_tokens = max_tokens
        self.limit = limit
        super().__init__(
            f"request needs {prompt_tokens + max_tokens} tokens ({prompt_tokens} prompt + "
            f"{max_tokens} max_tokens), over the limit of {limit} tokens for model {model}"
        )


@dataclass(frozen=True)
class RouteDecision:
    pool: PoolConfig
    prompt_tokens: int
    max_tokens: int
    rope: RopeChoice | None = None
    """The rotary length the pool's engine uses for it (routing.rope_base); None: stock rotary."""


class BandPolicy:
    """Chooses a pool by context length.

    Bands of a model tile [0, limit] without gaps (the config validates it),
    so the smallest band that holds prompt + max_tokens is the first whose
    upper bound is large enough.
    """

    def __init__(self, cluster: ClusterConfig):
        self._pools = {model: cluster.pools_of(model) for model in cluster.models}

    @property
    def models(self) -> list[str]:
        return sorted(self._pools)

    def pools_of(self, model: str) -> list[PoolConfig]:
        if model not in self._pools:
            raise UnknownModel(model, self.models)
        return self._pools[model]

    def limit(self, model: str) -> int:
        return self.pools_of(model)[-1].max_tokens

    def choose(self, model: str, prompt_tokens: int, max_tokens: int) -> RouteDecision:
        total = prompt_tokens + max_tokens
        for pool in self.pools_of(model):
            if total <= pool.max_tokens:
                return RouteDecision(pool, prompt_tokens, max_tokens)
        raise NoPoolFits(model, prompt_tokens, max_tokens, self.limit(model))

    def completion_budget(self, model: str, prompt_tokens: int, requested: int | None, default: int) -> int:
        """max_tokens to route and generate with.

        An explicit request is honoured as asked (and may be refused). Without
        one, the model's default is shortened to what the largest band still
        holds, as OpenAI does for an unset max_tokens.
        """
        if requested is not None:
            return requested
        room = self.limit(model) - prompt_tokens
        return max(1, min(default, room))
