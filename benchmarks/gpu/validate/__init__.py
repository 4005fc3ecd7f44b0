"""GPU validation of the whole stack on one H200: one module per stage, dispatched by ``__main__``.

Run from the repository root: ``python -m benchmarks.gpu.validate STAGE --results DIR``.

  __main__.py     the dispatcher: the stage names and the command line
  serve.py        (a) routing and limits, (c) cold prefill through our stack, (c2) short overhead
  overhead.py     (c2) alone, with Serve's direct ingress: our path against the engine
  stock.py        stock vLLM on the same GPU and prompts: the baseline of (c)
  correctness.py  (b) next-token logprobs through the router against the plain-PyTorch reference
  doc_qa.py       (d) document QA per replica router at 128k tokens
  kv_tier.py      questions on GPU-evicted documents, host-RAM KV tier off vs on (issue 11)
  warm_path.py    warm follow-ups and short requests, our API against `vllm serve` (issue 27)
  summary.py      the stage files folded into summary.json and doc_qa.png
  rope_ab.py      no stage: InternLM3's rope variants with the GPU's clock, for the summary
"""
