"""`optlab tune`: every configuration tuned with the same budget, on Optuna (docs/tune.md)."""
