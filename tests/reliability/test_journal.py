"""The answer journal under the four ways a run loses its footing: a reader holding the
warehouse for 60 s, SIGTERM, a full disk, and (in test_crash_resume.py) SIGKILL.

Each drill counts every request the fake answered (its request log, across processes) and
checks the promise: ``decision.llm_calls`` equals the requests the API answered, exactly,
and a request is sent again only when no response to it was received.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from sandbox.config import SandboxError
from sandbox.decision import journal, prepare_features, run_llm_inference
from sandbox.decision.prompt import opaque_user_id
from tests.decision.conftest import DAY, create_mart
from tests.reliability.harness import Requests, rows, sandbox_cli, scalar, start_sandbox_cli

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="POSIX only")

ARGS = ("infer", "--date", str(DAY), "--workers", "4", "--no-progress")
HOLD_S = 60


def ledger_pairs() -> Counter:
    """(opaque user, model) -> requests in ``decision.llm_calls`` (attempts included)."""
    return Counter(
        {
            (opaque_user_id(user), model): int(n)
            for user, model, n in rows(
                "select user_id, model, sum(attempts) from decision.llm_calls "
                "where purpose <> 'estimate' group by all"
            )
        }
    )


def wait_for(predicate, timeout: float = 120, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


READER = """
import sys, time, duckdb, pathlib
path, hold, marker = sys.argv[1], float(sys.argv[2]), pathlib.Path(sys.argv[3])
while True:
    try:
        con = duckdb.connect(path, read_only=True)
        break
    except duckdb.IOException:
        time.sleep(0.01)
