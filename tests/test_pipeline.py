"""A data pipeline over ``fcache`` across processes: exactly the stages whose inputs, code
or helpers changed recompute, old code versions leave the disk, and ``cache_explain`` says
why a stage will run before it runs (issue 11)."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest

from tests.conftest import run_python

pytest.importorskip("pandas")
pytest.importorskip("pyarrow")
pytest.importorskip("joblib")

HELPERS = '''
SCALE = 1.0


def clean(frame):
    """Drops incomplete rows."""
    return frame.dropna()
'''

STAGES = """
import numpy as np
import pandas as pd

import helpers
from twat_cache import fcache

RAN = []


@fcache(files=("csv_path",))
def load(csv_path):
    RAN.append("load")
    return pd.read_csv(csv_path)


@fcache(files=("csv_path",))
def features(csv_path):
    RAN.append("features")
    frame = helpers.clean(load(csv_path))
    frame["revenue"] = frame["units"] * frame["price"] * helpers.SCALE
    return frame.groupby("region")[["units", "revenue"]].sum()


@fcache(files=("csv_path",))
def model(csv_path):
    RAN.append("model")
    table = features(csv_path)
    x = np.column_stack([table["units"].to_numpy(float), np.ones(len(table))])
    coef, *_ = np.linalg.lstsq(x, table["revenue"].to_numpy(float), rcond=None)
    return coef
"""

RUN = """
import json, sys
sys.path.insert(0, {folder!r})
import stages

csv = {csv!r}
names = ("load", "features", "model")
why = {{name: getattr(stages, name).cache_explain(csv) for name in names}}
coef = stages.model(csv)
print(json.dumps({{
    "reasons": {{name: e.reason for name, e in why.items()}},
    "details": {{name: e.detail for name, e in why.items()}},
    "ran": stages.RAN,
    "coef": [float(c) for c in coef],
}}))
"""

CSV = "region,units,price\nn,3,2.5\ns,5,1.0\nn,2,2.5\ne,7,4.0\ns,,3.0\n"


def _entries(root: Path) -> dict[str, int]:
    """Entry files per stage folder."""
    counts: dict[str, int] = {}
    for entry in root.rglob("*.tc"):
        stage = next(p for p in entry.parents if p.name.startswith("stages."))
        counts[stage.name] = counts.get(stage.name, 0) + 1
    return counts


def test_pipeline_recomputes_exactly_the_stages_whose_inputs_or_code_changed(tmp_path):
    """Four runs in fresh processes: the first computes every stage; after a helper edit
    only the stages using it (features, and model through it) recompute, and
    cache_explain names the helper; after the CSV is rewritten every stage reading it
    recomputes and cache_explain says the file changed; with no change nothing runs.
    Old code versions' entries are removed, so a stage folder keeps one entry per input."""
    code = tmp_path / "code"
    code.mkdir()
    (code / "helpers.py").write_text(HELPERS)
    (code / "stages.py").write_text(STAGES)
    csv = tmp_path / "sales.csv"
    csv.write_text(CSV)
    cache = tmp_path / "cache"
    env = {"TWAT_CACHE_DIR": str(cache)}
    script = textwrap.dedent(RUN.format(folder=str(code), csv=str(csv)))

    def run() -> dict[str, object]:
        out = run_python(script, env=env)
        return json.loads(out.strip().splitlines()[-1])

    first = run()
    assert sorted(first["ran"]) == ["features", "load", "model"]
    assert set(first["reasons"].values()) == {"new"}
    assert _entries(cache) == {"stages.load": 1, "stages.features": 1, "stages.model": 1}

    (code / "helpers.py").write_text(HELPERS.replace("SCALE = 1.0", "SCALE = 2.0"))
    second = run()
    assert sorted(second["ran"]) == ["features", "model"]
    assert second["reasons"] == {"load": "hit", "features": "code_changed", "model": "code_changed"}
    assert "helpers.SCALE" in second["details"]["features"]
    assert second["coef"][0] == pytest.approx(2 * first["coef"][0])
    assert _entries(cache) == {"stages.load": 1, "stages.features": 1, "stages.model": 1}

    csv.write_text(CSV + "w,1,9.0\n")
    third = run()
    assert sorted(third["ran"]) == ["features", "load", "model"]
    assert set(third["reasons"].values()) == {"file_changed"}
    assert str(csv) in third["details"]["load"]
    assert third["coef"] != second["coef"]
    # A new input state is a new call: its entry joins the old input's, one each.
    assert _entries(cache) == {"stages.load": 2, "stages.features": 2, "stages.model": 2}

    fourth = run()
    assert fourth["ran"] == []
    assert set(fourth["reasons"].values()) == {"hit"}
    assert fourth["coef"] == third["coef"]
