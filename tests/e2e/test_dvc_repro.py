"""`dvc repro` on a laptop: a real git + DVC repo made in a temporary folder.

The stages call the `batchscore` CLI; DVC reruns exactly what changed, and the data set is pinned
by the git revision through dvc.lock.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.paths import ROOT

BIN = Path(sys.executable).parent
GIT_ENV = {
    "GIT_AUTHOR_NAME": "t",
    "GIT_AUTHOR_EMAIL": "t@example.com",
    "GIT_COMMITTER_NAME": "t",
    "GIT_COMMITTER_EMAIL": "t@example.com",
}


def sh(cwd: Path, *cmd: str, ok: bool = True, env: dict[str, str] | None = None) -> str:
    full_env = {**os.environ, **GIT_ENV, "PATH": f"{BIN}:{os.environ['PATH']}", **(env or {})}
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env=full_env, timeout=600)
    if ok:
        assert done.returncode == 0, f"{cmd}: {done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "project"
    repo.mkdir()
    for name in ("dvc.yaml", "params.yaml", ".gitignore"):
        shutil.copy(ROOT / name, repo / name)
    shutil.copytree(ROOT / "validation", repo / "validation")
    shutil.copytree(
        ROOT / "pipelines", repo / "pipelines", ignore=shutil.ignore_patterns("__pycache__")
    )
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["generate"].update(train_rows=3_000, score_rows=4_000, row_group_rows=1_000)
    params["train"]["max_iter"] = 15
    params["run"]["key"] = "2026-11-23"
    params["score"]["progress"] = "log"
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    sh(repo, "git", "init", "-q")
    sh(repo, "dvc", "init", "-q")
    shutil.copy(ROOT / ".dvcignore", repo / ".dvcignore")  # byte code is not a dependency
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-qm", "init")
    return repo


def test_dvc_repro_runs_the_pipeline_and_reruns_only_what_changed(repo: Path) -> None:
    out = sh(repo, "dvc", "repro")
    for stage in ("generate", "train", "validate", "score"):
        assert f"Running stage '{stage}'" in out
    manifest = json.loads((repo / "reports" / "last_run.json").read_text())
    assert manifest["counts"] == {"rows_in": 4000, "rows_scored": 4000, "rows_quarantined": 0}
    published = list((repo / "out" / "bucket").glob("*/2026-11-23/manifest.json"))
    assert len(published) == 1
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    data_md5 = {o["path"]: o["md5"] for o in lock["stages"]["generate"]["outs"]}
    assert set(data_md5) == {
        "data/train.parquet",
        "data/score.parquet",
        "data/score_labels.parquet",
    }
    assert {o["path"] for o in lock["stages"]["train"]["outs"]} >= {"models/model.baseline.json"}
    sh(repo, "git", "add", "-A")
    sh(repo, "git", "commit", "-qm", "pin data")  # this revision now pins the data's md5

    assert _changed_stages(repo) == set()  # score is always run: see dvc.yaml
    _only_the_stages_that_read_a_change_rerun(repo)

    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["score"]["chunk_size"] = 333
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    status = sh(repo, "dvc", "status")
    assert "score:" in status and "generate:" not in status and "train:" not in status
    out = sh(repo, "dvc", "repro")
    assert "Running stage 'score'" in out and "Running stage 'train'" not in out
    assert "(identical)" in out or "already published" in out  # same output: nothing republished

    params["generate"]["seed"] = 99  # new data for the same run key: refused, then overwritten
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = sh(repo, "dvc", "repro", ok=False)
    assert "already published from other inputs" in out
    sh(repo, "dvc", "repro", env={"BATCHSCORE__RUN__OVERWRITE": "true"})
    new_lock = yaml.safe_load((repo / "dvc.lock").read_text())
    new_md5 = {o["path"]: o["md5"] for o in new_lock["stages"]["generate"]["outs"]}
    assert new_md5["data/score.parquet"] != data_md5["data/score.parquet"]


def _changed_stages(repo: Path) -> set[str]:
    """Stages `dvc status` would rerun for a change (score, always run, only when it is one)."""
    out = sh(repo, "dvc", "status", "--json")
    status = json.loads(out[out.index("{") :]) if "{" in out else {}
    return {stage for stage, why in status.items() if why != ["always changed"]}


def _only_the_stages_that_read_a_change_rerun(repo: Path) -> None:
    """Each stage lists the params keys and the code it reads, and no more (dvc.yaml)."""

    original = (repo / "params.yaml").read_text()
    params = yaml.safe_load(original)
    params["score"].update(workers=2, progress="off")  # speed and display: no output changes
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert _changed_stages(repo) == set()
    params["run"]["dry_run"] = True
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    assert _changed_stages(repo) == {"score"}
    (repo / "params.yaml").write_text(original)

    code = repo / "pipelines" / "run" / "shard.py"
    before = code.read_text()
    code.write_text(before + "\n# a change to the scoring code\n")
    assert _changed_stages(repo) == {"validate", "score"}
    code.write_text(before)
    demo = repo / "pipelines" / "data" / "demo.py"
    kept = demo.read_text()
    demo.write_text(kept + "\n# a change to the demo data\n")
    assert _changed_stages(repo) == {"generate"}  # train and the rest follow once generate reruns
    demo.write_text(kept)
    (repo / "pipelines" / "run" / "__pycache__").mkdir(exist_ok=True)
    (repo / "pipelines" / "run" / "__pycache__" / "shard.cpython-311.pyc").write_bytes(b"x")
    assert _changed_stages(repo) == set()
