"""Name -> factory registries for optimizers, schedulers, models and datasets.

The bottom of optlab: the preset schema, its JSON Schema, error messages, `optlab plugins` and
shell completion all take their names from here. Built-ins register themselves exactly as
plugins do (`optlab.builtins.register`), with factories given as "module:attr" references that
are imported on first use, so knowing a name never imports torch.

Where plugins come from (never from a preset: a preset names things by plain name only):
- installed packages, through the entry-point group `optlab.plugins`: their names are read
  without importing them, and they are loaded the first time a name is looked up that the
  loaded registries do not know (or when every name is listed). `OPTLAB_DISABLE_PLUGIN_AUTOLOAD=1`
  turns this off, as pytest's PYTEST_DISABLE_PLUGIN_AUTOLOAD does;
- `--plugin MODULE_OR_FILE.py` on the command line (`load_plugin`).
A plugin is a module with `register(registry)`; every entry records where it came from (its
`Source`), which goes into results.json and the run's fingerprints.
"""

from __future__ import annotations

import difflib
import hashlib
import importlib
import importlib.util
import inspect
import json
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Literal

from optlab.errors import OptlabError

Kind = Literal["optimizer", "scheduler", "model", "dataset"]
KINDS: tuple[Kind, ...] = ("optimizer", "scheduler", "model", "dataset")
ENTRY_POINT_GROUP = "optlab.plugins"
AUTOLOAD_ENV = "OPTLAB_DISABLE_PLUGIN_AUTOLOAD"
BUILTIN_MODULE = "optlab.builtins"

# What the trainer (and the reports) honour, per kind. Anything else is a typo in a plugin.
CAPABILITIES: dict[Kind, frozenset[str]] = {
    # train_eval: schedule-free style optimizer.train()/eval(); needs_closure: step(closure);
    # lr_is_multiplier: Prodigy/D-Adaptation; matrix_only: Muon (2-D weights only, AdamW for
    # the rest); create_graph: backward(create_graph=True) (Hessian-based, e.g. SophiaH).
    # fuses: optimizer with a vectorized update, model with a stacked form (--fuse auto).
    "optimizer": frozenset({"train_eval", "needs_closure", "lr_is_multiplier", "matrix_only", "create_graph", "fuses"}),
    "scheduler": frozenset({"per_batch"}),
    "model": frozenset({"fuses"}),
    "dataset": frozenset(),
}


class PluginError(OptlabError):
    """A plugin that cannot be loaded, or that registers something it may not."""


class UnknownName(OptlabError):
    """A name no registry knows; the message lists the known ones."""


@dataclass(frozen=True)
class Source:
    """Where an entry came from: optlab itself, an installed distribution, or a plugin file."""

    origin: Literal["builtin", "package", "file"]
    name: str = ""  # distribution name, or the module a package plugin was imported as
    version: str = ""
    path: str = ""
    sha256: str = ""

    def to_dict(self) -> dict[str, str]:
        return {k: v for k, v in vars(self).items() if v}

    def describe(self) -> str:
        if self.origin == "builtin":
            return "built-in"
        if self.origin == "package":
            return f"{self.name} {self.version}".strip()
        return f"{self.path} (sha256 {self.sha256[:12]})"


BUILTIN = Source("builtin")


@dataclass(frozen=True)
class Entry:
    kind: Kind
    name: str
    target: Callable[..., object] | str  # the factory, or "module:attr" imported on first use
    capabilities: frozenset[str] = frozenset()
    source: Source = BUILTIN
    # Internal facts for built-ins (e.g. a dataset's static description); from plugins, an
    # optimizer's `search` space and `vectorized` update only.
    extra: dict[str, object] = field(default_factory=dict, hash=False, compare=False)

    def factory(self) -> Callable[..., object]:
        if callable(self.target):
            return self.target
        module, _, attr = self.target.partition(":")
        return getattr(importlib.import_module(module), attr)

    def has(self, capability: str) -> bool:
        return capability in self.capabilities


