"""Document affinity: questions about one document meet the replica that holds its KV.

Four parts, in the order a request meets them:

  key.py     the ingress derives an affinity key (the document's, or a hash of
             a long prompt's leading tokens) and passes it as Serve's session_id;
  router.py  the pool's Serve request router maps the key onto a ring of
             replicas with bounded load (policy ``affinity``);
  residency.py  with a KV tier, the replica that still holds a key's KV
             (GPU or host RAM), which the router prefers over the ring;
  hits.py    the ingress counts follow-ups that reached the same replica as
             the key's previous request (``longctx_affinity_routing``).

See ../README.md for how this policy sits next to the others.
"""
