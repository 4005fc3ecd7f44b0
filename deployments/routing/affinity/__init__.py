"""Document affinity: questions about one document meet the replica that holds its KV.

Five parts, in the order a request meets them:

  key.py     the ingress derives an affinity key (the document's, or a hash of
             a long prompt's leading tokens) and passes it as Serve's session_id;
  router.py  the pool's Serve request router keeps the key on the replica that
             holds it, under a load bound (policy ``affinity``);
  residency.py  the replica that still holds a key's KV (GPU or host RAM);
  prefill_load.py  outstanding prefill tokens per replica: where a key no
             replica holds is placed;
  hits.py    the ingress counts follow-ups that reached the same replica as
             the key's previous request (``longctx_affinity_routing``).

See ../README.md for how this policy sits next to the others.
"""
