"""Fused training: runs of the same shape trained as one stacked model (`--fuse auto`).

`plan.py` decides which runs form a group (torch-free), `stacked.py` runs a group's MLPs as one
forward, `vector_optim.py` updates every run's parameters at once with per-run hyperparameters,
`group.py` trains a group's reporting intervals and emits each run's own events, and `host.py`
answers the executor's requests for fused runs.
"""
