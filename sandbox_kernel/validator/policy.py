"""The administrator's policy: profile, mode, threshold, scores, extra names and rules.

:class:`Policy` is immutable; :class:`Tables` is the policy applied to the families'
name tables (a profile's relaxations, allowed and banned names) and the dispatch
table of the walk, built once per distinct policy and shared.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import importlib
from collections.abc import Callable, Iterable, Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, cast

from ..errors import ConfigError
from . import registry
from .prepare import MAX_SOURCE_CHARS
from .results import Mode, Profile, Violation
from .rules import PROFILE_SCORES, PROFILES, RULES

if TYPE_CHECKING:
    from .registry import Check

RuleFunc = Callable[[ast.AST, str], Iterable[Violation]]

#: Entry point group of installed custom rules.
ENTRY_POINT_GROUP = "sandbox_kernel.rules"

_MODES = ("block", "warn", "off")

_SET_FIELDS = (
    "banned_modules",
    "allowed_modules",
    "banned_calls",
    "allowed_calls",
    "banned_attributes",
    "allowed_attributes",
    "banned_magics",
    "allowed_magics",
)


def _as_name_set(value: Any, what: str) -> frozenset[str]:
    """Normalise a set-valued setting: any iterable of strings, or a comma list."""
    if value is None:
        return frozenset()
    if isinstance(value, str):
        value = value.split(",")
    try:
        items = list(value)
    except TypeError:
        raise ConfigError(f"{what} must be a list of names, not {value!r}") from None
    names = set()
    for item in items:
        if not isinstance(item, str):
            raise ConfigError(f"{what} must contain names (strings), not {item!r}")
        if item.strip():
            names.add(item.strip())
    return frozenset(names)


@dataclass(frozen=True)
class Policy:
    """What the administrator decided: mode, threshold, scores and extra rules.

    Every set accepts any iterable of names (or a comma-separated string) and is stored
    as a frozenset; the policy is immutable once built.

    Attributes:
        profile: ``strict`` (the default of the library and of the ``Sandbox`` API:
            any ``os``, ``subprocess``, ``socket``, ``eval`` or file-writing use is
            refused) or ``notebook`` (the kernel's default: capabilities are refused,
            everyday file and path code passes). See :data:`.rules.PROFILES`.
        mode: ``block`` (refuse at the threshold), ``warn`` (run, show findings) or
            ``off`` (judge nothing).
        threshold: risk score at which ``block`` refuses a cell.
        rule_scores: rule id -> score, overriding the defaults (0 disables a rule).
        banned_modules: more modules to refuse on import (dotted, prefix-matched).
        allowed_modules: modules to accept although the built-in list refuses them.
        banned_calls: functions to refuse when called, by bare or dotted name.
        allowed_calls: built-in dangerous callables to accept (``compile``, ``system``).
        banned_attributes: attribute names to refuse wherever they appear.
        allowed_attributes: built-in dangerous attributes to accept (``__dict__``).
        banned_magics: magics to refuse, allowed_magics: magics to accept.
        custom_rules: callables ``rule(tree, source) -> Iterable[Violation]`` or their
            dotted paths (``"pkg.mod:func"``).
        entry_point_rules: also run the rules of the ``sandbox_kernel.rules`` group.
        max_source_chars: largest cell judged; larger cells are blocked.

    Raises:
        ConfigError: when a value has the wrong type or mode is unknown.
    """

    mode: Mode = "block"
    profile: Profile = "strict"
    threshold: int = 30
    rule_scores: Mapping[str, int] = field(default_factory=dict)
    banned_modules: AbstractSet[str] = frozenset()
    allowed_modules: AbstractSet[str] = frozenset()
    banned_calls: AbstractSet[str] = frozenset()
    allowed_calls: AbstractSet[str] = frozenset()
    banned_attributes: AbstractSet[str] = frozenset()
    allowed_attributes: AbstractSet[str] = frozenset()
    banned_magics: AbstractSet[str] = frozenset()
    allowed_magics: AbstractSet[str] = frozenset()
    custom_rules: tuple[RuleFunc | str, ...] = ()
    entry_point_rules: bool = True
    max_source_chars: int = MAX_SOURCE_CHARS
    _tables: Tables = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.mode not in _MODES:
            raise ConfigError(f"validation mode {self.mode!r} is not one of block, warn, off")
        if self.profile not in PROFILES:
            raise ConfigError(
                f"validation profile {self.profile!r} is not one of {', '.join(PROFILES)}"
            )
        for name in ("threshold", "max_source_chars"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int):
                raise ConfigError(f"{name} must be an integer, not {value!r}")
        scores: dict[str, int] = {}
        for rule_id, score in dict(self.rule_scores or {}).items():
            if (
                not isinstance(rule_id, str)
                or isinstance(score, bool)
                or not isinstance(score, int)
            ):
                raise ConfigError(
                    f"rule_scores needs rule id -> integer, not {rule_id!r}: {score!r}"
                )
            scores[rule_id] = score
        set_ = object.__setattr__  # frozen: normalise once, here
        set_(self, "rule_scores", MappingProxyType(scores))
        for name in _SET_FIELDS:
            set_(self, name, _as_name_set(getattr(self, name), name))
        rules = self.custom_rules
        if isinstance(rules, str) or callable(rules):
            rules = (rules,)
        rules = tuple(rules or ())
        for rule in rules:
            if not (isinstance(rule, str) or callable(rule)):
                raise ConfigError(f"custom rule {rule!r} is neither a callable nor a dotted path")
        set_(self, "custom_rules", rules)
        # The kernel may build a Policy per cell: equal settings share their tables.
        sets = (getattr(self, name) for name in _SET_FIELDS)
        node_rules = tuple(_node_rules(rules))
        set_(
            self,
            "_tables",
            _tables_for(self.profile, tuple(sorted(scores.items())), node_rules, *sets),
        )

    @classmethod
    def from_config(cls, config: Any = None, /, **values: Any) -> Policy:
        """Build a policy from plain values, a mapping, or a settings object.

        A settings object (such as :class:`~sandbox_kernel.config.SandboxConfig`) is read
        for the traits ``validation`` (the mode), ``validation_profile``,
        ``validation_threshold``,
        ``validation_rule_scores``, ``validation_banned_modules``,
        ``validation_allowed_modules``, ``validation_banned_calls``,
        ``validation_allowed_calls``, ``validation_banned_attributes``,
        ``validation_allowed_attributes``, ``validation_banned_magics``,
        ``validation_allowed_magics``, ``validation_custom_rules`` and
        ``validation_max_source_chars``, whichever it has. A mapping may use those names
        or the field names; keyword arguments (field names) win. Dotted custom rules are
        imported now, so a wrong path fails at startup rather than on every cell.

        Raises:
            ConfigError: when a value has the wrong type, the mode is unknown, or a
                custom rule cannot be imported.
        """
        merged: dict[str, Any] = {}
        if isinstance(config, Mapping):
            for key, value in config.items():
                merged[_CONFIG_KEYS.get(str(key), str(key))] = value
        elif config is not None:
            for attr, key in _CONFIG_KEYS.items():
                if hasattr(config, attr):
                    merged[key] = getattr(config, attr)
        merged.update(values)
        if merged.get("profile") is None:
            merged.pop("profile", None)  # unset: the library's default
        unknown = set(merged) - _FIELD_NAMES
        if unknown:
            raise ConfigError(f"unknown validator setting(s): {', '.join(sorted(unknown))}")
        for key in ("threshold", "max_source_chars"):
            if isinstance(merged.get(key), str) and merged[key].strip().lstrip("-").isdigit():
                merged[key] = int(merged[key])
        if isinstance(merged.get("custom_rules"), str):
            merged["custom_rules"] = [p for p in merged["custom_rules"].split(",") if p.strip()]
        policy = cls(**merged)
        for rule in policy.custom_rules:
            if isinstance(rule, str):
                load_dotted(rule)
        return policy


_FIELD_NAMES = frozenset(f.name for f in dataclasses.fields(Policy) if f.init)
_CONFIG_KEYS = {
    "validation": "mode",
    "validation_mode": "mode",
    "validation_profile": "profile",
    **{f"validation_{name}": name for name in _FIELD_NAMES if name not in ("mode", "profile")},
}


@functools.lru_cache(maxsize=1)
def default_policy() -> Policy:
    """The default policy (immutable, built once)."""
    return Policy()


@functools.lru_cache(maxsize=64)
def load_dotted(path: str) -> RuleFunc:
    """Import a custom rule named ``pkg.mod:func`` (or ``pkg.mod.func``).

    Raises:
        ConfigError: when it cannot be imported or is not callable.
    """
    module_name, sep, attr = path.strip().partition(":")
    if not sep:
        module_name, _, attr = path.strip().rpartition(".")
    if not module_name or not attr:
        raise ConfigError(f"custom rule {path!r} is not a dotted path like 'pkg.mod:func'")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attr.split("."):
            obj = getattr(obj, part)
    except Exception as exc:
        raise ConfigError(f"custom rule {path!r} cannot be imported: {exc}") from exc
    if not callable(obj):
        raise ConfigError(f"custom rule {path!r} is not callable")
    return cast(RuleFunc, obj)


@functools.lru_cache(maxsize=1)
def entry_point_rules() -> tuple[tuple[str, RuleFunc | None, str], ...]:
    """Installed custom rules: (name, rule or None, load error)."""
    from importlib.metadata import entry_points

    found: list[tuple[str, RuleFunc | None, str]] = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        try:
            rule = ep.load()
        except Exception as exc:
            found.append((ep.name, None, f"{type(exc).__name__}: {exc}"))
            continue
        if callable(rule):
            found.append((ep.name, cast(RuleFunc, rule), ""))
        else:
            found.append((ep.name, None, "not callable"))
    return tuple(found)


def _node_rules(rules: tuple[RuleFunc | str, ...]) -> Iterable[tuple[tuple[type, ...], Check]]:
    """Custom rules registered for node types (see :func:`.registry.node_rule`)."""
    for rule in rules:
        try:
            func: Any = load_dotted(rule) if isinstance(rule, str) else rule
        except ConfigError:
            continue  # reported as SK900 on every cell, by the whole-tree pass
        types = getattr(func, "node_types", None)
        if types:
            yield tuple(types), cast("Check", func)


class Tables:
    """One policy applied to the families' tables: what each check looks up.

    Built once per distinct (profile, scores, names, node rules) and shared: the
    kernel may build a :class:`Policy` per cell.
    """

    # set by the families' ``build_tables`` (see :mod:`.families`)
    chain_names: frozenset[str]
    relaxed_modules: frozenset[str]
    dangerous_attrs: dict[str, str]
    module_apis: dict[str, dict[str, str]]
    dyn_builtins: frozenset[str]
    dynamic_imports: frozenset[str]
    breakpoint: bool
    escape_dunders: frozenset[str]
    weak_dunders: frozenset[str]
    frame_attrs: frozenset[str]
    sys_attrs: dict[str, str]
    escape_names: frozenset[str]
    attr_sinks: frozenset[str]
    namespace_builtins: frozenset[str]
    fs_mutation: frozenset[str]
    system_roots: frozenset[str]

    def __init__(
        self,
        profile: Profile,
        rule_scores: tuple[tuple[str, int], ...],
        node_rules: tuple[tuple[tuple[type, ...], Check], ...],
        banned_mods: frozenset[str],
        allowed_mods: frozenset[str],
        banned_calls: frozenset[str],
        allowed_calls: frozenset[str],
        banned_attrs: frozenset[str],
        allowed_attrs: frozenset[str],
        banned_magics: frozenset[str],
        allowed_magics: frozenset[str],
    ) -> None:
        from . import families

        self.profile = profile
        self.notebook = profile == "notebook"
        self.profile_scores = PROFILE_SCORES[profile]
        self.scores = {rid: rule.score for rid, rule in RULES.items()}
        self.scores.update(self.profile_scores)
        self.scores.update(rule_scores)
        self.allowed_names = allowed_calls | allowed_attrs
        self.allowed_modules = allowed_mods
        self.banned_modules = banned_mods
        self.banned_calls = banned_calls
        self.banned_attrs = banned_attrs
        self.allowed_magics = allowed_magics
        self.banned_magics = banned_magics
        # each family adds its own tables, filtered by the policy
        self.sink_names: frozenset[str] = frozenset(banned_attrs)
        # names a notebook may give a variable (see .scopes), filled by the families
        self.variable_names: frozenset[str] = frozenset()
        self.unparseable_words: set[str] = set(banned_calls)
        families.build_tables(self)
        self.unparseable_words -= self.allowed_names
        dispatch: dict[type, list[Check]] = {k: list(v) for k, v in registry.CHECKS.items()}
        for types, func in node_rules:
            for node_type in types:
                dispatch.setdefault(node_type, []).append(func)
        self.dispatch: dict[type, tuple[Check, ...]] = {k: tuple(v) for k, v in dispatch.items()}


_tables_for = functools.lru_cache(maxsize=64)(Tables)
