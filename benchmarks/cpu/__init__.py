"""Benchmarks on the CPU demo stack (vLLM CPU engines), run from the repository root as modules.

  doc_qa.py            document QA per replica router, and what a warm-up at upload buys
  ingress_overhead.py  what the ingress costs per prompt size, and against calling a pool directly
  rope_base.py         the rotary base modes' cache trade-off: a chat past the window, document questions
  warm_path.py         the ingress's own steps per question on a long stored document
"""
