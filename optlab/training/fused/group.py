"""A fusion group: K runs' trainers, trained one reporting interval at a time as one stack.

Each member is a real `Trainer`, built exactly as an unfused run's (same initial weights, init
and data fingerprints, notes, schedule, early stopping); the group replaces only its steps. A
member's parameters are views into the stacked ones, so its evaluation, best-epoch copy, test
report and checkpoint read its own weights through its own module. Per run after each interval:
the same bookkeeping and events as `Trainer._advance` (divergence, epoch ends, early stopping);
a run that ends leaves the group (its weights get their own storage again) and the others go on
as a smaller stack, with their weights, optimizer state and counts (`_reform`). Dropout draws
from each member's own random state, loaded into a generator of its own for an interval and
written back after it (`_generators`), so a checkpoint holds the state an unfused run's would.
"""

from __future__ import annotations

import time
import traceback
from itertools import groupby

import torch
import torch.nn.functional as F

from optlab.training.events import Event
from optlab.training.fused.plugin_update import PluginUpdate
from optlab.training.fused.relu_ce import relu_ce_step, relu_stack
from optlab.training.fused.row_optim import RowUpdate, uses_fused_kernel
from optlab.training.fused.stacked import StackedMLP
from optlab.training.fused.validation import can_validate, validate
from optlab.training.fused.vector_optim import PLUGIN, VectorUpdate, family, hypers_for
from optlab.training.losses import predictions
from optlab.training.trainer import Trainer

FAMILY_ORDER = {"sgd": 0, "adam": 1, "rmsprop": 2, "adagrad": 3}


def _family(trainer: Trainer) -> str:
    found = family(trainer.optimizer, trainer.spec.optimizer.name)
    if found is None:  # `host.built_error` keeps such a run out of every group
        raise ValueError(f"optimizer {trainer.spec.optimizer.name!r} has no vectorized update")
    return found


