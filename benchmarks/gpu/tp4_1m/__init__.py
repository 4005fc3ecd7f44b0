"""Issue 12: 1,048,576 tokens on a TP=4 group of one 4xH200 host: one module per stage, dispatched by ``__main__``.

Run from the repository root: ``python -m benchmarks.gpu.tp4_1m STAGE --results DIR``.

  __main__.py     the dispatcher: the stage names and the command line
  ours.py         1M tokens through the real stack, decode at 1M, KV capacity vs the planner
  stock.py        stock vLLM with the long pool's engine arguments at TP=4
  correctness.py  logprobs at 8k and 1M tokens against the reference (the one-GPU stage, this profile)
  summary.py      the stage files folded into benchmarks/results/gpu/tp4_1m.json
  profile.py      what the stages share: the profile, the pools, the prompts
"""
