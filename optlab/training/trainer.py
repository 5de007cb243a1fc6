"""One run: a ResolvedRun and the shared, preloaded dataset in; events out.

The loop follows the fast-training rules: data already on the device, batches sliced from
a permutation, losses written into a device buffer and read once per reporting interval,
`zero_grad(set_to_none=True)`. A trainer never prints and never knows who listens.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import torch

from optlab import __version__
from optlab.data.datasets import DatasetBundle
from optlab.models.registry import count_parameters
from optlab.registry import plugin_fingerprint
from optlab.spec import ResolvedRun, provenance
from optlab.training.divergence import describe, exceeds, first_non_finite
from optlab.training.early_stopping import BestTracker
from optlab.training.evaluation import EvalResult, evaluate, recompute_batchnorm, test_report
from optlab.training.events import EpochEnded, Event, Progress, RunEnded, RunStarted
from optlab.training.losses import predictions
from optlab.training.run_parts import StepPlan, build_run_parts, epoch_permutation, fingerprint_tensors
from optlab.training.threads import numerical_environment

# Batches a schedule-free run's batch-norm statistics are recomputed over before evaluating
# (facebookresearch/schedule_free's README uses 50).
BATCHNORM_RECOMPUTE_BATCHES = 50

# Re-exported: the trainer's module is where callers have always found them.
__all__ = ["Trainer", "epoch_permutation", "fingerprint_tensors"]


class Trainer:
    def __init__(self, spec: ResolvedRun, data: DatasetBundle, device: torch.device | str = "cpu") -> None:
        self.spec = spec
        self.data = data
        self.device = torch.device(device)
        self.task = data.info.task
        self.plan = StepPlan.of(spec, data.x_train.shape[0])
        self.n_train = self.plan.n_train
        self.steps_per_epoch = self.plan.steps_per_epoch
        self.total_steps = self.plan.total_steps
        self.log_every = self.plan.log_every
        self.provenance = provenance(spec)
        self.plugin_fingerprint = plugin_fingerprint(self.provenance)

        parts = build_run_parts(spec, data, self.device, self.plan)
        self.model, self.forward, self.loss_fn = parts.model, parts.forward, parts.loss_fn
        self.optimizer, self.schedule, self.scaler = parts.optimizer, parts.schedule, parts.scaler
        self.stepper, self.random, self.amp_dtype = parts.stepper, parts.random, parts.amp_dtype
        self.init_fingerprint, self.data_fingerprint = parts.init_fingerprint, parts.data_fingerprint
        self.notes = parts.notes
        self._autocast = parts.autocast
        caps = parts.capabilities
        self.train_eval, self.needs_closure, self.create_graph = caps.train_eval, caps.needs_closure, caps.create_graph
        self._evaluating = False  # a train_eval optimizer is in eval() (set by optimizer_mode)
        self.lr_used = self.schedule.lr()  # the rate of the last batch trained (events record it)
        self.best = BestTracker(spec.early_stopping, self.task)
        self.loss_buffer = torch.zeros(self.log_every, device=self.device)
        self.correct = torch.zeros((), dtype=torch.int64, device=self.device)

        self.epoch = 0  # epochs completed
        self.step = 0  # optimizer steps taken
        self.samples_seen = 0
        self.elapsed_s = 0.0
        self._since: float | None = None  # while an interval trains: when elapsed_s was last brought up to date
        self._perm: torch.Tensor | None = None  # the current epoch's order, on the device
        self._epoch_loss_sum = 0.0
        self._epoch_start_elapsed = 0.0
        # The loss of the first step (the initial weights): what `diverge_factor` multiplies.
        self.reference_loss: float | None = None
        # This epoch's validation, when a fused group computed it for all its members at once.
        self.next_val: EvalResult | None = None
        self.ended: RunEnded | None = None
        self.predictions: dict[str, np.ndarray] | None = None

    # ------------------------------------------------------------------ public steps
    # What another loop over the same run (the range test, a fused engine) drives, so that it
    # slices, steps and switches modes exactly as `advance` does.

    def autocast(self) -> contextlib.AbstractContextManager[object]:
        """Mixed precision as the run asks for it (a no-op context when it is off)."""
        return self._autocast()

    def epoch_order(self, epoch: int) -> torch.Tensor:
        """Epoch `epoch`'s (from 1) order of the training set, on the device."""
        return epoch_permutation(self.spec.seed, epoch, self.n_train, self.spec.shuffle).to(self.device)

    def batch(self, order: torch.Tensor, step_in_epoch: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The inputs and targets of step `step_in_epoch` (from 0) of the epoch with `order`."""
        start, end = self.plan.bounds(step_in_epoch)
        idx = order[start:end]
        return self.data.x_train.index_select(0, idx), self.data.y_train.index_select(0, idx)

    def batches(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """Every batch of epoch `epoch` (from 1), in order."""
        order = self.epoch_order(epoch)
        for s in range(self.steps_per_epoch):
            yield self.batch(order, s)

    def train_step(self, xb: torch.Tensor, yb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """One optimizer step on a batch (clipping, L1, mixed precision, a closure where the
        optimizer needs one): the batch's loss and output, both still on the device. The
        learning-rate schedule is the caller's: `advance` steps it, the range test sets rates."""
        return self.stepper.step(xb, yb)

    def optimizer_mode(self, training: bool) -> None:
        """train()/eval() of a schedule-free optimizer. Switching to eval also recomputes the
        batch-norm statistics for the evaluated weights (schedule-free's own advice), over the
        first batches of the last epoch's order; once per switch, not per evaluation."""
        if not self.train_eval:
            return
        if training:
            self.optimizer.train()  # type: ignore[attr-defined]
            self._evaluating = False
        elif not self._evaluating:
            self.optimizer.eval()  # type: ignore[attr-defined]
            order = epoch_permutation(self.spec.seed, max(1, self.epoch), self.n_train, self.spec.shuffle)
            order = order[: BATCHNORM_RECOMPUTE_BATCHES * self.spec.batch_size].to(self.device)
            x = self.data.x_train
            batches = (x.index_select(0, idx) for idx in order.split(self.spec.batch_size))
            recompute_batchnorm(self.model, batches, self._autocast)
            self._evaluating = True

    @property
    def grad_evals(self) -> int:
        return self.stepper.grad_evals

    @property
    def fraction_done(self) -> float:
        return self.step / max(1, self.total_steps)

    @property
    def done(self) -> bool:
        return self.ended is not None

    def started_event(self) -> RunStarted:
        return RunStarted(
            run=self.spec.name,
            spec=self.spec.model_dump(mode="json"),
            n_params=count_parameters(self.model),
            init_fingerprint=self.init_fingerprint,
            data_fingerprint=self.data_fingerprint,
            steps_per_epoch=self.steps_per_epoch,
            total_steps=self.total_steps,
            notes=list(self.notes),
            resumed_step=self.step,
            provenance=self.provenance,
            plugin_fingerprint=self.plugin_fingerprint,
        )

    # ------------------------------------------------------------------ training

    def advance(self) -> list[Event]:
        """Train one reporting interval (or up to the end of the epoch) and report it."""
        if self.ended:
            return []
        self._since = time.perf_counter()
        with self.random.active():
            try:
                return self._advance()
            finally:
                self._tick()
                self._since = None

    def _tick(self) -> None:
        """Bring elapsed_s up to now while an interval trains, so the interval's own events
        count its time (outside advance, e.g. a stop's test evaluation, nothing is added)."""
        if self._since is not None:
            now = time.perf_counter()
            self.elapsed_s += now - self._since
            self._since = now

    def _advance(self) -> list[Event]:
        spec = self.spec
        step_in_epoch = self.step - self.epoch * self.steps_per_epoch
        if step_in_epoch == 0 or self._perm is None:
            self._perm = self.epoch_order(self.epoch + 1)
            if step_in_epoch == 0:
                self._epoch_loss_sum, self._epoch_start_elapsed = 0.0, self.elapsed_s
                self.correct.zero_()
        n_steps = min(self.log_every, self.steps_per_epoch - step_in_epoch)
        sizes = []
        self.model.train()
        self.optimizer_mode(training=True)
        for i in range(n_steps):
            xb, yb = self.batch(self._perm, step_in_epoch + i)
            loss, out = self.train_step(xb, yb)
            # The rate this batch trained with, before the schedule moves it (a Python float: no sync).
            self.lr_used = self.schedule.lr()
            self.schedule.after_batch()
            self.loss_buffer[i] = loss.detach()
            if self.task != "regression":
                self.correct += (predictions(out.detach(), self.task, spec.loss) == yb).sum()
            sizes.append(xb.shape[0])

        losses = self.loss_buffer[:n_steps].tolist()  # the one host sync of this interval
        return self.finish_interval(losses, sizes)

    def finish_interval(self, losses: list[float], sizes: list[int]) -> list[Event]:
        """After an interval's steps: its losses (on the host) and batch sizes become the run's
        progress, its Progress event, and its end where it diverged or its epoch ended. The
        fused engine trains a group's steps itself and hands each run its own losses here."""
        spec, n_steps = self.spec, len(losses)
        bad = first_non_finite(losses)
        if bad is not None:
            self.step += bad + 1
            return [self.end("diverged", f"non-finite loss ({losses[bad]}) at step {self.step}")]
        if self.reference_loss is None:
            self.reference_loss = losses[0]
        self.step += n_steps
        self.samples_seen += sum(sizes)
        self._epoch_loss_sum += sum(v * n for v, n in zip(losses, sizes, strict=True))
        # The interval's mean is the smoothed loss: one value per report, already on the host.
        smoothed = sum(losses) / n_steps
        self._tick()
        events: list[Event] = [
            Progress(
                run=spec.name,
                step=self.step,
                epoch=self.epoch + 1,
                samples_seen=self.samples_seen,
                train_loss=smoothed,
                lr=self.lr_used,
                elapsed_s=self.elapsed_s,
                samples_per_s=self.samples_seen / max(self.elapsed_s, 1e-9),
                grad_evals=self.grad_evals,
            )
        ]
        if exceeds(smoothed, self.reference_loss, spec.diverge_factor):
            reason = describe(smoothed, self.reference_loss, spec.diverge_factor, "the first step's loss")
            events.append(self.end("diverged", f"{reason} at step {self.step}"))
        elif self.step % self.steps_per_epoch == 0:
            events.extend(self._end_epoch())
        return events

    def _end_epoch(self) -> list[Event]:
        spec = self.spec
        self.epoch += 1
        train_loss = self._epoch_loss_sum / self.n_train
        train_acc = None if self.task == "regression" else self.correct.item() / self.n_train
        self.optimizer_mode(training=False)
        val, self.next_val = self.next_val, None
        if val is None:
            val = evaluate(
                self.model, self.data.x_val, self.data.y_val, self.loss_fn, self.task, spec.loss,
                spec.eval_batch_size, self._autocast, target_std=self.data.target_std,
            )
        self.schedule.after_epoch(val.loss if val else None)
        improved = self.best.update(self.epoch, val, self.model)
        self._tick()
        events: list[Event] = [
            EpochEnded(
                run=spec.name, step=self.step, samples_seen=self.samples_seen,
                elapsed_s=self.elapsed_s, improved=improved,
                epoch=self.epoch,
                train_loss=train_loss,
                train_accuracy=train_acc,
                val_loss=val.loss if val else None,
                val_accuracy=val.accuracy if val else None,
                val_rmse=val.rmse if val else None,
                lr=self.lr_used,  # what the epoch's last batch trained with, not the next epoch's rate
                epoch_s=self.elapsed_s - self._epoch_start_elapsed,
            )
        ]
        if self.best.should_stop():
            events.append(self.end("early_stopped", f"no improvement in {self.best.patience} epochs"))
        elif self.epoch >= spec.epochs:
            events.append(self.end("finished", ""))
        return events

    # ------------------------------------------------------------------ ending

    def stop(self, reason: str = "stopped by the user") -> RunEnded:
        return self.end("stopped", reason)

    def fail(self, exc: BaseException, detail: str = "") -> RunEnded:
        message = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, torch.OutOfMemoryError):
            message = f"out of memory: {exc}. Try a smaller batch_size, or amp = 'bf16' on CUDA"
        return self.end("failed", message.strip(), detail=detail, evaluate_test=False)

    def end(self, status: str, reason: str, detail: str = "", evaluate_test: bool = True) -> RunEnded:
        self._tick()  # training time up to here; the test evaluation is not training
        wall_time_s = self.elapsed_s
        test = None
        if status != "diverged" and evaluate_test and self.spec.evaluate_test:
            self.optimizer_mode(training=False)
            if status in ("finished", "early_stopped", "stopped"):
                self.best.restore(self.model)
            result = evaluate(
                self.model, self.data.x_test, self.data.y_test, self.loss_fn, self.task, self.spec.loss,
                self.spec.eval_batch_size, self._autocast, keep_output=True,
            )
            if result is not None and result.output is not None:
                try:
                    test, self.predictions = test_report(result.output, self.data, result.loss, self.spec.loss)
                except ValueError as exc:  # e.g. non-finite outputs on the test set
                    reason = f"{reason}; no test metrics: {exc}".lstrip("; ")
        self.ended = RunEnded(
            run=self.spec.name,
            status=status,
            reason=reason,
            detail=detail,
            epochs_completed=self.epoch,
            step=self.step,
            best_epoch=self.best.best_epoch,
            wall_time_s=wall_time_s,
            train_samples_per_s=self.samples_seen / max(wall_time_s, 1e-9),
            grad_evals=self.grad_evals,
            test=test,
        )
        return self.ended

    # ------------------------------------------------------------------ checkpoints

    @property
    def mid_epoch(self) -> bool:
        return self.step != self.epoch * self.steps_per_epoch

    @property
    def can_checkpoint_now(self) -> bool:
        """A state taken now resumes exactly: at an epoch end always; within an epoch unless
        the optimizer trains at one point and evaluates at another (switching a schedule-free
        optimizer to eval() for the state would move its training point mid-epoch)."""
        return not self.mid_epoch or not self.train_eval

    def state_dict(self) -> dict[str, Any]:
        """Everything an exact resume needs, loadable with torch.load(weights_only=True).
        At an epoch end, or between two intervals within one (the epoch's order derives from
        (seed, epoch), and its sums so far are saved). A schedule-free optimizer is switched to
        eval() first (at epoch ends only: `can_checkpoint_now`): the saved weights are the ones
        it evaluates, and the next training interval switches back, resumed or not."""
        if not self.mid_epoch:
            self.optimizer_mode(training=False)
        return {
            "run": self.spec.name,
            "optlab_version": __version__,
            "spec": self.spec.model_dump_json(),
            "provenance": json.dumps(self.provenance, sort_keys=True),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "scaler": self.scaler.state_dict(),
            "best": self.best.state_dict(),
            "rng_cpu": self.random.get("cpu"),
            "rng_cuda": self.random.get("cuda"),  # this run's own, never the device's shared state
            "epoch": self.epoch,
            "step": self.step,
            "grad_evals": self.grad_evals,
            "samples_seen": self.samples_seen,
            "elapsed_s": self.elapsed_s,
            "reference_loss": self.reference_loss,
            # Within an epoch: what its end will report (zero at an epoch end).
            "epoch_loss_sum": self._epoch_loss_sum if self.mid_epoch else 0.0,
            "epoch_correct": int(self.correct.item()) if self.mid_epoch else 0,
            "epoch_start_elapsed": self._epoch_start_elapsed if self.mid_epoch else self.elapsed_s,
            "mid_epoch": self.mid_epoch,
            "environment": json.dumps(numerical_environment(), sort_keys=True),  # what resume compares
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.scaler.load_state_dict(state["scaler"])
        self.best.load_state_dict(state["best"])
        self.random.set("cpu", state["rng_cpu"])
        self.random.set("cuda", state.get("rng_cuda"))
        self.epoch, self.step = state["epoch"], state["step"]
        self.stepper.grad_evals = int(state.get("grad_evals", self.step))  # checkpoints before grad_evals
        # Checkpoints at epoch ends are taken in eval() (see state_dict).
        self._evaluating = not state.get("mid_epoch", False)
        self.samples_seen, self.elapsed_s = state["samples_seen"], state["elapsed_s"]
        self._epoch_loss_sum = float(state.get("epoch_loss_sum", 0.0))
        self.correct.fill_(int(state.get("epoch_correct", 0)))
        self._epoch_start_elapsed = float(state.get("epoch_start_elapsed", self.elapsed_s))
        # A checkpoint from before the divergence rule: the first interval after it is the reference.
        self.reference_loss = state.get("reference_loss")
        self._perm = None