class FusedGroup:
    def __init__(self, name: str, trainers: list[Trainer]) -> None:
        families = [_family(t) for t in trainers]
        # Members of one optimizer family sit side by side: one update per family, over a slice
        # (plugins' families after optlab's, by name).
        order = sorted(range(len(trainers)), key=lambda i: (FAMILY_ORDER.get(families[i], 99), families[i]))
        self.name = name
        self.device = trainers[0].device
        self.pending: dict[str, list[Event]] = {t.spec.name: [] for t in trainers}
        self._epoch_data: tuple[int, torch.Tensor, torch.Tensor] | None = None
        self._mean_grad: dict[tuple[int, int], torch.Tensor] = {}
        for t in trainers:
            # Its torch optimizer only holds the schedule's rates and is never stepped: tell the
            # torch scheduler a step happened (it warns otherwise).
            t.optimizer._opt_called = True  # type: ignore[attr-defined]
        self._build([trainers[i] for i in order])

    def _build(self, trainers: list[Trainer]) -> None:
        """The stack, updates and counters of `trainers` (in family order)."""
        self.trainers = trainers
        self.k = len(trainers)
        model_params = [list(t.model.parameters()) for t in self.trainers]
        hypers = [hypers_for(t.optimizer) for t in self.trainers]
        self.stack = StackedMLP([t.model for t in self.trainers])
        self.updates: list[VectorUpdate] = []
        start = 0
        for fam, members in groupby(_family(t) for t in self.trainers):
            stop = start + len(list(members))
            per_param = [[hypers[i][id(model_params[i][j])] for i in range(start, stop)]
                         for j in range(len(self.stack.params))]
            kind: type[VectorUpdate] = (PluginUpdate if fam.startswith(PLUGIN) else
                                        RowUpdate if uses_fused_kernel(fam, per_param) else VectorUpdate)
            self.updates.append(kind(fam, self.stack.flat, self.stack.grad, slice(start, stop),
                                     per_param, self.stack.shapes))
            start = stop
        self._model_params = model_params
        self.l1 = torch.tensor([t.spec.l1 for t in self.trainers], device=self.device)
        self.l1_params = [p for p in self.stack.params if p.dim() > 2] if any(t.spec.l1 for t in self.trainers) else []
        self.correct = torch.zeros(self.k, dtype=torch.int64, device=self.device)
        for k, t in enumerate(self.trainers):
            t.correct = self.correct[k]  # its epoch's count, read by its own epoch end and state
        lead = self.trainers[0]
        # A ReLU MLP under plain cross-entropy: the step with its backward written out.
        self._written_out = (relu_stack(self.stack) and lead.spec.loss == "cross_entropy" and lead.task == "multiclass"
                             and not self.l1_params and lead.amp_dtype is None)

    def _reform(self) -> None:
        """The live members as a new, smaller stack once a run has ended, so an ended run's
        slice costs no more compute: each member keeps its weights, optimizer state, step
        count and this epoch's correct count (a run may end mid-epoch: divergence, a stop)."""
        live = self.live
        if len(live) == self.k or not live:
            return
        old_updates, old_correct = self.updates, self.correct
        self._build([self.trainers[k] for k in live])  # the family order is kept
        self.correct.copy_(old_correct[live])
        for update in self.updates:
            for row in range(update.n):
                old = live[update.runs.start + row]
                source = next(u for u in old_updates if u.runs.start <= old < u.runs.stop)
                update.carry(source, old - source.runs.start, row)

    @property
    def live(self) -> list[int]:
        return [k for k, t in enumerate(self.trainers) if t.ended is None]

    def _interval_rates(self, n_steps: int) -> None:
        """Hands each family's update the interval's rates. Each live run's schedule moves past
        the interval here, as its own trainer's would over these batches."""
        rows: list[list[float]] = [[0.0] * self.k for _ in range(n_steps)]
        for k, t in enumerate(self.trainers):
            if t.ended is None:
                rates = t.schedule.rates(n_steps)
                t.lr_used = rates[-1]  # the rate the interval's last batch trained with
                for i, lr in enumerate(rates):
                    rows[i][k] = lr
        for update in self.updates:
            update.interval([row[update.runs] for row in rows])

    def _generators(self) -> list[torch.Generator] | None:
        """Each member's CPU random state in a generator of its own, for an interval's dropout
        (None without dropout): drawing from it advances the run's state as its own trainer's
        forward would, without swapping the process's generator per run and layer."""
        if not self.stack.has_dropout:
            return None
        out = []
        for t in self.trainers:
            g = torch.Generator()
            state = t.random.get("cpu")
            if state is not None:
                g.set_state(state)
            out.append(g)
        return out

    def _keep_random(self, generators: list[torch.Generator] | None) -> None:
        """Each member's random state after the interval's draws, back into its own `RunRandomState`."""
        for t, g in zip(self.trainers, generators or [], strict=False):
            t.random.set("cpu", g.get_state())

    def _batches(self, epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The epoch's training set in its order (inputs, targets), gathered once: a step's
        batch is then a slice (a view), not two index_selects."""
        if self._epoch_data is None or self._epoch_data[0] != epoch:
            lead = self.trainers[0]
            order = lead.epoch_order(epoch)
            self._epoch_data = (epoch, lead.data.x_train.index_select(0, order), lead.data.y_train.index_select(0, order))
        return self._epoch_data[1], self._epoch_data[2]

    def _objective(self, out: torch.Tensor, yb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """What the backward differentiates, the gradient it starts from (None: 1), and each
        run's mean loss over the batch ([K], detached). The runs' losses are summed, so each
        run's gradient is its own."""
        spec = self.trainers[0].spec
        k, b = out.shape[:2]
        if spec.loss == "cross_entropy":
            # Classes in the middle ([K, C, B], what the stacked forward computed): every run's
            # per-sample losses in one call, each run's targets the same batch (expanded, no copy).
            per_sample = F.cross_entropy(out.transpose(1, 2).float(), yb.expand(k, b),
                                         label_smoothing=spec.label_smoothing, reduction="none")
            if not self.l1_params:
                # d(sum of the runs' means)/d(per-sample loss) is 1/B: handed to the backward as
                # MeanBackward computes it (1.0 / B in float32), without the mean and sum nodes.
                grad = self._mean_grad.get((k, b))
                if grad is None:
                    grad = self._mean_grad[(k, b)] = torch.full((k, b), 1.0, device=out.device).div_(b)
                return per_sample, grad, per_sample.detach().mean(1)
            losses = per_sample.mean(1)
        else:
            losses = torch.stack([t.loss_fn(out[i].float(), yb) for i, t in enumerate(self.trainers)])
        if self.l1_params:
            losses = losses + self.l1 * sum(p.abs().flatten(1).sum(1) for p in self.l1_params)
        return losses.sum(), None, losses.detach()

    def _predictions(self, outs: list[torch.Tensor]) -> torch.Tensor:
        """[K, B...] predicted classes of an interval's outputs ([K, B, C] each), as
        `predictions` gives them for each run's [B, C] output: one kernel for the interval."""
        lead = self.trainers[0]
        if lead.task == "multiclass":
            # max(1).indices: the first largest, as argmax, and 7x faster over a middle dim on CPU.
            return torch.cat([out.transpose(1, 2) for out in outs], 2).max(1).indices
        flat = [predictions(out.reshape(self.k * out.shape[1], -1), lead.task, lead.spec.loss).view(self.k, -1)
                for out in outs]
        return torch.cat(flat, 1)

    def train_interval(self) -> None:
        """One reporting interval (never past an epoch's end) for every live member; their
        events wait in `pending` for the driver to ask for them."""
        live = self.live
        if not live:
            return
        lead = self.trainers[live[0]]
        t0 = time.perf_counter()
        step_in_epoch = lead.step - lead.epoch * lead.steps_per_epoch
        if step_in_epoch == 0:
            for k in live:
                t = self.trainers[k]
                t._epoch_loss_sum, t._epoch_start_elapsed = 0.0, t.elapsed_s
            self.correct.zero_()
        x, y = self._batches(lead.epoch + 1)
        n_steps = min(lead.log_every, lead.steps_per_epoch - step_in_epoch)
        sizes: list[int] = []
        step_losses: list[torch.Tensor] = []
        step_outputs: list[torch.Tensor] = []
        classes = lead.task != "regression"
        generators = self._generators()
        try:
            self._interval_rates(n_steps)
            for i in range(n_steps):
                start, end = lead.plan.bounds(step_in_epoch + i)
                xb, yb = x[start:end], y[start:end]
                if self._written_out:
                    losses, out = relu_ce_step(self.stack, xb, yb, lead.spec.label_smoothing, generators)
                else:
                    with lead.autocast():
                        out = self.stack.forward(xb, generators)
                        objective, start_grad, losses = self._objective(out, yb)
                    self.stack.zero_grad()
                    self.stack.backward(objective, start_grad)
                for update in self.updates:
                    update.step(i)
                step_losses.append(losses)
                if classes:  # compared with the targets once per interval
                    step_outputs.append(out.detach())
                sizes.append(end - start)
            self._keep_random(generators)
            if classes:
                first, last = lead.plan.bounds(step_in_epoch)[0], lead.plan.bounds(step_in_epoch + n_steps - 1)[1]
                self.correct += (self._predictions(step_outputs) == y[first:last]).sum(1)
            rows = torch.stack(step_losses).tolist()  # the one host sync of this interval
            if step_in_epoch + n_steps == lead.steps_per_epoch and can_validate(lead):
                for k, val in validate(self.stack, lead, live).items():
                    self.trainers[k].next_val = val  # read by its own epoch end
        except Exception as exc:  # the stack failed: every live member fails with it
            detail = traceback.format_exc()
            for k in live:
                self._leave(k, [self.trainers[k].fail(exc, detail)])
            return
        trained_s = time.perf_counter() - t0
        for k in live:
            self.trainers[k].stepper.grad_evals += n_steps
            self._report(k, [row[k] for row in rows], sizes, trained_s)
        for k in live:  # a member that ended: its optimizer state before the stack re-forms without it
            if self.trainers[k].ended is not None:  # (live members': when a state is taken, `FusedHost`)
                self.sync_state(self.trainers[k])
        self._reform()

    def _report(self, k: int, losses: list[float], sizes: list[int], trained_s: float) -> None:
        """One member's interval, through its own trainer's bookkeeping (`finish_interval`)."""
        t = self.trainers[k]
        spec = t.spec
        # Every member trained for the whole interval: the group's time is each run's time.
        t.elapsed_s += trained_s
        t._since = time.perf_counter()
        try:
            events = t.finish_interval(losses, sizes)
        except Exception as exc:
            events = [t.fail(exc, traceback.format_exc())]
        finally:
            t._tick()
            t._since = None
        self._leave(k, events) if t.ended is not None else self.pending[spec.name].extend(events)

    def _leave(self, k: int, events: list[Event]) -> None:
        """Run k ended within an interval: the stack re-forms after the interval (`_reform`)."""
        t = self.trainers[k]
        self.pending[t.spec.name].extend(events)
        self.stack.detach(t.model)

    def leave(self, trainer: Trainer) -> None:
        """An ended run leaves: its weights (best restored, if any) get storage of their own,
        and the others go on as a smaller stack."""
        if trainer in self.trainers:
            self.stack.detach(trainer.model)
            self._reform()

    def sync_state(self, trainer: Trainer) -> None:
        """Write the member's optimizer state into its own torch optimizer, in torch's format,
        so its checkpoint is an unfused run's and resumes unfused."""
        k = self.trainers.index(trainer)
        for update in self.updates:
            if update.runs.start <= k < update.runs.stop:
                for j, param in enumerate(self._model_params[k]):
                    state = update.torch_state(j, k - update.runs.start)
                    if state:  # torch keeps no entry for a parameter without state (plain SGD)
                        trainer.optimizer.state[param] = state
