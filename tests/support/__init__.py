"""Helpers of the tests, kept out of the shipped packages (the benchmarks share nothing from here;
a free loopback port comes from benchmarks/common/ports.py).

* ``rope``: the plain-PyTorch reference forward pass of the demo models and
  the logprob comparison the RoPE tests judge engines by.
"""
