"""Helpers of the tests, kept out of the shipped packages (the benchmarks share nothing from here;
a free loopback port comes from benchmarks/common/ports.py).

* ``redis_server``: Debian's redis-server on a free loopback port (store tests, the Redis e2e cluster).
* ``secret_volume``: a directory updated as the kubelet updates a mounted Secret (the ``..data``
  symlink swap), for the API-key reload tests.
* ``lanes``: how `make test` splits the suite over two xdist workers (groups, order, the quiet-machine lock).
* ``rope``: the plain-PyTorch reference forward pass of the demo models and
  the logprob comparison the RoPE tests judge engines by.
"""
