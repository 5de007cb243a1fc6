"""Fused training: runs of the same shape trained as one stacked model (`--fuse auto`).

`plan.py` decides which runs form a group (torch-free), `stacked.py` keeps a group's MLPs in one
flat [K, P] buffer and runs them as one forward, `row_optim.py` steps a family through torch's
own fused kernel per run and `vector_optim.py` updates a family's rows at once with per-run
hyperparameters (RMSprop, unfused optimizers), `relu_ce.py` is a ReLU MLP's step under
cross-entropy with its backward written out, `validation.py` validates every member in one
forward, `group.py` trains a group's reporting intervals and emits each run's own events, and
`host.py` answers the executor's requests for fused runs. Dropout (CPU) draws each run's masks
from its own random state, the unfused run's masks bit for bit (`stacked.dropout_mask`).
"""
