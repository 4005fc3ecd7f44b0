"""Helpers of the tests (and the benchmarks), kept out of the shipped packages.

* ``ports``: a free loopback port for side-by-side local clusters and servers;
* ``rope``: the plain-PyTorch reference forward pass of the demo models and
  the logprob comparison the RoPE tests judge engines by.
"""
