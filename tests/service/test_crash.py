"""Durability (#16, buyer's checklist): SIGKILL the server in the middle of ~100 /assess requests a second; every
warning the server acknowledged (answered 200 with its id) is in the store afterwards and the audit chain
verifies, read-only. Its own server and its own SQLite store, so the session's shared server is not touched."""
from __future__ import annotations

import contextlib
import signal
import threading
import time
import uuid

import httpx
import psutil
import pytest
import sqlalchemy as sa

pytestmark = [pytest.mark.service, pytest.mark.slow]

COMPLAINT = "客服说我风险承受能力太低，直接挂电话，泄露了我的用户隐私，我要投诉到12315，再也不买了"
RATE, SENDERS = 100, 8


def _running_under(bento_home: str) -> list[int]:
    """Processes still running with this server's BENTOML_HOME (a worker the kill missed would be one)."""
    pids = []
    for process in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            if process.environ().get("BENTOML_HOME") == bento_home:
                pids.append(process.pid)
    return pids


def test_sigkill_mid_load_loses_no_acknowledged_warning(champions, company, server, tmp_path):
    from serving.auth import KeyStore
    from serving.store import anchors_for, audit_keys, verify_store

    db = f"sqlite:///{tmp_path / 'crash.db'}"
    key = KeyStore(db).create("crash-hr", "hr_system")
    bento_home = str(tmp_path / "bento")
    proc, url = server.start(tmp_path / "serve.log", LOSSGUARD_WARNINGS_DB=db, BENTOML_HOME=bento_home)
    acknowledged: list[int] = []
    lock, stop = threading.Lock(), threading.Event()

    def send(worker: int) -> None:
        interval = SENDERS / RATE
        with httpx.Client(base_url=url, headers={"X-API-Key": key}, timeout=10) as client:
            while not stop.is_set():
                began = time.monotonic()
                body = {"event": {"kind": "complaint", "text": COMPLAINT, "channel": "complaint_hotline",
                                  "complaint_id": f"crash-{worker}-{uuid.uuid4().hex}", "severity": 5}}
                try:
                    response = client.post("/assess", json=body)
                except httpx.HTTPError:
                    return  # the server is gone
                if response.status_code == 200 and response.json()["warning"] is not None:
                    with lock:
                        acknowledged.append(response.json()["warning"]["id"])
                time.sleep(max(0.0, interval - (time.monotonic() - began)))

    senders = [threading.Thread(target=send, args=(w,)) for w in range(SENDERS)]
    try:
        for thread in senders:
            thread.start()
        deadline = time.monotonic() + 120
        while len(acknowledged) < 150 and time.monotonic() < deadline:
            time.sleep(0.1)
        server.stop(proc, signal.SIGKILL)  # mid-load: the senders are still sending
    finally:
        stop.set()
        for thread in senders:
            thread.join()
    assert len(acknowledged) >= 150, f"only {len(acknowledged)} warnings acknowledged before the kill"
    assert _running_under(bento_home) == [], "a worker outlived the killed server"
    engine = sa.create_engine(db)
    with engine.connect() as conn:
        stored = {row[0] for row in conn.exec_driver_sql("SELECT id FROM warnings")}
    engine.dispose()
    assert set(acknowledged) <= stored, f"lost: {sorted(set(acknowledged) - stored)[:10]}"
    report = verify_store(db, audit_keys(create=False), anchors_for(db))
    assert report.ok, report.problem