con.execute("select count(*) from decision.inference_inputs").fetchone()
marker.write_text("holding")
time.sleep(hold)
con.close()
marker.write_text("released")
"""


@pytest.mark.slow  # holds the warehouse for 60 s
def test_a_reader_holding_the_warehouse_for_60_s_loses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    users = create_mart(120)
    log = Requests(tmp_path / "requests.jsonl")
    monkeypatch.setenv("SANDBOX_MOCK_REQUEST_LOG", str(log.path))
    # 250 ms a request on 4 workers: the run sends for about 7 s after its 10th request, longer
    # than the reader takes to start even on a busy machine
    monkeypatch.setenv("SANDBOX_MOCK_LATENCY_MS", "250")
    infer = start_sandbox_cli(*ARGS)
    marker = tmp_path / "reader"
    try:
        wait_for(lambda: len(log.messages()) >= 10, what="the run to start sending")
        reader = subprocess.Popen(
            [sys.executable, "-c", READER, os.environ["SANDBOX_WAREHOUSE"], str(HOLD_S), marker]
        )
        wait_for(lambda: marker.exists(), what="the reader to open the warehouse")
        assert infer.poll() is None, "the run ended before the reader held the warehouse"
        assert reader.wait(timeout=HOLD_S + 60) == 0
        still_running = infer.poll() is None  # it had to wait for the reader
        out, err = infer.communicate(timeout=300)
    finally:
        if infer.poll() is None:
            infer.kill()
    assert infer.returncode == 0, out + err
    assert still_running, "the run never met the reader"
    assert "status ok" in out and "Traceback" not in err
    assert scalar("select count(*) from decision.recommendations_staging") == len(users)
    answered = log.pairs()
    assert max(answered.values()) == 1  # no request was sent twice
    assert ledger_pairs() == answered  # every answer of the 60 s window is in the ledger
    print(f"reader held {HOLD_S} s: {sum(answered.values())} requests, ledger equal, none twice")


@pytest.mark.slow  # a pipeline in a child, then a resume
def test_sigterm_keeps_the_answers_in_flight_and_exits_143(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    users = create_mart(120)
    log = Requests(tmp_path / "requests.jsonl")
    monkeypatch.setenv("SANDBOX_MOCK_REQUEST_LOG", str(log.path))
    monkeypatch.setenv("SANDBOX_MOCK_LATENCY_MS", "100")
    infer = start_sandbox_cli(*ARGS)
    try:
        wait_for(lambda: len(log.messages()) >= 20, what="the run to start sending")
        infer.send_signal(signal.SIGTERM)
        out, err = infer.communicate(timeout=120)
    finally:
        if infer.poll() is None:
            infer.kill()
    assert infer.returncode == 143, out + err
    assert "status interrupted" in out and "Traceback" not in err
    assert err.startswith("sandbox infer: interrupted by SIGTERM: sent no new request and kept")
    answered = log.pairs()
    staged = scalar("select count(*) from decision.recommendations_staging")
    assert 0 < staged < len(users)
    assert ledger_pairs() == answered  # the requests in flight were kept, not thrown away
    before = len(log.entries())
    again = sandbox_cli(*ARGS)
    assert again.returncode == 0, again.stdout + again.stderr
    after = log.pairs(log.entries()[before:])
    assert not set(after) & set(answered), "an answered request was sent again"
    assert ledger_pairs() == log.pairs()
    print(f"SIGTERM: {staged} rows kept, {sum(answered.values())} requests, none sent again")


@pytest.fixture
def full_disk(tmp_path: Path):
    """A 64 KiB tmpfs for the journal (root only), or ``None`` where mounting is not allowed."""
    mount = tmp_path / "tiny"
    mount.mkdir()
    made = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mount)], capture_output=True
    )
    if made.returncode != 0:
        yield None
        return
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


@pytest.mark.parametrize("how", ["tmpfs", "enospc"])
def test_a_full_disk_stops_sending_and_loses_no_answer(
    how: str, full_disk, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    users = create_mart(120)
    prepare_features(DAY)
    log = Requests(tmp_path / "requests.jsonl")
    monkeypatch.setenv("SANDBOX_MOCK_REQUEST_LOG", str(log.path))
    if how == "tmpfs":
        if full_disk is None:
            pytest.skip("mounting a tmpfs needs root")
        journal.journal_dir().symlink_to(full_disk, target_is_directory=True)
    else:  # the journal's writes fail once 30 entries are in
        real_write, written = os.write, []

        def write(fd, data):
            if not data.startswith(b'{"calls"'):  # not a journal entry
                return real_write(fd, data)
            if len(written) >= 30:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            written.append(fd)
            return real_write(fd, data)

        monkeypatch.setattr(os, "write", write)
    with pytest.raises(SandboxError, match="No space left on device") as err:
        run_llm_inference(DAY, workers=4, progress=False)
    assert "free disk space" in str(err.value) and "nothing is sent twice" in str(err.value)
    answered = log.pairs()
    assert 0 < sum(answered.values()) < 2 * len(users)  # it stopped sending
    assert ledger_pairs() == answered  # answers that missed the journal were still committed
    if how == "tmpfs":
        journal.journal_dir().unlink()  # disk space is back
    else:
        monkeypatch.setattr(os, "write", real_write)
    before = len(log.entries())
    summary = run_llm_inference(DAY, workers=4, progress=False)
    assert summary.status == "ok"
    assert scalar("select count(*) from decision.recommendations_staging") == len(users)
    assert not set(log.pairs(log.entries()[before:])) & set(answered)
    assert ledger_pairs() == log.pairs()
    print(f"full disk ({how}): stopped after {sum(answered.values())} requests, ledger equal")


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")  # the fork is the point
def test_ids_are_uuid4_and_a_forked_child_does_not_repeat_its_parents() -> None:
    import uuid

    from sandbox.decision.journal import new_id

    ids = {new_id() for _ in range(10_000)}
    assert len(ids) == 10_000
    assert all(uuid.UUID(hex=i).version == 4 for i in list(ids)[:100])
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its next ids, then exit without pytest's clean-up
        os.write(write, "".join(new_id() for _ in range(3)).encode())
        os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read) as pipe:
        child = pipe.read()
    parent = "".join(new_id() for _ in range(3))
    assert len(child) == 96 and child != parent