class Registry:
    """Every kind's names. `register(registry)` functions receive a `Registrar` bound to their
    source; lookups go through `get`, which loads autoload plugins on a miss."""

    def __init__(self) -> None:
        self._entries: dict[Kind, dict[str, Entry]] = {k: {} for k in KINDS}
        self._autoloaded = False
        self.plugins: list[tuple[str, Source]] = []  # (reference given, source) in load order
        # Names whose packages are not installed: kind -> name -> what to install.
        self.missing: dict[Kind, dict[str, str]] = {k: {} for k in KINDS}

    # ------------------------------------------------------------------ registering

    def add(self, entry: Entry) -> None:
        unknown = entry.capabilities - CAPABILITIES[entry.kind]
        if unknown:
            allowed = ", ".join(sorted(CAPABILITIES[entry.kind])) or "none"
            raise PluginError(
                f"{entry.source.describe()}: {entry.kind} {entry.name!r}: unknown capabilities "
                f"{', '.join(sorted(unknown))}; allowed: {allowed}"
            )
        if not entry.name or not all(c.isalnum() or c in "-_." for c in entry.name):
            raise PluginError(
                f"{entry.source.describe()}: {entry.kind} name {entry.name!r} may hold only letters, digits and - _ ."
            )
        old = self._entries[entry.kind].get(entry.name)
        if old is not None and old.source != entry.source:
            raise PluginError(
                f"{entry.source.describe()}: {entry.kind} {entry.name!r} is already registered by "
                f"{old.source.describe()}"
            )
        self._entries[entry.kind][entry.name] = entry
        self.missing[entry.kind].pop(entry.name, None)

    def registrar(self, source: Source) -> Registrar:
        return Registrar(self, source)

    # ------------------------------------------------------------------ looking up

    def names(self, kind: Kind, *, autoload: bool = True) -> list[str]:
        """Every registered name of `kind`, built-ins first (in registration order)."""
        if autoload:
            self.autoload()
        return list(self._entries[kind])

    def entries(self, kind: Kind, *, autoload: bool = True) -> list[Entry]:
        if autoload:
            self.autoload()
        return list(self._entries[kind].values())

    def find(self, kind: Kind, name: str) -> Entry | None:
        entry = self._entries[kind].get(name)
        if entry is None and not self._autoloaded:
            self.autoload()
            entry = self._entries[kind].get(name)
        return entry

    def get(self, kind: Kind, name: str) -> Entry:
        entry = self.find(kind, name)
        if entry is None:
            raise UnknownName(self.unknown_message(kind, name))
        return entry

    def unknown_message(self, kind: Kind, name: str) -> str:
        known = self.names(kind)
        if name in self.missing[kind]:
            return f"{kind} {name!r} needs {self.missing[kind][name]} (optlab never installs anything)"
        hint = difflib.get_close_matches(name, known + list(self.missing[kind]), n=1)
        suggestion = f" (did you mean {hint[0]!r}?)" if hint else ""
        text = f"unknown {kind} {name!r}{suggestion}; known: {', '.join(known)}"
        if self.missing[kind]:
            extras = sorted(set(self.missing[kind].values()))
            text += f"; more with {' or '.join(extras)}"
        return text + f"; a plugin's {kind} needs `--plugin MODULE_OR_FILE.py` or its package installed"

    # ------------------------------------------------------------------ plugins

    def autoload(self) -> None:
        """Load the entry-point plugins of installed packages, once (unless switched off)."""
        if self._autoloaded:
            return
        self._autoloaded = True
        if os.environ.get(AUTOLOAD_ENV, "") not in ("", "0"):
            return
        for ep in entry_point_plugins():
            dist = ep.dist
            source = Source("package", dist.name if dist else ep.module, dist.version if dist else "")
            self._run_register(f"entry point {ep.name!r} ({ep.value})", ep.load, source)

    def load_plugin(self, ref: str) -> Source:
        """`--plugin REF`: a path to a .py file, or an importable module name."""
        if ref.endswith(".py") or os.sep in ref or "/" in ref:
            path = Path(ref).expanduser().resolve()
            if not path.is_file():
                raise PluginError(f"--plugin {ref}: no such file")
            data = path.read_bytes()
            source = Source("file", path=str(path), sha256=hashlib.sha256(data).hexdigest())
            if any(s == source for _, s in self.plugins):
                return source
            module_name = f"optlab_plugin_{path.stem}_{source.sha256[:8]}"

            def load() -> object:
                spec = importlib.util.spec_from_file_location(module_name, path)
                if spec is None or spec.loader is None:
                    raise PluginError(f"--plugin {ref}: not a Python module")
                module = importlib.util.module_from_spec(spec)
                sys.modules[module_name] = module
                spec.loader.exec_module(module)
                return module
        else:
            source = _package_source(ref)
            if any(s == source for _, s in self.plugins):
                return source

            def load() -> object:
                return importlib.import_module(ref)

        self._run_register(f"--plugin {ref}", load, source)
        self.plugins.append((ref, source))
        return source

    def _run_register(self, label: str, load: Callable[[], object], source: Source) -> None:
        try:
            loaded = load()
        except OptlabError:
            raise
        except SystemExit as exc:
            raise PluginError(exit_message(label, exc, "while it was imported")) from None
        except Exception as exc:  # a plugin's own bug: say whose, keep the traceback out
            raise PluginError(f"{label}: cannot be imported ({type(exc).__name__}: {exc})") from None
        # An entry point may name the module or its register function; --plugin names a module.
        register = loaded if callable(loaded) else getattr(loaded, "register", None)
        if not callable(register):
            raise PluginError(f"{label}: has no function register(registry)")
        try:
            register(self.registrar(source))
        except OptlabError:
            raise
        except SystemExit as exc:
            raise PluginError(exit_message(label, exc, "in register()")) from None
        except Exception as exc:
            raise PluginError(f"{label}: register() failed ({type(exc).__name__}: {exc})") from None


