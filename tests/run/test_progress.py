"""Progress as a newcomer sees it: the stage, rows, rows/s and ETA, redrawn on a terminal at least
once a second; plain log lines elsewhere; nothing when off; a clean end on errors and SIGTERM.

The unit tests drive `Progress` with a fake terminal (a rich Console forced to be one, writing to
memory) and a real clock; the end-to-end tests run `batchscore score` under a pseudo-terminal and
with pipes.
"""

from __future__ import annotations

import fcntl
import io
import logging
import os
import pty
import queue
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from rich.console import Console
from rich.live import _RefreshThread

from pipelines.data.demo import write_dataset
from pipelines.progress import Progress, _sigterm_deferred
from pipelines.run.pool import deliver, route_to_queue
from pipelines.termination import Terminated, install

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")
FRAME = "| elapsed"  # in the header of every frame the display draws
PROGRESS_LINE = re.compile(r"scored [\d,]+/([\d,]+) rows \(\s*[\d.]+%\), [\d,]+ rows/s, ETA\s+\d+s")


class TimedIO(io.StringIO):
    """The fake terminal's file: remembers when each write came."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[tuple[float, str]] = []

    def write(self, text: str) -> int:
        self.writes.append((time.perf_counter(), text))
        return super().write(text)


def fake_terminal(width: int = 120) -> tuple[Console, TimedIO]:
    out = TimedIO()
    return Console(file=out, force_terminal=True, width=width), out


def plain(raw: str) -> str:
    """What a reader sees, roughly: no escape codes, no carriage returns."""
    return ANSI.sub("", raw).replace("\r", "")


def display_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if isinstance(t, _RefreshThread)]


def test_bar_redraws_at_least_once_a_second_and_names_the_stage_and_rows() -> None:
    console, out = fake_terminal()
    progress = Progress(mode="auto", console=console, stages=("plan", "score", "publish"))
    assert progress.mode == "bar"  # auto on a terminal
    began = time.perf_counter()
    progress.stage("plan")
    time.sleep(0.4)
    progress.stage("score", total=25_000, shards=[10_000, 10_000, 5_000])
    scoring = time.perf_counter()
    for i in range(50):  # ~2.5 s of updates, from another thread like the pool's reader
        feeder = threading.Thread(target=progress.update, args=(500,), kwargs={"shard": i // 20})
        feeder.start()
        feeder.join()
        time.sleep(0.05)
    scored = time.perf_counter()
    progress.stage("publish")
    time.sleep(0.3)
    progress.close()
    ended = time.perf_counter()

    frames = [t for t, text in out.writes if FRAME in text]
    gaps = [b - a for a, b in zip([began, *frames], [*frames, ended], strict=True)]
    assert max(gaps) <= 1.0, gaps
    assert sum(scoring <= t <= scored for t in frames) >= 3  # >= 1/s over the 2.5 s of rows
    assert progress.refreshes >= len(frames) >= 6
    text = plain(out.getvalue())
    for stage in ("plan", "score", "publish"):
        assert f"stage: {stage} {FRAME}" in text
    assert re.search(r"plan 0\.\ds ✓ → score", text)  # the trail: stages done, with their times
    counts = [
        int(m.group(1).replace(",", ""))
        for t, frame in out.writes
        if t < scored
        for m in [re.search(r" (\d[\d,]*)/25,000 rows \(\s*[\d.]+%\), [\d,]+ rows/s, ETA", frame)]
        if m
    ]
    assert len(set(counts)) >= 3 and min(counts) < 25_000  # the count moves while rows come
    assert "shard 1/3" in text and "10,000/10,000 rows" in text and "shards: 3 done" in text
    last = text.rstrip("\n").rsplit("\n", 1)[-1]
    assert re.fullmatch(
        r"done in [\d.]+s: plan 0\.\ds → score [\d.]+s → publish 0\.\ds; "
        r"scored 25,000/25,000 rows, [\d,]+ rows/s",
        last,
    ), last
    assert out.getvalue().rfind("\x1b[?25h") > out.getvalue().rfind("\x1b[?25l")  # cursor back
    assert not display_threads()


def test_log_lines_print_whole_above_the_display() -> None:
    console, out = fake_terminal()
    handler = logging.StreamHandler(out)
    logger = logging.getLogger("batchscore.test_progress")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        with Progress(100, mode="bar", console=console) as progress:
            progress.stage("score")
            time.sleep(0.3)
            assert handler.stream is not out  # routed through the display while it runs
            logger.warning("a log line while the display runs")
            progress.update(40)
            progress.echo("a worker's line")
            time.sleep(0.3)
        assert handler.stream is out  # and back afterwards
    finally:
        logger.removeHandler(handler)
        logger.propagate = True
    raw = out.getvalue()
    # each line starts on a cleared line and ends whole; the display is drawn again below it
    for line in ("a log line while the display runs", "a worker's line"):
        assert re.search(r"\x1b\[2K" + re.escape(line) + r"\n", raw), line
        assert FRAME in raw.split(line + "\n", 1)[1]


def test_paused_has_no_display_thread_for_the_fork() -> None:
    console, out = fake_terminal()
    progress = Progress(10, mode="bar", console=console)
    progress.stage("score")
    assert len(display_threads()) == 1
    with progress.paused():
        progress.update(5)  # a worker's rows while paused: no restart
        assert not display_threads()
    assert len(display_threads()) == 1
    progress.close()
    assert not display_threads()
    assert "5/10 rows" in plain(out.getvalue())


def test_log_mode_off_a_terminal_prints_plain_lines_with_rows_and_rate(
    caplog: pytest.LogCaptureFixture,
) -> None:
    stream = io.StringIO()  # not a tty: Airflow task logs, CI, `dvc repro` piped
    caplog.set_level(logging.INFO, logger="batchscore.progress")
    progress = Progress(mode="auto", stream=stream, log_every=0.5)
    assert progress.mode == "log"
    progress.stage("plan")
    progress.stage("score", total=10_000, shards=[6_000, 4_000])
    deadline = time.perf_counter() + 1.6
    while time.perf_counter() < deadline:
        progress.update(100)
        time.sleep(0.02)
    done = progress.done
    progress.stage("publish")
    progress.close()
    records = [r for r in caplog.records if r.name == "batchscore.progress"]
    lines = [r.getMessage() for r in records]
    assert lines[:2] == ["stage: plan", "stage: score (10,000 rows, 2 shards)"]
    assert lines[-1] == "stage: publish"
    rows = [r for r in records if "rows/s" in r.getMessage()]
    assert len(rows) >= 4  # at once, every 0.5 s, and the last count before the next stage
    assert all(PROGRESS_LINE.fullmatch(r.getMessage()) for r in rows), lines
    assert rows[-1].getMessage().startswith(f"scored {done:,}/10,000 rows")
    spaced = [b.created - a.created for a, b in zip(rows[:-2], rows[1:-1], strict=True)]
    assert min(spaced) >= 0.45, spaced  # one line every `log_every`, not one per update
    assert "\x1b" not in "".join(lines) and stream.getvalue() == ""


def test_log_mode_a_run_stopped_in_its_plan_logs_no_row_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="batchscore.progress")
    with pytest.raises(ValueError), Progress(mode="log") as progress:
        progress.stage("plan")
        raise ValueError("bad input")
    assert [r.getMessage() for r in caplog.records] == ["stage: plan"]


def test_off_prints_nothing(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    console, out = fake_terminal()
    caplog.set_level(logging.DEBUG)
    with Progress(100, mode="off", console=console) as progress:
        progress.stage("plan")
        progress.stage("score", total=100, shards=[50, 50])
        progress.update(60, shard=0)
        progress.echo("nothing")
    assert out.getvalue() == ""
    assert not [r for r in caplog.records if r.name == "batchscore.progress"]
    assert capsys.readouterr() == ("", "")
    assert not display_threads()


def test_an_error_ends_the_display_cleanly_and_says_where() -> None:
    console, out = fake_terminal()
    stderr = sys.stderr
    with pytest.raises(Terminated), Progress(1_000, mode="bar", console=console) as progress:
        progress.stage("plan")
        progress.stage("score")
        progress.update(400)
        time.sleep(0.3)
        raise Terminated("SIGTERM")
    assert sys.stderr is stderr and not display_threads()
    raw = out.getvalue()
    assert raw.rfind("\x1b[?25h") > raw.rfind("\x1b[?25l")
    last = plain(raw).rstrip("\n").rsplit("\n", 1)[-1]
    assert re.fullmatch(r"stopped in score after 0\.\ds: .*; scored 400/1,000 rows, .*", last)


def test_a_sigterm_while_the_display_ends_is_delivered_after() -> None:
    previous = signal.getsignal(signal.SIGTERM)
    install()
    reached = []
    try:
        with pytest.raises(Terminated), _sigterm_deferred():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.1)
            reached.append("end of the block")
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert reached == ["end of the block"]


def test_worker_output_reaches_the_display_over_the_queue() -> None:
    messages: queue.Queue[object] = queue.Queue()
    root = logging.getLogger()
    saved_stderr = sys.stderr
    handler = logging.StreamHandler(sys.stderr)
    root.addHandler(handler)
    try:
        route_to_queue(messages)  # what a pool worker does when the parent draws a display
        logging.getLogger("batchscore.worker").warning("from a worker")
        print("raw stderr from a worker", file=sys.stderr)
    finally:
        root.removeHandler(handler)
        sys.stderr = saved_stderr
    got = [messages.get_nowait() for _ in range(messages.qsize())]
    assert got == [("text", "from a worker"), ("text", "raw stderr from a worker")]
    console, out = fake_terminal()
    with Progress(10, mode="bar", console=console) as progress:
        progress.stage("score", total=10, shards=[4, 6])
        for message in [*got, (1, 6), (0, 4), 3]:  # 3: rows of no known shard
            deliver(progress, message)
        assert (progress.done, progress.shard_done) == (13, [4, 6])
    raw = out.getvalue()
    assert "\x1b[2Kfrom a worker\n" in raw and "\x1b[2Kraw stderr from a worker\n" in raw


# --- end to end: `batchscore score` under a pseudo-terminal, and with pipes -------------------


def score_cmd(params_file: Path, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "pipelines.cli", "score", "--params", str(params_file),
        "--set", "score.progress=auto", *extra,
    ]  # fmt: skip


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _RICH_ENV}
    return {**env, "TERM": "xterm-256color"}


_RICH_ENV = ("COLUMNS", "LINES", "FORCE_COLOR", "NO_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE")


def run_in_pty(
    cmd: list[str],
    cwd: Path,
    on_output: Callable[[str, subprocess.Popen[bytes]], None] | None = None,
) -> tuple[int, str]:
    """Run `cmd` with a 120x40 pseudo-terminal as stdin, stdout and stderr; all it printed."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    proc = subprocess.Popen(cmd, stdin=slave, stdout=slave, stderr=slave, cwd=cwd, env=child_env())
    os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + 180
    try:
        while time.monotonic() < deadline:
            if not select.select([master], [], [], 0.5)[0]:
                continue
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not data:
                break
            chunks.append(data)
            if on_output:
                on_output(b"".join(chunks).decode(errors="replace"), proc)
    finally:
        os.close(master)
        if proc.poll() is None and time.monotonic() >= deadline:
            proc.kill()
    return proc.wait(timeout=30), b"".join(chunks).decode(errors="replace")


