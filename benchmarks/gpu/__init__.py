"""Benchmarks on the lent GPU machines, run from the repository root as modules (device.sh on the machine).

  validate/             the whole stack on one H200, one module per stage (python -m benchmarks.gpu.validate)
  tp4_1m/               1,048,576 tokens on a TP=4 group of one 4xH200 host (python -m benchmarks.gpu.tp4_1m)
  validated_models.py   the models the validation covers: their profiles, pools and sizes
  checkpoints.py        the random real-size checkpoints both runs serve
  logprob_reference.py  the plain-PyTorch next-token reference the correctness stages compare against
  stage_log.py          a stage's JSON record, rewritten after every measurement
  stage_cli.py          the dispatchers' shared command line
"""
