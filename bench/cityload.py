"""What the city-scale benchmarks share: wrk over a list of paths, uvicorn's worker processes,
and a process's memory."""

from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path


def wrk_paths(base: str, paths: list[str], seconds: int, connections: int = 16) -> dict:
    """wrk (2 threads) cycling through `paths` for `seconds`: requests/s, p50, p99, max (ms), errors."""
    with tempfile.TemporaryDirectory() as tmp:
        script = Path(tmp) / "paths.lua"
        script.write_text("local q = {\n" + ",\n".join(f'"{p}"' for p in paths) + "\n}\nlocal i = 0\n"
                          "request = function()\n  i = i % #q + 1\n  return wrk.format('GET', q[i])\nend\n")
        out = subprocess.run(["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script),
                              base], capture_output=True, text=True, check=True).stdout

    def ms(pattern: str) -> float:
        value, unit = re.search(pattern, out).groups()
        return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]

    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
            "p50": ms(r"50%\s+([\d.]+)(us|ms|s)"), "p99": ms(r"99%\s+([\d.]+)(us|ms|s)"),
            "max": ms(r"Latency\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)"),
            "errors": int(errors.group(1)) if errors else 0}


def workers(supervisor: int) -> list[int]:
    """uvicorn's worker processes: the children of its supervisor that multiprocessing spawned."""
    out = subprocess.run(["pgrep", "-P", str(supervisor)], capture_output=True, text=True).stdout.split()
    return [int(p) for p in out if b"spawn_main" in Path(f"/proc/{p}/cmdline").read_bytes()]


def memory(pid: int) -> tuple[float, float, float]:
    """RSS, PSS and private memory (shared with no other process) of a process, MB."""
    text = Path(f"/proc/{pid}/smaps_rollup").read_text()

    def field(name: str) -> float:
        return int(re.search(rf"^{name}:\s+(\d+)", text, re.M).group(1)) / 1024

    return field("Rss"), field("Pss"), field("Private_Clean") + field("Private_Dirty")
