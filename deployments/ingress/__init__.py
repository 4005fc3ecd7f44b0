"""The HTTP ingress: one Serve deployment in front of every pool.

Request path, one hop per step:
  parse (schemas) -> token count (tokens) -> pool choice (routing.bands)
  -> admission (routing.admission) -> replica choice (the pool deployment's
  Serve request router, keyed by routing.affinity) -> engine (PoolServer,
  Ray Serve LLM's LLMServer) -> response shape (chat_format).

  deployment.py    IngressDeployment: the Serve deployment, one app per replica
  http.py          create_app: the FastAPI routes
  middleware.py    body limit, API keys, answered-request metrics
  service.py       Ingress: models and pools views, chat, completions
  request_path.py  RequestPath: tokenizer lookup, route, admit, engine call,
                   sub-requests; every touch of Ray's private modules
  relay.py         engine answers to JSON or relayed SSE
  health.py        PoolHealth: running replicas per pool, for admission

Documents (deployments.documents.api) travel the same request path.
"""
