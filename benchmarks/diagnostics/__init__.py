"""
One-off diagnostics: each measured a question behind a setting or a choice (docs/mlsh.md's "Choices" table,
``hyperparams/mlsh.yml``'s comments) and writes the page under docs/benchmarks/ that records its answer. Run from the
repository's root as ``python -m benchmarks.diagnostics.<name>``.
"""