def test_score_under_a_terminal_shows_stages_shards_and_refreshes(
    params_file: Path, tmp_path: Path
) -> None:
    # 3 shards of ~2,000 rows on 2 worker processes: the pool's rows arrive over the queue
    cmd = score_cmd(params_file, "--workers", "2", "--set", "score.shard_rows=2000")
    code, raw = run_in_pty(cmd, tmp_path)
    text = plain(raw)
    assert code == 0, text[-3000:]
    for stage in ("plan", "score", "publish"):
        assert f"stage: {stage} {FRAME}" in text
    assert raw.count(FRAME) >= 2  # refreshes
    assert "shard 1/3" in text and "shard 3/3" in text
    assert re.search(r"done in [\d.]+s: plan [\d.]+s → score [\d.]+s → publish [\d.]+s; "
                     r"scored 5,003/5,003 rows, [\d,]+ rows/s", text)  # fmt: skip
    assert "run cli-run: 5,003 rows in, " in text  # the summary on stdout, after the display
    # log lines printed while the display ran (the parent's, and the workers' sent over the
    # queue) come out whole: each on a line the display cleared, with no escape codes in it
    logged = [
        line.rstrip("\r").rsplit("\x1b[2K", 1)[-1]
        for line in raw.split("\n")
        if re.search(r"\d\d:\d\d:\d\d (INFO|WARNING) ", line)
    ]
    assert all(
        re.fullmatch(r"\d\d:\d\d:\d\d (INFO|WARNING)\s+[\w.]+: [^\x1b\r]+", line) for line in logged
    ), logged
    assert any(re.search(r"run\.finalize: run cli-run: 5,003 rows in, .* \(\w+\)$", line)
               for line in logged), logged  # fmt: skip
    assert raw.rfind("\x1b[?25h") > raw.rfind("\x1b[?25l")


