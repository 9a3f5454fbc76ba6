"""What IPython makes of a magic's arguments: ``{expr}`` fields it evaluates, literal
values, and the code part of ``%timeit -n 10 f(x)``."""

from __future__ import annotations

import ast
import string

#: Options of ``%timeit``/``%prun`` that take a value as the next word.
MAGIC_OPTIONS_WITH_VALUE = frozenset({"-n", "-r", "-p", "-l", "-s", "-T", "-D"})


def is_literal(text: str) -> bool:
    # `%config InlineBackend.rc = {'figure.figsize': (6, 4)}`: IPython tries the field,
    # fails, and leaves the text as written
    try:
        ast.literal_eval(text.strip())
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return False
    return True


def format_fields(text: str, depth: int = 0) -> list[str]:
    """The expressions IPython's variable expansion evaluates in ``text`` (``{expr}``,
    also inside format specs), as :class:`string.Formatter` splits them."""
    fields: list[str] = []
    try:
        parsed = list(string.Formatter().parse(text))
    except ValueError:
        return fields  # IPython leaves text it cannot parse unexpanded
    for _literal, field, spec, _conversion in parsed:
        if field:
            fields.append(field)
        if spec and depth < 4:
            fields.extend(format_fields(spec, depth + 1))
    return fields


def strip_magic_options(args: str) -> str:
    """The code part of ``%timeit -n 10 -r 3 f(x)``: drop leading options."""
    rest = args.lstrip()
    while rest.startswith("-"):
        option, _, rest = rest.partition(" ")
        rest = rest.lstrip()
        if option in MAGIC_OPTIONS_WITH_VALUE:
            _, _, rest = rest.partition(" ")
            rest = rest.lstrip()
    return rest
