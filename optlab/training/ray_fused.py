"""The `ray` backend with `--fuse auto`: each fusion group (`optlab.training.fused.plan`) is
trained by one Ray actor hosting a `FusedHost`, the host a `processes` worker uses, so the
group trains as one stacked model with one run's resources (`cpus_per_run`, `gpus_per_run`).
A group larger than its share of the actors the cluster fits at once (about ceil(runs /
actors)) is cut into parts, each an actor (`plan.split`, as `processes` cuts for its workers):
a tuning wave of 16 trials on a cluster of 4 actors trains on all 4, not on one while three
idle. A run that cannot fuse keeps an actor of its own, and its `not fused: ...` note.

Units (a group or a part of one, or a run alone) are what Ray schedules: `slot` names a run's
unit, an actor goes when the last of its runs is released, and a lost actor loses all of its
runs. Those are restarted by the driver as ever, each in an actor of its own and unfused (as
the processes backend restarts a lost worker's runs): a group restarted together would need
its members' checkpoints to be of one step, which they need not be (each came with that
member's own reply, and a member may have ended or been stopped).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from optlab.training.fused.host import FusedHost
from optlab.training.fused.plan import FusionPlan, plan, split
from optlab.training.ray_executor import RayExecutor, RunActor

if TYPE_CHECKING:
    from optlab.data.datasets import DatasetBundle
    from optlab.spec import ResolvedRun
    from optlab.training.executor import Reply, State, TrainerHost

RESTARTED = "restarted on its own after its Ray actor was lost"
RESUMED = "a resumed run trains on its own"  # FusedHost's words for it
UNPLANNED = "it was not planned with the others"


class GroupActor(RunActor):
    """The runs of one unit in a Ray actor (made remote by `FusedRayExecutor`): a fusion group
    or a part of one, trained as one stack, or a run alone that says why it is not fused."""

    def _host(self, data: DatasetBundle, device: str, where: dict[str, Any]) -> TrainerHost:
        return FusedHost(data, device, where, [], copy_state=True)

    def handle(self, request: tuple[Any, ...]) -> Reply:
        if request[0] == "start":  # ("start", spec, state, its (group, size) or why not)
            _, spec, state, fused = request
            assert isinstance(self.host, FusedHost)
            self.host.assign(FusionPlan(groups={spec.name: fused}) if isinstance(fused, tuple)
                             else FusionPlan(reasons={spec.name: fused}))
            return self.host.start(spec, state)
        return self.host.handle(request)


def unit_capacity(sizes: list[int], actors: int) -> int:
    """The runs sure to be up once `actors` units have their actors (the Runner's first wave):
    Ray decides which units get resources first, so the smallest ones count. A unit is one
    actor whatever it holds (a group, a part of one, a run alone): it never waits for more."""
    return sum(sorted(sizes)[:max(1, actors)])


class FusedRayExecutor(RayExecutor):
    """`RayExecutor` whose fusion groups each train in one actor (`--backend ray --fuse auto`)."""

    actor_type = GroupActor

    def __init__(
        self,
        data: DatasetBundle,
        specs: list[ResolvedRun],
        address: str | None = None,
        gpus_per_run: float | None = None,
        cpus_per_run: float = 1.0,
        threads: int | None = None,
        plugins: list[str] | None = None,
    ) -> None:
        super().__init__(data, address, gpus_per_run, cpus_per_run, threads, plugins)
        self.actors_fit = self.capacity or 1  # how many actors the cluster fits at once
        self._unit: dict[str, str] = {}  # run -> the slot of its actor
        self._fusion: dict[str, tuple[str, int] | str] = {}  # run -> its (group or part, size), or why alone
        self._started: set[str] = set()  # runs started once: a second start is a restart
        self.replan(specs)

    def replan(self, specs: list[ResolvedRun]) -> None:
        """The next runs' fusion groups, each to one actor, or cut into parts of an actor each
        where a group holds more than its share of the actors the cluster fits (a study's next
        wave, were this executor kept for it). While groups train, a run is asked for one
        interval at a time, as on processes (`ProcessExecutor.replan` says why: a member's
        epoch-end checkpoint would otherwise be taken after the group had trained on)."""
        fusion = plan(specs)
        self.depth = 1 if fusion.groups else RayExecutor.depth
        # Ray places each unit's actor itself: of `split`'s answer only the parts count here.
        fusion, _ = split(fusion, [spec.name for spec in specs], self.actors_fit)
        sizes: dict[str, int] = {}
        for spec in specs:
            group = fusion.groups.get(spec.name)
            # Slots of groups (or parts) and of runs alone apart: a run may be named like a group.
            slot = f"group:{group[0]}" if group else f"run:{spec.name}"
            self._unit[spec.name] = slot
            self._fusion[spec.name] = group or fusion.reasons[spec.name]
            self._started.discard(spec.name)
            sizes[slot] = sizes.get(slot, 0) + 1
        self.capacity = unit_capacity(list(sizes.values()), self.actors_fit)

    def slot(self, run: str) -> str:
        return self._unit.setdefault(run, f"run:{run}")

    def start(self, spec: ResolvedRun, state: State | None) -> None:
        # A run restarted after a lost actor, or resumed from a checkpoint, trains unfused (its
        # group's members are not at one step): in an actor of its own, not beside the group's.
        alone = RESTARTED if spec.name in self._started else RESUMED if state is not None else None
        if alone is not None:
            self._unit[spec.name] = f"run:{spec.name}"
            self._fusion[spec.name] = alone
        self._started.add(spec.name)
        super().start(spec, state)
        # The units as started (a resumed experiment's finished runs start nowhere): the Runner
        # reads `capacity` once it has started them all.
        self.capacity = unit_capacity([len(runs) for runs in self._on.values()], self.actors_fit)

    def _start_request(self, spec: ResolvedRun, state: State | None) -> tuple[Any, ...]:
        return ("start", spec, state, self._fusion.get(spec.name, UNPLANNED))