def test_score_without_a_terminal_logs_plain_progress_lines(
    params_file: Path, tmp_path: Path
) -> None:
    proc = subprocess.run(
        score_cmd(params_file), cwd=tmp_path, env=child_env(), capture_output=True, timeout=180
    )
    err = proc.stderr.decode()
    assert proc.returncode == 0, err[-3000:]
    assert "\x1b" not in err and "\x1b" not in proc.stdout.decode()
    for stage in ("stage: plan", "stage: score (5,003 rows", "stage: publish"):
        assert stage in err
    lines = [line for line in err.splitlines() if "batchscore.progress: scored" in line]
    assert lines and all(PROGRESS_LINE.search(line) for line in lines), err[-3000:]
    assert "scored 5,003/5,003 rows (100.0%)" in lines[-1]


def test_sigterm_under_a_terminal_ends_the_display_and_the_run_cleanly(
    params_file: Path, tmp_path: Path
) -> None:
    big = write_dataset(tmp_path / "big.parquet", 400_000, 5, 10_000, with_label=False)
    sent = []

    def stop_while_scoring(text: str, proc: subprocess.Popen[bytes]) -> None:
        if not sent and "stage: score" in plain(text):
            sent.append(time.monotonic())
            proc.send_signal(signal.SIGTERM)

    cmd = score_cmd(params_file, "--input", str(big), "--set", "score.chunk_size=5000")
    code, raw = run_in_pty(cmd, tmp_path, stop_while_scoring)
    text = plain(raw)
    assert sent, text[-3000:]
    assert code == 143, text[-3000:]
    assert re.search(r"stopped in score after [\d.]+s: plan [\d.]+s → score [\d.]+s", text)
    assert text.rstrip().endswith("batchscore: stopped by SIGTERM; nothing was published")
    assert raw.rfind("\x1b[?25h") > raw.rfind("\x1b[?25l")
