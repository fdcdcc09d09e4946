"""Run schemathesis (`st run`) over /openapi.json of a live server and read its JSON report.

Used by tests/hardening/test_fuzz.py (bounded, in `make test`) and bench/fuzz.py (`make fuzz`).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

# What must hold for every response: no 5xx, and the status code, content type and body
# as the document says.
CHECKS = (
    "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,"
    "positive_data_acceptance,allow_header_conformance"
)
# Which operations may refuse a well-formed request for a rule the document cannot state.
CONFIG = Path(__file__).resolve().parent / "hardening" / "schemathesis.toml"
SEED = 1


def run(
    base_url: str, api_key: str, report: Path, *, max_time: int, examples: int, workers: int = 1
) -> dict[str, Any]:
    st = Path(sys.executable).parent / "st"
    cmd = [
        str(st),
        "--config-file",
        str(CONFIG),
        "run",
        f"{base_url}/openapi.json",
        "-H",
        f"Authorization: Bearer {api_key}",
        # Revoking the fuzzer's own key would end the run early.
        "--exclude-path-regex",
        "api-keys/",
        "--checks",
        CHECKS,
        "--mode",
        "all",  # positive and negative data
        "--seed",
        str(SEED),
        "--max-examples",
        str(examples),
        "--max-time",
        str(max_time),
        "--workers",
        str(workers),
        "--no-shrink",
        "--report-json-path",
        str(report),
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=max_time + 120)
    data = dict(json.loads(report.read_text()))
    data["_output"] = out.stdout[-4000:]
    return data


def figures(data: dict[str, Any]) -> dict[str, Any]:
    failures = {f["code"]: f["count"] for f in data.get("failures", [])}
    return {
        "operations": data["operations"]["tested"],
        "test_cases": data["test_cases"]["generated"],
        "failures": failures,
        "failing_operations": {f["code"]: f.get("operations", []) for f in data.get("failures", [])},
        "seconds": round(float(data.get("running_time", 0)), 1),
    }
