"""The data family: unsafe deserialisation, pandas expressions, system paths, deletions (SK501-SK504)."""

from __future__ import annotations

import pytest

from sandbox_kernel.validator import validate

from validator_checks import NOTEBOOK, STRICT, blocked, passes_in_notebook, rule_ids


@pytest.mark.parametrize(
    ("source", "rule"),
    [
        ("np.load('a.npy', allow_pickle=True)", "SK501"),
        ("pd.read_pickle('x.pkl')", "SK501"),
        ("import joblib as jl\njl.load('m')", "SK501"),
        ("import yaml\nyaml.load(f, Loader=yaml.Loader)", "SK501"),
        ("df.query('a > 1', engine='python')", "SK502"),
        ("df.eval('a.__class__')", "SK502"),
        ("open('/etc/passwd')", "SK503"),
        ("pd.read_csv('/proc/self/environ')", "SK503"),
        ("open('file:///etc/hosts')", "SK503"),
        ("open('../../etc/passwd')", "SK503"),
        ("Path('x').unlink()", "SK504"),
    ],
)
def test_rule_fires_in_strict(source: str, rule: str) -> None:
    assert rule in rule_ids(source, STRICT), validate(source, STRICT).format_report()


def test_writing_pickles_passes_and_loading_them_is_refused_in_notebook() -> None:
    assert passes_in_notebook(
        "import pickle\nwith open('m.pkl', 'wb') as f:\n    pickle.dump(m, f)"
    )
    assert blocked("import pickle\npickle.loads(data)", NOTEBOOK)
    assert blocked("import pickle as pk\nwith open('m.pkl', 'rb') as f:\n    pk.load(f)", NOTEBOOK)
    assert blocked("from pickle import load", NOTEBOOK)
    assert blocked("import pickle", STRICT)


def test_deleting_in_the_working_area_is_a_note_in_notebook() -> None:
    result = validate("from pathlib import Path\nPath('out.csv').unlink()", NOTEBOOK)
    assert not result.blocked and {v.rule_id for v in result.violations} == {"SK504"}
    assert blocked("from pathlib import Path\nPath('out.csv').unlink()", STRICT)


@pytest.mark.parametrize(
    "source",
    [
        "open('/etc/passwd')",
        "open('/home/u/.ssh/id_rsa')",
        "open('../../etc/shadow', 'w')",
        "pd.read_pickle('x.pkl')",
    ],
)
def test_system_paths_and_unpickling_are_refused_in_both_profiles(source: str) -> None:
    assert blocked(source, NOTEBOOK) and blocked(source, STRICT)


@pytest.mark.parametrize(
    ("source", "refused"),
    [
        # one level up stays beside the notebook's folder (/tmp/work or below)
        ("sys.path.append('../lib')", False),
        ("open('../bin/run_config.txt').read()", False),
        ("open('data/../../etc/passwd')", False),  # that is ../etc: /tmp/etc at most
        # two or more may reach / when the notebook sits at the working root
        ("sys.path.append('../../lib')", True),
        ("open('../data/../../etc/passwd')", True),
        ("open('../../../../proc/self/environ')", True),
    ],
)
def test_a_climb_is_judged_by_how_far_it_can_reach(source: str, refused: bool) -> None:
    assert blocked(source, NOTEBOOK) is refused, validate(source, NOTEBOOK).format_report()
