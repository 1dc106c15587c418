"""`import_skops`: the cached import builds exactly the trusted list the real import builds, and
costs a process neither all of scikit-learn nor pytest."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

PROBE = """
import json, sys
from pipelines.model.skops_import import cache_path, import_skops
sio = import_skops()
from skops.io import _trusted_types as t
print(json.dumps({"names": t.SKLEARN_ESTIMATOR_TYPE_NAMES, "pytest": "pytest" in sys.modules,
                  "cache": str(cache_path()), "load": callable(sio.load)}))
"""


def _probe(cache: Path) -> dict:
    env = {"BATCHSCORE_CACHE": str(cache), "PATH": "/usr/bin:/bin", "HOME": str(cache)}
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_cached_import_builds_the_real_trusted_list(tmp_path: Path) -> None:
    first = _probe(tmp_path)  # no cache yet: the real import, which stores the names
    assert Path(first["cache"]).is_file()
    assert first["pytest"] is True  # what the real import costs (all_estimators)
    second = _probe(tmp_path)
    assert second["names"] == first["names"] and len(second["names"]) > 100
    assert second["pytest"] is False and second["load"] is True


@pytest.mark.parametrize("content", ["not json", "[]", '{"a": 1}', "[1, 2]"])
def test_a_bad_cache_file_means_the_real_import(tmp_path: Path, content: str) -> None:
    real = _probe(tmp_path)
    Path(real["cache"]).write_text(content)
    again = _probe(tmp_path)
    assert again["names"] == real["names"] and again["pytest"] is True
    assert json.loads(Path(real["cache"]).read_text()) == real["names"]  # rewritten


def test_a_cache_naming_anything_outside_sklearn_is_ignored(tmp_path: Path) -> None:
    real = _probe(tmp_path)
    Path(real["cache"]).write_text(json.dumps([*real["names"], "evil.module.Payload"]))
    again = _probe(tmp_path)
    assert again["names"] == real["names"] and again["pytest"] is True  # the real import
    assert "evil.module.Payload" not in json.loads(Path(real["cache"]).read_text())


def test_a_model_loads_through_the_cached_import(tmp_path: Path) -> None:
    """The demo's hgb pipeline (binning, loss and link internals) loads with the cached list."""
    code = (
        "import numpy as np, pandas as pd\n"
        "from sklearn.ensemble import HistGradientBoostingClassifier\n"
        "from pipelines.model.artifact import Feature, save_model, load_model\n"
        "from pathlib import Path\n"
        "x = pd.DataFrame({'a': np.arange(200.0), 'b': np.arange(200.0) % 7})\n"
        "y = (x.a > 100).astype(int)\n"
        f"p = Path({str(tmp_path)!r}) / 'm.skops'\n"
        "save_model(HistGradientBoostingClassifier(max_iter=5).fit(x, y), p, name='m',\n"
        "           features=[Feature('a', 'numeric'), Feature('b', 'numeric')],\n"
        "           training={}, metrics={}, params={})\n"
    )
    load = (
        "from pathlib import Path\n"
        "from pipelines.model.artifact import load_model\n"
        f"p = Path({str(tmp_path)!r}) / 'm.skops'\n"
        "m = load_model(p, pinned_sha256=None, card_path=p.with_name('m.card.json'))\n"
        "import sys; print('pytest' in sys.modules, type(m.estimator).__name__)\n"
    )
    env = {"BATCHSCORE_CACHE": str(tmp_path), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    for script in (code, load, load):
        out = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120
        )
        assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["False", "HistGradientBoostingClassifier"]