def exit_message(label: str, exc: SystemExit, when: str) -> str:
    """A plugin's sys.exit() (or exit(), or `raise SystemExit`), caught where optlab calls plugin
    code: left to propagate it would end optlab with the plugin's code, 0 included, as if the
    command had succeeded."""
    code = "" if exc.code is None else repr(exc.code)
    return f"{label}: called sys.exit({code}) {when}; a plugin must raise an exception instead of exiting"


class Registrar:
    """What a plugin's `register(registry)` receives: one method per kind, bound to its source."""

    def __init__(self, registry: Registry, source: Source) -> None:
        self._registry = registry
        self.source = source

    def _add(self, kind: Kind, name: str, target: Callable[..., object] | str, caps: dict[str, bool],
             extra: dict[str, object] | None = None) -> None:
        if not (callable(target) or (isinstance(target, str) and ":" in target)):
            raise PluginError(f"{self.source.describe()}: {kind} {name!r}: the factory must be callable")
        capabilities = frozenset(k for k, on in caps.items() if on)
        self._registry.add(Entry(kind, name, target, capabilities, self.source, dict(extra or {})))

    def optimizer(self, name: str, factory: Callable[..., object] | str, *,
                  search: dict[str, dict[str, object]] | None = None,
                  vectorized: Callable[..., None] | None = None, **capabilities: bool) -> None:
        """`factory(params, lr=..., **kwargs)` -> a torch Optimizer (an Optimizer subclass is one).
        `search`: `optlab tune`'s default space (name -> range, as a preset's `search` writes
        it; `lr = {"around": D}`: D decades either side of the run's lr); without one, lr only.
        `vectorized`: the same update for n runs at once, what `--fuse auto` trains a fusion
        group with (`fn(p, g, state, hyper, lr, step)`: docs/plugins.md); it implies `fuses`,
        which a plugin cannot claim without one (optlab's own families are built in)."""
        extra: dict[str, object] = {"search": search} if search else {}
        if vectorized is not None:
            if not callable(vectorized):
                raise PluginError(f"{self.source.describe()}: optimizer {name!r}: vectorized must be callable")
            # What the fused engine cannot honour: a closure, a second backward, a separate
            # evaluation point, or a second optimizer for the other parameters.
            clash = sorted(k for k in ("needs_closure", "create_graph", "train_eval", "matrix_only") if capabilities.get(k))
            if clash:
                raise PluginError(f"{self.source.describe()}: optimizer {name!r}: vectorized cannot be combined with "
                                  f"{', '.join(clash)} (a fused group steps plain updates only)")
            extra["vectorized"] = vectorized
            capabilities = {**capabilities, "fuses": True}
        elif capabilities.get("fuses") and self.source.origin != "builtin":
            raise PluginError(
                f"{self.source.describe()}: optimizer {name!r}: fuses=True needs vectorized=FN, the update "
                "of n runs at once (docs/plugins.md, 'Fused training')"
            )
        self._add("optimizer", name, factory, capabilities, extra or None)

    def scheduler(self, name: str, factory: Callable[..., object] | str, **capabilities: bool) -> None:
        """`factory(optimizer, **kwargs)` -> a torch LR scheduler."""
        self._add("scheduler", name, factory, capabilities)

    def model(self, name: str, factory: Callable[..., object] | str, **capabilities: bool) -> None:
        """`factory(input_shape, n_outputs, **kwargs)` -> an nn.Module."""
        self._add("model", name, factory, capabilities)

    def dataset(self, name: str, loader: Callable[..., object] | str, **capabilities: bool) -> None:
        """`loader(**options)` -> a mapping with numpy arrays `x_train`, `y_train` (optionally
        `x_test`, `y_test`), `task` ("multiclass", "binary" or "regression") and `class_names`."""
        self._add("dataset", name, loader, capabilities)

    def builtin(self, kind: Kind, name: str, target: str, extra: dict[str, object] | None = None,
                **capabilities: bool) -> None:
        """optlab's own entries, with internal facts (`extra`) plugins do not need."""
        self._add(kind, name, target, capabilities, extra)

    def for_source(self, source: Source) -> Registrar:
        """A registrar for entries whose code comes from elsewhere: optlab's built-in plugin for
        an optional package registers that package's classes with its name and version, so
        provenance (and the plugin fingerprint that resume checks) names the code that ran."""
        return Registrar(self._registry, source)

    def needs(self, kind: Kind, name: str, what: str) -> None:
        """`name` exists once `what` is installed: unknown-name errors say so."""
        self._registry.missing[kind][name] = what


