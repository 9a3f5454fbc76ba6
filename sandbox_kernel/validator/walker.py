"""The one walk over a cell: state of judging it, and the node visitor.

:class:`Analysis` holds what one :func:`~.validate` call found (findings, the source
they point at) and judges cells and magic bodies; :class:`Walker` visits each node of
one parsed cell once, with an explicit stack (no recursion, so a 100 000-deep
expression cannot overflow it) and in source order (imports are seen before the
names they bind), and calls the checks the families registered for that node type.
"""

from __future__ import annotations

import ast
from typing import TYPE_CHECKING, Any

from . import registry
from .prepare import EXCERPT_CHARS, MAX_MAGIC_DEPTH, CannotJudge, Untransformable, prepare
from .results import SyntaxErrorInfo, Violation
from .rules import RULES
from .scopes import Scopes
from .text import shorten

if TYPE_CHECKING:
    from .policy import Policy, RuleFunc, Tables

#: Most violations one custom rule may return for one cell.
MAX_CUSTOM_VIOLATIONS = 1000

_SKIP_FIELDS = frozenset({"ctx", "op", "type_comment", "id", "attr", "arg", "level", "kind"})
_CHILD_FIELDS: dict[type, tuple[str, ...]] = {}


def _child_fields(cls: type) -> tuple[str, ...]:
    """The fields of ``cls`` that may hold child nodes, last field first."""
    fields = _CHILD_FIELDS.get(cls)
    if fields is None:
        fields = tuple(f for f in reversed(getattr(cls, "_fields", ())) if f not in _SKIP_FIELDS)
        _CHILD_FIELDS[cls] = fields
    return fields


class Analysis:
    """State of judging one cell: the findings and the source they refer to."""

    def __init__(self, policy: Policy, source: str) -> None:
        self.policy = policy
        self.tables: Tables = policy._tables
        self.source = source
        self.lines = source.splitlines()
        self.violations: list[Violation] = []
        self._seen: set[tuple[str, int, int, str]] = set()
        self.tree: ast.AST | None = None
        self.transformed = source
        self.line_offset = 0
        self.syntax_error: SyntaxErrorInfo | None = None
        #: packages the cell asks to install (``%pip install x``), in order
        self.install_packages: list[str] = []
        #: what the cell downloads (``!wget URL``, ``urlretrieve``), in order
        self.downloads: list[str] = []

    # -- recording ---------------------------------------------------------------------
    def excerpt(self, line: int) -> str:
        if 1 <= line <= len(self.lines):
            return shorten(self.lines[line - 1].strip(), EXCERPT_CHARS)
        return ""

    def emit(
        self, rule_id: str, line: int, column: int, message: str, score: int | None = None
    ) -> None:
        """Record a finding; the policy's score for the rule wins over ``score``."""
        rule = RULES.get(rule_id)
        if rule_id in self.policy.rule_scores or rule_id in self.tables.profile_scores:
            score = self.tables.scores[rule_id]
        elif score is None:
            score = self.tables.scores.get(rule_id, 0)
        if score <= 0:
            return  # the administrator (or the profile) turned the rule off
        key = (rule_id, line, column, message)
        if key in self._seen:
            return
        self._seen.add(key)
        self.violations.append(
            Violation(
                rule_id=rule_id,
                severity=rule.severity if rule else "high",
                score=score,
                line=line,
                column=column,
                message=message,
                excerpt=self.excerpt(line),
                name=rule.name if rule else "",
            )
        )

    # -- cells -------------------------------------------------------------------------
    def judge_cell(self, text: str, depth: int, base_line: int) -> None:
        """Judge ``text`` as IPython would run it; its line 1 is ``base_line + 1``.

        Raises:
            CannotJudge: when the cell cannot be transformed or parsed within bounds.
        """
        if depth > MAX_MAGIC_DEPTH:
            raise CannotJudge("magics nested too deeply to judge")
        try:
            transformed, tree, error, lead = prepare(text)
        except Untransformable as exc:
            if depth or not self.tables.notebook:
                raise
            # IPython runs nothing: judged as an unparseable cell (a word scan), in
            # case another IPython version reads it
            self.syntax_error = SyntaxErrorInfo(str(exc), 1 + base_line, 0)
            from .unparseable import scan_unparseable

            scan_unparseable(self, text, base_line)
            return
        offset = base_line + lead
        if depth == 0:
            self.tree, self.transformed, self.line_offset = tree, transformed, offset
            if error is not None:
                self.syntax_error = SyntaxErrorInfo(
                    error.msg, (error.lineno or 1) + offset, error.offset or 0
                )
        for check in registry.CELL_CHECKS:
            check(self, transformed, depth, offset)
        if tree is not None:
            Walker(self, offset, depth).run(tree)
        elif error is not None:
            from .unparseable import scan_unparseable

            scan_unparseable(self, text, base_line)

    # -- custom rules ------------------------------------------------------------------
    def run_custom_rules(self) -> None:
        """Run the policy's whole-tree custom rules and the installed entry-point rules."""
        from .policy import entry_point_rules, load_dotted

        tree = self.tree
        if tree is None:
            return
        from ..errors import ConfigError

        rules: list[tuple[str, RuleFunc | None, str]] = []
        for rule in self.policy.custom_rules:
            if isinstance(rule, str):
                try:
                    loaded = load_dotted(rule)
                except ConfigError as exc:
                    rules.append((rule, None, str(exc)))
                    continue
                if not hasattr(loaded, "node_types"):
                    rules.append((rule, loaded, ""))
            elif not hasattr(rule, "node_types"):
                rules.append((getattr(rule, "__name__", repr(rule)), rule, ""))
        if self.policy.entry_point_rules:
            rules.extend(r for r in entry_point_rules() if not hasattr(r[1], "node_types"))
        for name, func, load_error in rules:
            if func is None:
                self.emit("SK900", 0, 0, f"custom rule {name} could not be loaded: {load_error}")
                continue
            try:
                for count, found in enumerate(func(tree, self.transformed)):
                    if count >= MAX_CUSTOM_VIOLATIONS:
                        break
                    if not isinstance(found, Violation):
                        raise TypeError(f"returned {type(found).__name__}, not Violation")
                    self._add_custom(found)
            except Exception as exc:
                self.emit(
                    "SK900",
                    0,
                    0,
                    f"custom rule {name} failed: {type(exc).__name__}: {shorten(str(exc))}",
                )

    def _add_custom(self, found: Violation) -> None:
        line = found.line + self.line_offset if found.line > 0 else found.line
        score = self.policy.rule_scores.get(found.rule_id, found.score)
        if score <= 0:
            return
        key = (found.rule_id, line, found.column, found.message)
        if key in self._seen:
            return
        self._seen.add(key)
        self.violations.append(
            Violation(
                rule_id=found.rule_id,
                severity=found.severity,
                score=score,
                line=line,
                column=found.column,
                message=found.message,
                excerpt=found.excerpt or self.excerpt(line),
                name=found.name,
            )
        )


