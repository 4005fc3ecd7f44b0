"""Benchmarks of the stack, run from the repository root as modules (``python -m benchmarks.<half>.<name>``);
benchmarks/README.md says which result file and which docs table each one feeds.

  common/    what both halves share: the local cluster, the engine-only baseline, document QA, timing
  cpu/       on the CPU demo stack: document QA per router, what the ingress costs
  gpu/       on the lent GPU machines: the one-GPU validation stages, 1M tokens at TP=4

The CPU and GPU halves import ``common`` and never each other; nothing here imports ``tests``.
``profiles/`` holds the benchmarks' own cluster profiles, ``results/`` what they measured.
"""
