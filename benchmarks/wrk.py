"""Drive a server with wrk (Debian's package) and read its numbers.

wrk posts the payload through ``post.lua``, whose ``done()`` prints one ``WRK_JSON`` line; that
line, not wrk's human-formatted summary, is what this module parses.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
from dataclasses import dataclass
from pathlib import Path

from benchmarks.outcome import MeasurementUnavailable

LUA_SCRIPT = Path(__file__).with_name("post.lua")
RESULT_MARKER = "WRK_JSON "


@dataclass(frozen=True)
class WrkRun:
    """One wrk run: counts and latency percentiles in milliseconds."""

    requests: int
    duration_s: float
    failed: int
    p50_ms: float
    p90_ms: float
    p99_ms: float

    @property
    def requests_per_second(self) -> float:
        return self.requests / self.duration_s if self.duration_s > 0 else 0.0


@dataclass(frozen=True)
class RepeatedRuns:
    """Several wrk runs of the same case; medians are what the report quotes."""

    connections: int
    runs: tuple[WrkRun, ...]

    @property
    def median_rps(self) -> float:
        return statistics.median(run.requests_per_second for run in self.runs)

    @property
    def median_p50_ms(self) -> float:
        return statistics.median(run.p50_ms for run in self.runs)

    @property
    def median_p99_ms(self) -> float:
        return statistics.median(run.p99_ms for run in self.runs)

    @property
    def failed(self) -> int:
        return sum(run.failed for run in self.runs)

    @property
    def rps_spread_percent(self) -> float:
        """(max - min) / median of requests/s over the runs, in percent: the machine's noise."""
        values = [run.requests_per_second for run in self.runs]
        median = statistics.median(values)
        return 100.0 * (max(values) - min(values)) / median if median > 0 else 0.0


def parse_wrk_output(stdout: str) -> WrkRun:
    """Read the ``WRK_JSON`` line that ``post.lua`` prints; ValueError when it is missing.

    Every response that is not a success (wrk's status errors) and every socket error or
    timeout counts as ``failed``: a fast wrong answer must not pass for throughput.
    """
    for line in stdout.splitlines():
        if line.startswith(RESULT_MARKER):
            fields = json.loads(line[len(RESULT_MARKER) :])
            latency = fields["latency_us"]
            failed = sum(
                int(fields[key])
                for key in ("non_2xx", "connect_errors", "read_errors", "write_errors", "timeouts")
            )
            return WrkRun(
                requests=int(fields["requests"]),
                duration_s=int(fields["duration_us"]) / 1e6,
                failed=failed,
                p50_ms=latency["p50"] / 1000.0,
                p90_ms=latency["p90"] / 1000.0,
                p99_ms=latency["p99"] / 1000.0,
            )
    raise ValueError(
        f"wrk printed no {RESULT_MARKER.strip()} line (expected from {LUA_SCRIPT.name}'s done()); "
        f"its output was:\n{stdout[-2000:]}"
    )


def run_wrk(url: str, body_file: Path, *, connections: int, duration_s: float) -> WrkRun:
    """Run wrk once against ``url`` (one thread, ``connections`` keep-alive connections).

    One wrk thread: on a 2-core machine the load generator shares the cores with the server
    under test, and one thread is enough to saturate any Python server.
    """
    wrk = shutil.which("wrk")
    if wrk is None:
        raise MeasurementUnavailable(
            "wrk is not installed (`apt-get install wrk`; make bench does)"
        )
    command = [
        wrk,
        "-t1",
        f"-c{connections}",
        f"-d{max(1, round(duration_s))}s",
        "--timeout",
        "10s",
        "-s",
        str(LUA_SCRIPT),
        url,
    ]
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=duration_s + 60,
            env={**os.environ, "WRK_BODY_FILE": str(body_file)},
            check=False,
        )
    except subprocess.TimeoutExpired as error:
        raise MeasurementUnavailable(f"wrk did not finish within {error.timeout:.0f} s") from error
    if done.returncode != 0:
        raise MeasurementUnavailable(f"wrk failed (exit {done.returncode}): {done.stderr[-500:]}")
    try:
        return parse_wrk_output(done.stdout)
    except ValueError as error:
        raise MeasurementUnavailable(str(error)) from error
