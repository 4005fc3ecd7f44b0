"""The request path, one hop per step, below the HTTP face and the documents API:

  parse (schemas) -> token count (tokens) -> pool choice (routing.bands)
  -> admission (routing.admission) -> replica choice (the pool deployment's
  Serve request router, keyed by routing.affinity) -> engine (PoolServer,
  Ray Serve LLM's LLMServer) -> response shape (chat_format).

  request_path.py  RequestPath: tokenizer lookup, route, admit, engine call,
                   sub-requests; every touch of Ray's private modules
  relay.py         engine answers to JSON or relayed SSE
  keepalive.py     heartbeats before the first token, and the committed response
  health.py        PoolHealth: running replicas per pool, for admission

``deployments.ingress`` (HTTP) and ``deployments.documents`` (document QA) both
call into this package; it imports neither.
"""
