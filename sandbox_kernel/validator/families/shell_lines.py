"""Shell lines the ``ipython`` family lets through or answers.

Package installs (``%pip install x``, ``!pip install x``, ``%conda install x``) are
recognised, so that the cell is answered with the command that adds the packages to
the image (rule SK607, wording in :func:`..results.install_answer`) rather than run.
Read-only commands over the working area (``!ls``, ``!head data.csv``) pass in the
``notebook`` profile: they read what ``open()`` reads.
"""

from __future__ import annotations

import re

# redirections that only silence an install line (`!pip install -q x > /dev/null 2>&1`)
_SILENCING = re.compile(r"\s*(?:&>|2?>>?)\s*/dev/null(?:\s+2>&1)?\s*$|\s+2>&1\s*$")
_COMMENT = re.compile(r"(?:^|\s)#.*$")
_VERSION_OPS = re.compile(r"(?<=\w)(?:>=|<=|==|~=|!=|<|>)(?=[\w.*])")
#: Characters that make a line more than one plain command.
SHELL_META = re.compile(r"[$`{};|&<>()\\\n~]")

#: What notebooks upgrade before installing (`pip install -U pip`): the installer
#: itself, not a package to add to the image.
_TOOLING = frozenset({"pip", "setuptools", "wheel"})

#: Package managers: the words that start an install, and the options that take a value.
_INSTALLERS = {
    ("pip",): "pip", ("pip3",): "pip", ("uv", "pip"): "pip",
    ("conda",): "conda", ("mamba",): "conda", ("micromamba",): "conda",
}  # fmt: skip
_PYTHONS = re.compile(r"^(?:python|python3|python3\.\d+)$")
_PIP_NAME = re.compile(r"^pip(?:3(?:\.\d+)?)?$")
_OPTIONS_WITH_VALUE = frozenset(
    {"-r", "--requirement", "-c", "--constraint", "-e", "--editable", "-i", "--index-url",
     "--extra-index-url", "-f", "--find-links", "-t", "--target", "--prefix", "--root",
     "--src", "--upgrade-strategy", "--channel", "-n", "--name", "-p", "--python",
     "--platform", "--python-version", "--implementation", "--abi", "--trusted-host"}
)  # fmt: skip


def install_packages(command: str) -> list[str] | None:
    """The packages a shell line or ``%pip``/``%conda`` line installs, or None.

    ``pip install -q numpy pandas>=2`` -> ``["numpy", "pandas>=2"]``; None when the
    line is not one plain install (other subcommands, shell expansion, pipes).
    """
    # a shell comment ends the line (`!pip install x  # for Colab`)
    command = _SILENCING.sub("", _COMMENT.sub("", command).strip())
    # version specifiers (numpy>=1.26) read as words, as pip reads them
    if SHELL_META.search(_VERSION_OPS.sub("", command)):
        return None
    words = command.split()
    if len(words) >= 3 and _PYTHONS.match(words[0]) and words[1] == "-m":
        words = words[2:]
    if not words:
        return None
    if _PIP_NAME.match(words[0]):
        words = ["pip", *words[1:]]
    for prefix in _INSTALLERS:
        if tuple(words[: len(prefix)]) == prefix:
            rest = words[len(prefix) :]
            break
    else:
        return None
    first_plain = next((word for word in rest if not word.startswith("-")), None)
    if first_plain != "install":
        return None
    packages: list[str] = []
    skip = False
    for word in rest[rest.index("install") + 1 :]:
        if skip:
            skip = False
            continue
        if word.startswith("-"):
            skip = word in _OPTIONS_WITH_VALUE
            continue
        name = word.strip("'\"")
        if name.lower() not in _TOOLING:
            packages.append(name)
    return packages


def is_install_cell(source: str) -> bool:
    """Whether every line of the cell that does something is a package install."""
    found = False
    for line in source.splitlines():
        text = line.strip()
        if not text or text.startswith("#"):
            continue
        if text.startswith("!") or (text.startswith("%") and not text.startswith("%%")):
            command = text[1:]
        else:
            return False
        if install_packages(command) is None:
            return False
        found = True
    return found


#: Read-only shell commands allowed as a whole line in ``notebook``.
READONLY_COMMANDS = frozenset({"ls", "head", "tail", "wc", "cat", "pwd", "du", "file"})
#: IPython's default aliases that are read-only commands.
READONLY_ALIASES = {"ls": "ls", "cat": "cat", "ll": "ls", "lf": "ls", "lk": "ls", "lx": "ls",
                     "ldir": "ls", "less": "cat", "more": "cat"}  # fmt: skip
_PLAIN_WORD = re.compile(r"^[A-Za-z0-9_./,:=+@%*?\[\]-]+$")


def readonly_shell(command: str) -> bool:
    """Whether ``command`` is one read-only command over the working area."""
    if SHELL_META.search(command) or "'" in command or '"' in command:
        return False
    words = command.split()
    if not words or words[0] not in READONLY_COMMANDS:
        return False
    for word in words[1:]:
        if not _PLAIN_WORD.match(word):
            return False
        path = word.partition("=")[2] if word.startswith("-") else word
        if path and not _working_area(path):  # also `--files0-from=/etc/x`
            return False
    return True


def _working_area(path: str) -> bool:
    """Whether ``path`` stays in the working directory or the read-only data mounts."""
    if path.startswith("/"):
        inside = path in ("/data", "/tmp/work") or path.startswith(("/data/", "/tmp/work/"))
        return inside and ".." not in path
    return ".." not in path.split("/")
