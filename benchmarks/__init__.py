"""
sb3-mlsh's benchmark suite, run from the repository's root as modules: ``python -m benchmarks.reproduce``
(the paper's experiments), ``benchmarks.speed`` and ``benchmarks.env_speed`` (throughput against SB3's PPO and
MuJoCo's own stepping), ``benchmarks.distributed`` (several processes), ``benchmarks.flat_learner`` (MLSH's learner
against SB3's PPO) and ``benchmarks.task_groups``; ``benchmarks.experiments`` holds what they share.
``benchmarks.diagnostics`` holds the one-off measurements behind settings and choices, each cited by the docs page
that records its conclusion.
"""