def signature_params(fn: Callable[..., object]) -> tuple[list[str], bool]:
    """The named parameters of a class's __init__ or a function, and whether it takes **kwargs
    (then any key may be meant for it, and only a trial call can tell)."""
    target = fn.__init__ if isinstance(fn, type) else fn  # type: ignore[misc]
    params = inspect.signature(target).parameters.values()
    named = [p.name for p in params if p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)]
    return named, any(p.kind is p.VAR_KEYWORD for p in params)


def entry_point_plugins() -> list[metadata.EntryPoint]:
    """The installed plugins, by name, without importing any of them."""
    return sorted(metadata.entry_points(group=ENTRY_POINT_GROUP), key=lambda ep: ep.name)


def _package_source(module: str) -> Source:
    top = module.split(".")[0]
    dists = metadata.packages_distributions().get(top) or []
    if dists:
        try:
            return Source("package", dists[0], metadata.version(dists[0]))
        except metadata.PackageNotFoundError:
            pass
    return Source("package", module)


_REGISTRY: Registry | None = None


def registry() -> Registry:
    """The process-wide registry, with optlab's built-ins registered on first use."""
    global _REGISTRY
    if _REGISTRY is None:
        reg = Registry()
        importlib.import_module(BUILTIN_MODULE).register(reg.registrar(BUILTIN))
        _REGISTRY = reg
    return _REGISTRY


def load_plugins(refs: Iterable[str]) -> list[Source]:
    """Load each `--plugin` reference into the process-wide registry."""
    return [registry().load_plugin(ref) for ref in refs]


def get(kind: Kind, name: str) -> Entry:
    return registry().get(kind, name)


def names(kind: Kind, *, autoload: bool = True) -> list[str]:
    return registry().names(kind, autoload=autoload)


def sources(parts: dict[Kind, str]) -> dict[str, dict[str, str]]:
    """kind -> the source of the entry `parts[kind]` names (built-in, package, plugin file)."""
    return {kind: get(kind, name).source.to_dict() for kind, name in parts.items()}


def plugin_fingerprint(run_sources: dict[str, dict[str, str]]) -> str:
    """A short hash of the plugin code a run uses ("" when it uses only built-ins): one changed
    byte of a plugin file, or another version of a plugin package, changes it."""
    plugins = {kind: source for kind, source in run_sources.items() if source.get("origin") != "builtin"}
    if not plugins:
        return ""
    return hashlib.sha256(json.dumps(plugins, sort_keys=True).encode()).hexdigest()[:16]


def loaded_plugins() -> list[str]:
    """The plugins this process loaded, for workers to load the same before they build runs
    (files by absolute path: a worker's working directory is not to be relied on)."""
    return [source.path or ref for ref, source in registry().plugins]
