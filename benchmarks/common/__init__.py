"""What the CPU and GPU benchmarks share; neither half imports the other.

* ``local_cluster``: the real stack (Ray, Serve, pools, ingress) for one profile, in this process;
* ``direct_pool``: completions straight to a pool deployment's Serve handle (the engine-only baseline);
* ``replicas``: Serve replica restarts seen in the connected Ray cluster;
* ``document_qa``: the document-QA measurement per replica router (CPU benchmark and GPU stage);
* ``http_timing``: a streamed completion's time to first token, the ingress's Server-Timing header;
* ``prompts``: random token-id prompts of a given length;
* ``ports``: a free loopback port;
* ``progress``: timestamped progress lines on stderr.
"""
