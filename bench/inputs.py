"""The benchmark's inputs: seeded score sets and trained models, cached under bench/data/.

Shared by every bench command (run, monitoring, profile, gx_cost), so they all measure the same
rows and the same model. Also the sizes' names and the shard layout, which follow from the input.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
ROW_GROUP_ROWS = 65_536  # params.yaml generate.row_group_rows
TRAIN_ROWS = 200_000
TRAIN_SEED, SCORE_SEED = 42, 43  # the score set is other rows from the same population
SINGLE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}

log = logging.getLogger("bench")


def parse_size(text: str) -> int:
    """'200k' -> 200_000, '1M' -> 1_000_000, '2500' -> 2500."""
    text = text.strip().lower().replace("_", "")
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    return int(float(text.rstrip("km")) * scale)


def size_label(rows: int) -> str:
    if rows % 1_000_000 == 0:
        return f"{rows // 1_000_000}M"
    if rows % 1_000 == 0:
        return f"{rows // 1_000}k"
    return str(rows)


# --- cached inputs -------------------------------------------------------------------------


def generator_tag() -> str:
    """8 hex of the demo generator's source: part of every cached file's name.

    The cache used to be keyed by size alone, so a change to the generator (the category shares
    fixed per population, so a night drawn like the training data does not drift) left stale
    files that the drift monitor then flagged. Keyed by the code, a cached file is always what
    the generator writes now.
    """
    import hashlib
    import inspect

    from pipelines.data import demo

    parts = (demo.make_frame, demo._population_shares, demo.write_dataset, demo._LabelWriter)
    text = "".join(inspect.getsource(obj) for obj in parts) + repr(demo.CATEGORIES)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def ensure_dataset(data_dir: Path, rows: int, labels: bool = False) -> Path:
    """The score set of `rows` rows (seeded, so identical on every machine), made once.

    With `labels`, its true labels too (`labels_path_for`), written in the same pass: the data
    file is byte-identical either way (the generator draws the label last), so a cached set
    without labels is rewritten with them. Stale files of another generator are removed.
    """
    from pipelines.data.demo import write_dataset

    stem = f"score-{size_label(rows)}-rg{ROW_GROUP_ROWS}"
    path = data_dir / f"{stem}-{generator_tag()}.parquet"
    if path.is_file() and (not labels or labels_path_for(path).is_file()):
        return path
    for stale in data_dir.glob(f"{stem}*.parquet"):
        stale.unlink()
    log.info("generating %s rows -> %s", f"{rows:,}", path)
    write_dataset(
        path,
        rows,
        SCORE_SEED,
        ROW_GROUP_ROWS,
        with_label=False,
        first_id=1,
        labels_path=labels_path_for(path) if labels else None,
    )
    return path


def labels_path_for(data: Path) -> Path:
    """Where the true labels of a generated score set are kept: beside it."""
    return data.with_name(data.name.removesuffix(".parquet") + ".labels.parquet")


def ensure_model(data_dir: Path, kind: str) -> Path:
    """The `kind` demo pipeline trained once on TRAIN_ROWS rows, with its drift baseline.

    Retrained if sklearn changed or the training set is another generator's (`generator_tag`);
    the baseline is written by training, or made by `batchscore baseline` if it is missing.
    """
    import sklearn

    from pipelines.config import load_config
    from pipelines.data.demo import write_dataset
    from pipelines.model.train import train_model

    model = data_dir / "models" / kind / "model.skops"
    card = model.with_name("model.card.json")
    stamp = model.with_name("bench-train-data.txt")
    train = data_dir / f"train-{size_label(TRAIN_ROWS)}-{generator_tag()}.parquet"
    fresh = stamp.is_file() and stamp.read_text().strip() == train.name
    if card.is_file() and model.is_file() and fresh and _card_version(card) == sklearn.__version__:
        _ensure_baseline(model, train)
        return model
    if not train.is_file():
        for stale in data_dir.glob(f"train-{size_label(TRAIN_ROWS)}*.parquet"):
            stale.unlink()
        write_dataset(train, TRAIN_ROWS, TRAIN_SEED, ROW_GROUP_ROWS, with_label=True)
    cfg = load_config(
        ROOT / "params.yaml",
        {
            "generate.train_path": str(train),
            "model.path": str(model),
            "train.model": kind,
        },
    )
    log.info("training %s on %s rows -> %s", kind, f"{TRAIN_ROWS:,}", model)
    model.with_suffix(".baseline.json").unlink(missing_ok=True)  # never the old model's baseline
    train_model(cfg)
    stamp.write_text(train.name + "\n")
    _ensure_baseline(model, train)
    return model


def _ensure_baseline(model: Path, train: Path) -> None:
    """`<model>.baseline.json` beside the model, so the scoring runs monitor drift."""
    from pipelines.cli import main

    if model.with_suffix(".baseline.json").is_file():
        return
    argv = ["baseline", "--params", str(ROOT / "params.yaml"), "--data", str(train)]
    if main([*argv, "--model", str(model)]):
        raise SystemExit(f"batchscore baseline failed for {model}")


def params_value(section: str, key: str) -> object:
    from pipelines.config import load_config

    return getattr(getattr(load_config(ROOT / "params.yaml"), section), key)


def _card_version(card: Path) -> str | None:
    return json.loads(card.read_text()).get("sklearn_version")


def shard_layout(rows: int, workers: int, max_groups: int = 8) -> int:
    """score.shard_rows for this input: whole row groups.

    The same 8 row groups (524,288 rows) for every input that has 16 or more, so each shard, and
    so each GX validation batch (a batch never spans shards), is the same size at 1M and at 10M:
    peak memory then compares across sizes. 1M rows make 2 shards, 5M 10 and 10M 20: an even
    number, so 2 workers finish together (5 shards of 1,048,576 rows would leave one worker idle
    for the last one: at most 5/3 = 1.67x). Smaller inputs get smaller shards, one per worker.
    """
    groups = -(-rows // ROW_GROUP_ROWS)
    if groups >= 2 * max_groups:
        return max_groups * ROW_GROUP_ROWS
    return max(1, groups // workers) * ROW_GROUP_ROWS