class Walker:
    """The single pass over one cell's tree, shared state for the families' checks.

    Attributes the checks use: ``t`` (the policy's tables), ``aliases`` (local name ->
    dotted origin, from the cell's imports), ``handled`` (ids of nodes a check already
    judged as part of a bigger node), ``decorators``, ``scopes`` (variables that share
    a dangerous name, see :mod:`.scopes`), ``built_names_done`` (built strings a sink
    judged already).
    """

    def __init__(self, analysis: Analysis, line_offset: int, depth: int) -> None:
        self.analysis = analysis
        self.t = analysis.tables
        self.notebook = self.t.profile == "notebook"
        self.line_offset = line_offset
        self.depth = depth
        self.aliases: dict[str, str] = {}
        self.handled: set[int] = set()
        self.decorators: set[int] = set()
        self.scopes = Scopes()
        self.built_names_done: set[int] = set()

    def run(self, tree: ast.AST) -> None:
        dispatch = self.t.dispatch
        stack: list[ast.AST] = [tree]
        pop, push = stack.pop, stack.append
        ast_type = ast.AST
        while stack:
            node = pop()
            cls = node.__class__
            checks = dispatch.get(cls)
            if checks is not None:
                for check in checks:
                    check(self, node)
            # children pushed last-first, so that they are visited in source order
            for name in _child_fields(cls):
                value = getattr(node, name, None)
                if value.__class__ is list:
                    for item in reversed(value):
                        if isinstance(item, ast_type):
                            push(item)
                elif isinstance(value, ast_type):
                    push(value)

    # -- recording -----------------------------------------------------------------------
    def emit(self, rule_id: str, node: Any, message: str, score: int | None = None) -> None:
        """Record a finding at ``node``'s position in the cell as written."""
        line = getattr(node, "lineno", 1)
        col = getattr(node, "col_offset", 0)
        self.analysis.emit(rule_id, line + self.line_offset, col, message, score)

    def shadowed(self, name: str, safe_namesakes: frozenset[str] = frozenset()) -> bool:
        """Whether an import in this cell makes ``name`` harmless or already judged.

        Only ``import os`` (judged at the import) and known safe namesakes such as
        ``from re import compile`` count: any other import may sit in a branch that
        never runs (``if False: from x import eval``) and must not hide the builtin.
        """
        origin = self.aliases.get(name)
        return origin is not None and (origin == name or origin in safe_namesakes)

    def is_variable(self, node: ast.Name) -> bool:
        """Whether ``node`` names a variable rather than the builtin or module of that
        name (``notebook`` only; a store is never a reference)."""
        if not self.notebook:
            return False
        if not isinstance(node.ctx, ast.Load):
            return True
        return self.scopes.is_variable(node.id, getattr(node, "lineno", 1))

    def resolve(self, expr: ast.expr, aliases: bool = True) -> str | None:
        """Dotted name of a Name/Attribute chain, with import aliases resolved."""
        parts: list[str] = []
        while isinstance(expr, ast.Attribute) and len(parts) < 32:
            parts.append(expr.attr)
            expr = expr.value
        if not isinstance(expr, ast.Name):
            return None
        parts.append(self.aliases.get(expr.id, expr.id) if aliases else expr.id)
        return ".".join(reversed(parts))
