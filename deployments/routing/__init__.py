"""Routing: the pool a request goes to (in the ingress) and the replica within it (Serve's router).

  bands.py             pool choice: the smallest band that holds the request
  rope_base.py         the rotary length (base) each request past the native window is rotated with
  admission.py         bounded in-flight per pool; 429 / 503 before the engine
  affinity/            the affinity key, the bounded-load replica router, hit tracking
  prefix_cache.py      Ray Serve LLM's prefix-cache router, fed token ids
  replica_routers.py   the one list of replica routers, by routing.policy

README.md has a section per policy: its level, what it reads, its config keys.
"""
