"""What the CPU and GPU benchmarks share; neither half imports the other.

  local_cluster.py  the real stack (Ray, Serve, pools, ingress) for one profile, in this process
  direct_pool.py    completions straight to a pool deployment's Serve handle: the engine-only baseline
  document_qa.py    document QA per replica router (the CPU benchmark and the GPU stage)
  http_timing.py    a streamed request's time to first token (any server); the ingress's Server-Timing header
  vllm_serve.py     `vllm serve` with a pool's checkpoint and engine arguments, beside our stack
  replicas.py       Serve replica restarts seen in the connected Ray cluster
  prompts.py        random token-id prompts of a given length
  ports.py          a free loopback port (the tests use it too)
  progress.py       timestamped progress lines on stderr
"""
