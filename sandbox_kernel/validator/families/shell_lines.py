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
_VERSION_OPS = re.compile(r"(?<=[\w\]])(?:>=|<=|==|~=|!=|<|>)(?=[\w.*])")
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


#: Commands that only change files of the working area, as ``os.remove``,
#: ``shutil.rmtree``, ``zipfile`` and ``gzip`` do (they pass in ``notebook``), with the
#: only options read: none of these runs another program or reads its options from
#: the environment in a way that does (``tar`` does: ``TAR_OPTIONS=--to-command=sh``,
#: so it stays a shell line). The value is the note a deletion carries (SK504).
WORKING_FILE_COMMANDS: dict[str, tuple[frozenset[str], frozenset[str], str]] = {
    "rm": (frozenset({"-f", "-r", "-R", "-rf", "-fr", "-v", "--force", "--recursive"}),
           frozenset(), "deletes files of the working area"),
    "unzip": (frozenset({"-q", "-qq", "-o", "-n", "-j", "-oq", "-qo"}), frozenset({"-d"}), ""),
    "gunzip": (frozenset({"-f", "-k", "-q", "-v", "--force", "--keep"}), frozenset(), ""),
}  # fmt: skip


def working_file_command(command: str) -> str | None:
    """For ``rm x.csv``, ``unzip -q data.zip -d data``, ``gunzip -f x.gz`` over plain
    words of the working area: the note it carries (``""`` for none); else None."""
    command = _COMMENT.sub("", command).strip()
    if SHELL_META.search(command) or "'" in command or '"' in command:
        return None
    words = command.split()
    if not words or words[0] not in WORKING_FILE_COMMANDS:
        return None
    flags, valued, note = WORKING_FILE_COMMANDS[words[0]]
    paths = 0
    rest = iter(words[1:])
    for word in rest:
        if word in flags:
            continue
        if word in valued:
            word = next(rest, "-")
        elif word.startswith("-"):
            return None
        if not (_PLAIN_WORD.match(word) and _working_area(word)) or word.startswith("-"):
            return None
        paths += 1
    return note if paths else None


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


# -- downloads --------------------------------------------------------------------------
# `!wget URL`, `!curl -O URL`, `!git clone URL` cannot work in a sandbox without a
# network; in the ``notebook`` profile such a line is answered (SK608) instead of
# refused. Only lines that do nothing but fetch qualify: the options below are the
# only ones read (others run commands: `wget --use-askpass`, `curl -K`, `git clone
# -u/-c/--template`, or send data: `curl -d/-T`), targets stay in the working area,
# and any shell syntax (`|`, `;`, `&&`, `$`, `{}`, backquotes) makes it a shell line.

_FILE_URL = re.compile(r"^(?:https?|ftp)://[^\s'\"]+$")
_REPO_URL = re.compile(r"^(?:(?:https?|git|ssh)://[^\s'\"]+|[\w.-]+@[\w.-]+:[\w./-]+)$")

#: Per downloader: options without a value, options taking the next word (or
#: ``--opt=value``) and which of those name a file or folder it writes.
_DOWNLOADERS: dict[str, tuple[frozenset[str], frozenset[str], frozenset[str]]] = {
    "wget": (
        frozenset({"-q", "--quiet", "-nc", "--no-clobber", "-c", "--continue", "-N",
                   "--timestamping", "-nv", "--no-verbose", "--show-progress",
                   "--no-check-certificate", "-nd", "--no-directories",
                   "--content-disposition"}),
        frozenset({"-O", "--output-document", "-P", "--directory-prefix", "-t", "--tries",
                   "-T", "--timeout", "--progress"}),
        frozenset({"-O", "--output-document", "-P", "--directory-prefix"}),
    ),
    "curl": (
        frozenset({"-O", "--remote-name", "-L", "--location", "-s", "--silent", "-S",
                   "--show-error", "-f", "--fail", "-k", "--insecure", "-#",
                   "--progress-bar", "--create-dirs", "-J", "--remote-header-name",
                   "--compressed"}),
        frozenset({"-o", "--output", "--retry", "-m", "--max-time", "--connect-timeout"}),
        frozenset({"-o", "--output"}),
    ),
    "git clone": (
        frozenset({"-q", "--quiet", "--recursive", "--recurse-submodules", "--single-branch",
                   "--no-single-branch", "--shallow-submodules", "--progress", "--no-tags"}),
        frozenset({"--depth", "-b", "--branch", "--filter"}),
        frozenset(),
    ),
}  # fmt: skip
_CURL_BUNDLE = re.compile(r"^-[OLsSfkJ#]{2,}$")  # `curl -sSLO URL`
_REDIRECT = re.compile(r"\s>\s*([^\s>&|;]+)\s*$")  # `curl URL > file`


def download_sources(command: str) -> list[str] | None:
    """What a shell line that only downloads fetches, or None.

    ``wget -q https://x/a.csv`` -> ``["https://x/a.csv"]``; ``git clone URL dir`` ->
    ``["git clone URL"]``; None for anything else (other options, other commands,
    shell syntax, a target outside the working area).
    """
    command = _COMMENT.sub("", command).strip()
    redirect = _REDIRECT.search(command)
    if redirect is not None:
        target = redirect.group(1)
        if not command.startswith("curl ") or not (
            _PLAIN_WORD.match(target) and _working_area(target)
        ):
            return None
        command = command[: redirect.start()]
    words = command.split()
    if SHELL_META.search(command) or any("'" in w[1:-1] or '"' in w[1:-1] for w in words):
        return None
    words = [w[1:-1] if len(w) > 1 and w[0] == w[-1] and w[0] in "'\"" else w for w in words]
    tool = "git clone" if words[:2] == ["git", "clone"] else (words[0] if words else "")
    if tool not in _DOWNLOADERS:
        return None
    flags, valued, targets = _DOWNLOADERS[tool]
    rest = words[2:] if tool == "git clone" else words[1:]
    plain: list[str] = []
    index = 0
    while index < len(rest):
        word = rest[index]
        index += 1
        option, has_value, value = word.partition("=")
        if word in flags or (tool == "curl" and _CURL_BUNDLE.match(word)):
            continue
        if option in valued:
            if not has_value:
                if index >= len(rest):
                    return None
                value = rest[index]
                index += 1
            if option in targets and not (_PLAIN_WORD.match(value) and _working_area(value)):
                return None
            continue
        if word.startswith("-"):
            return None
        plain.append(word)
    if tool == "git clone":
        if not 1 <= len(plain) <= 2 or not _REPO_URL.match(plain[0]):
            return None
        if len(plain) == 2 and not (_PLAIN_WORD.match(plain[1]) and _working_area(plain[1])):
            return None
        return [f"git clone {plain[0]}"]
    if not plain or not all(_FILE_URL.match(word) for word in plain):
        return None
    return plain
