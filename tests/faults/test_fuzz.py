"""Schemathesis against the OpenAPI document of the running app (real uvicorn over a copy of
the sample district with incidents and a stored plan): for every operation, examples from
the schema's coverage phase plus a bounded number of generated ones. Zero server errors
(5xx), and every answer is documented: its status, content type, headers and body shape.

Bounded for CI: a fixed seed and FUZZ_EXAMPLES (default 8) generated cases per operation;
`FUZZ_EXAMPLES=200 pytest tests/faults/test_fuzz.py` digs deeper.
"""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from geo.db import units
from geo.db.incidents import insert_generated
from geo.incidents import sample as incident_sample
from geo.usecases import plans
from tests.conftest import ROOT, launch_server, stop_server

CHECKS = ",".join([
    "not_a_server_error",
    "status_code_conformance",
    "response_schema_conformance",
    "content_type_conformance",
    "response_headers_conformance",
])


@pytest.fixture(scope="module")
def fuzz_target(databases, sample_template, tmp_path_factory):
    """The app over its own copy of the sample, with incidents and a draft plan to find."""
    url = databases.url(databases.create(template=sample_template))
    with psycopg.connect(url, autocommit=True) as conn:
        locator = units.locator(conn)
        end = datetime.now(UTC)
        with conn.transaction():
            insert_generated(conn, locator, incident_sample.generate(locator, 60, end - timedelta(days=3), end))
        community = conn.execute("SELECT unit_id FROM unit_version WHERE valid_to IS NULL AND level = 'community' "
                                 "ORDER BY households DESC LIMIT 1").fetchone()[0]
        plans.draw_split(conn, community, "grid")
    log = tmp_path_factory.mktemp("fuzz") / "server.log"
    proc, base = launch_server(url, log=log)
    yield base, log
    stop_server(proc)


def test_schemathesis_finds_no_server_error_and_no_undocumented_answer(fuzz_target):
    base, log = fuzz_target
    st = Path(sys.executable).with_name("st")
    run = subprocess.run(
        [str(st), "run", f"{base}/openapi.json", "--checks", CHECKS,
         "--phases", "examples,coverage,fuzzing", "--max-examples", os.environ.get("FUZZ_EXAMPLES", "8"),
         "--seed", "20261125", "--generation-deterministic", "--workers", "1", "--request-timeout", "60",
         "--no-color"],
        capture_output=True, text=True, timeout=1200, cwd=ROOT,
    )
    report = run.stdout[-20000:] + run.stderr[-4000:]
    server_log = log.read_text(errors="replace")
    assert run.returncode == 0, f"{report}\n--- server log ---\n{server_log[-8000:]}"
    assert "Traceback" not in server_log, server_log[-8000:]
    # it really exercised the API, not an empty document
    tested = next(line for line in run.stdout.splitlines() if line.strip().startswith("Tested:"))
    assert int(tested.split()[-1]) >= 40, report
