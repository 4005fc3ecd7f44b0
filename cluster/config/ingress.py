"""The HTTP front door: where it listens, its limits and API keys."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from cluster.config.base import StrictModel

# How a streaming keep-alive looks on the wire: an SSE comment line (visible in
# curl) or a bare newline, for clients whose SSE parsers mishandle comments.
HeartbeatFrame = Literal["comment", "blank"]


class AuthConfig(StrictModel):
    """Bearer-token API keys."""

    enabled: bool = Field(default=False, description="Require `Authorization: Bearer <key>`.")
    keys_env: str = Field(
        default="LONGCTX_API_KEYS",
        description="Environment variable holding keys (`principal:key` or a bare key), comma or newline "
        "separated. Read once at start: a change needs a restart (use `keys_file` to rotate live).",
    )
    keys_file: str | None = Field(
        default=None,
        description="File holding keys, one `principal:key` (or bare key) per line, `#` comments "
        "(docs/security.md, API keys): e.g. a mounted Kubernetes Secret. Re-read when it changes, "
        "without a restart; a file that cannot be read keeps the keys in force.",
    )
    reload_interval_s: float = Field(
        default=10.0,
        ge=0,
        description="How often, at most, each ingress replica checks `keys_file` for a change (a stat; "
        "re-read only when it changed). 0: read it once, at start.",
    )


class IngressConfig(StrictModel):
    """The HTTP front door."""

    host: str = Field(default="127.0.0.1", description="Address Serve's HTTP proxy binds.")
    port: int = Field(default=8000, ge=1, le=65535, description="HTTP port.")
    replicas: int = Field(default=1, ge=1, description="Ingress replicas.")
    num_cpus: float = Field(
        default=1.0,
        gt=0,
        description="CPUs Ray reserves for each ingress replica (Serve's default, stated): more "
        "than 0, so a node that advertises no CPUs (the Helm chart's head with "
        "head.hostsIngress false) never hosts one.",
    )
    direct_ingress: bool = Field(
        default=False,
        description="Serve's direct ingress: every ingress replica also serves the API on a port "
        "of its own (from 30000; Serve's RAY_SERVE_DIRECT_INGRESS_MIN/MAX_HTTP_PORT), so a load "
        "balancer that sends there (Serve's HAProxy mode, or one that reads the ports "
        "`python -m cluster run` prints) skips the Serve proxy's hop. `port` keeps serving through "
        "the proxy. A local Ray gets the setting from `python -m cluster run`; an existing Ray "
        "cluster needs RAY_SERVE_ENABLE_DIRECT_INGRESS=1 on every node. Not with the Helm chart.",
    )
    request_timeout_s: float = Field(
        default=3600.0, gt=0, description="Longest a request may take end to end."
    )
    stream_heartbeat_s: float = Field(
        default=10.0,
        ge=0,
        description="Streaming keep-alive: a stream with no token after this many seconds is "
        "committed (200, text/event-stream) and gets an SSE comment `: prefill <elapsed>s` every "
        "heartbeat until its first token, so proxies that close idle connections (ALB/nginx 60 s, "
        "Envoy 300 s) keep it open. 0 turns it off. Pools may override it.",
    )
    stream_heartbeat_frame: HeartbeatFrame = Field(
        default="comment",
        description="What a streaming heartbeat sends: `comment` (`: prefill <elapsed>s` and a blank "
        "line) or `blank` (a bare newline, which every SSE parser skips; for clients that mishandle "
        "comments, e.g. `vllm bench serve` 0.29). A request's `x-stream-heartbeat` header "
        "(comment, blank or off) overrides it. Pools may override it.",
    )
    nonstream_heartbeat_s: float = Field(
        default=0.0,
        ge=0,
        description="Non-streaming keep-alive (opt-in, 0 = off): a request with no answer after "
        "this many seconds is committed as 200 application/json and gets one space every "
        "heartbeat before its JSON body; an error after that is `{\"error\": ...}` in a 200 body. "
        "Pools may override it.",
    )
    max_body_bytes: int = Field(
        default=64 * 1024 * 1024, gt=0, description="Largest request body accepted."
    )
    auth: AuthConfig = Field(default_factory=AuthConfig)
