"""The fused local executor: the same requests as `LocalExecutor`, answered for a fusion group
by training all its members at once. The driver and the run store see ordinary runs.

A request to advance a member trains the group's next intervals (as many as the request's
budget allows, up to the epoch's end) only when that member has no events waiting; the others'
events wait until the driver asks for them (it asks for the run furthest behind, so every
member is asked once before the group trains on).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from optlab.training.events import EpochEnded
from optlab.training.executor import LocalExecutor, Reply, State, TrainerHost, placement
from optlab.training.fused.group import FusedGroup
from optlab.training.fused.plan import FusionPlan, device_error, plan
from optlab.training.fused.stacked import stack_error
from optlab.training.fused.vector_optim import family
from optlab.training.param_groups import CompositeOptimizer
from optlab.training.trainer import Trainer

if TYPE_CHECKING:
    from optlab.data.datasets import DatasetBundle
    from optlab.spec import ResolvedRun
    from optlab.training.checkpoint_policy import CheckpointPolicy


def built_error(trainer: Trainer) -> str | None:
    """Why a run the plan fuses cannot, now that its model and optimizer are built: the device
    it really trains on (a Ray actor's GPU, where the spec was resolved for "cpu"), a plugin's
    model registered as `fuses` that is not a stackable sequence of layers, an optimizer whose
    update the group cannot step. Every member of a group shares model, device and AMP, so for
    those the whole group trains unfused alike."""
    problem = device_error(trainer.spec, trainer.device.type)
    if problem:
        return problem
    problem = stack_error(trainer.model)
    if problem:
        return f"model {trainer.spec.model.name!r} cannot be stacked: {problem}"
    # A Muon-style optimizer behind one object (matrix_only) steps two families at once.
    if isinstance(trainer.optimizer, CompositeOptimizer) or family(trainer.optimizer, trainer.spec.optimizer.name) is None:
        return f"optimizer {trainer.spec.optimizer.name!r} has no vectorized update"
    return None


class FusedHost(TrainerHost):
    """A `TrainerHost` (of this process, or of a worker process with `copy_state`) whose fusion
    groups train as one stack. The plan can grow (`assign`): a tuning study's waves, or a worker
    told each run's group by the driver, use one host for many experiments' worth of groups."""

    def __init__(self, data: DatasetBundle, device: str, where: dict[str, Any], specs: list[ResolvedRun],
                 copy_state: bool = False) -> None:
        super().__init__(data, device, where, copy_state=copy_state)
        self.plan = plan(specs)
        self.member: dict[str, str] = {}  # run -> its fusion group's id
        self.groups: dict[str, FusedGroup] = {}

    def assign(self, fusion: FusionPlan) -> None:
        """Runs to come and their groups (ids not used by a group still training here)."""
        self.plan.groups.update(fusion.groups)
        self.plan.reasons.update(fusion.reasons)

    def start(self, spec: ResolvedRun, state: State | None) -> Reply:
        reply = super().start(spec, state)
        started = reply.events[0]
        if started["type"] != "run_started":
            return reply
        fused = self.plan.groups.get(spec.name)
        problem = None if fused is None else built_error(self.trainers[spec.name])
        if fused is not None and state is None and fused[0] not in self.groups and problem is None:
            self.member[spec.name] = fused[0]
            started["placement"]["fused"] = {"group": fused[0], "size": fused[1]}
        else:
            reason = problem or self.plan.reasons.get(spec.name) or "a resumed run trains on its own"
            started["notes"] = [*started["notes"], f"not fused: {reason}"]
        return reply

    def _group(self, run: str) -> FusedGroup | None:
        gid = self.member.get(run)
        if gid is None:
            return None
        group = self.groups.get(gid)
        if group is None:
            members = [t for name, t in self.trainers.items() if self.member.get(name) == gid and t.ended is None]
            group = self.groups[gid] = FusedGroup(gid, members)
        return group

    def advance(
        self, run: str, checkpoints: CheckpointPolicy | None, budget_s: float = 0.0, past_epoch_ends: bool = False
    ) -> Reply:
        group = self._group(run)
        if group is None:
            return super().advance(run, checkpoints, budget_s, past_epoch_ends)
        trainer = self.trainers[run]
        if not group.pending[run] and trainer.ended is None:
            # Like `TrainerHost.advance`: intervals until `budget_s` has gone, never past an
            # epoch's end (every member's ends there too) or this run's end.
            t0 = time.perf_counter()
            while True:
                group.train_interval()
                if trainer.ended is not None or trainer.step % trainer.steps_per_epoch == 0 \
                        or time.perf_counter() - t0 >= budget_s:
                    break
        events = group.pending[run]
        group.pending[run] = []
        reply = Reply("advanced", run, [e.to_dict() for e in events], None, self._predictions(trainer))
        ended_epoch = next((e for e in reversed(events) if isinstance(e, EpochEnded)), None)
        if checkpoints is not None and ended_epoch is not None:
            self._checkpoint(trainer, checkpoints, ended_epoch, reply)
        return reply

    def _trainer_state(self, trainer: Trainer) -> dict[str, Any]:
        """A live member's optimizer state is in its group's buffers: written into its own torch
        optimizer only now that a state is taken (every epoch end would cost more than a step)."""
        group = self._group(trainer.spec.name)
        if group is not None and trainer.ended is None:
            group.sync_state(trainer)
        return super()._trainer_state(trainer)

    def stop(self, run: str, reason: str, evaluate_test: bool = True, checkpoint: bool = False) -> Reply:
        group = self._group(run)
        if group is None:
            return super().stop(run, reason, evaluate_test, checkpoint)
        waiting = group.pending[run]
        group.pending[run] = []
        trainer = self.trainers[run]
        if trainer.ended is None:
            group.sync_state(trainer)
        reply = super().stop(run, reason, evaluate_test, checkpoint)
        group.leave(trainer)
        reply.events = [e.to_dict() for e in waiting] + reply.events
        return reply

    def hand_over(self, run: str) -> Reply:
        if run in self.member:  # a member of a fusion group stays with its group
            return Reply("handed", run)
        return super().hand_over(run)

    def release(self, run: str) -> None:
        super().release(run)
        gid = self.member.pop(run, None)
        self.plan.groups.pop(run, None)
        self.plan.reasons.pop(run, None)
        if gid is not None and gid not in self.member.values():
            # Its last member is gone: the stack is freed, and the id may name a later group.
            self.groups.pop(gid, None)


class FusedLocalExecutor(LocalExecutor):
    """`LocalExecutor` whose fusion groups train as one stacked model (`--fuse auto`)."""

    def __init__(self, data: DatasetBundle, device: str, specs: list[ResolvedRun]) -> None:
        super().__init__(data, device)
        self.host: FusedHost = FusedHost(data, device, placement("local", device), specs)

    def replan(self, specs: list[ResolvedRun]) -> None:
        """The next experiment's runs on this executor (a tuning study's next wave)."""
        self.host.assign(plan(specs))
