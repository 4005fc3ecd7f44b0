"""The HTTP face: one Serve deployment in front of every pool.

The request path itself (token count, pool choice, admission, engine call,
relay) lives one layer down, in ``deployments.dispatch``; documents
(``deployments.documents``) build on that same path. This package only turns
HTTP into calls of it.

  deployment.py    IngressDeployment: the Serve deployment, one app per replica
  http.py          create_app: the FastAPI routes
  middleware.py    body limit, API keys, answered-request metrics
  service.py       Ingress: models and pools views, chat, completions
"""
