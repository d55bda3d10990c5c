"""The benchmark harness's pure parts: reading wrk, percentiles, the corpus, the report.

No speed is measured or asserted here; `make bench` does the measuring.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.corpus import generate_corpus
from benchmarks.kernel_bench import KernelResults, LatencySample
from benchmarks.load_bench import round_order, server_commands
from benchmarks.recording_cost import recording_cost
from benchmarks.report import NOT_AVAILABLE, render_markdown, target_rows
from benchmarks.results import ECHO, MLFLOW, OURS, OURS_QUIET, BenchResults, ServerResult
from benchmarks.servers import RunningServer, process_tree_cpu_seconds
from benchmarks.stats import percentile
from benchmarks.wrk import RepeatedRuns, WrkRun, parse_wrk_output

WRK_STDOUT = """Running 5s test @ http://127.0.0.1:40000/invocations
  1 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    20.10ms    3.02ms  61.00ms   90.00%
  15920 requests in 5.00s, 2.34MB read
Requests/sec:   3184.00
Transfer/sec:    478.00KB
WRK_JSON {"requests": 15920, "duration_us": 5000000, "bytes": 2453000, "non_2xx": 0, \
"connect_errors": 0, "read_errors": 0, "write_errors": 0, "timeouts": 0, \
"latency_us": {"mean": 20100.5, "p50": 19800, "p90": 23000, "p99": 41000, "max": 61000}}
"""


def test_wrk_result_line_gives_throughput_and_latency_in_ms() -> None:
    run = parse_wrk_output(WRK_STDOUT)
    assert run.requests_per_second == pytest.approx(3184.0)
    assert (run.p50_ms, run.p90_ms, run.p99_ms) == (19.8, 23.0, 41.0)
    assert run.failed == 0


def test_wrk_error_answers_and_socket_errors_count_as_failed() -> None:
    failing = WRK_STDOUT.replace('"non_2xx": 0', '"non_2xx": 7').replace(
        '"timeouts": 0', '"timeouts": 2'
    )
    assert parse_wrk_output(failing).failed == 9


def test_wrk_output_without_the_result_line_is_an_error_naming_the_script() -> None:
    with pytest.raises(ValueError, match=r"post\.lua"):
        parse_wrk_output("unable to connect to 127.0.0.1:1 Connection refused\n")


def test_repeated_runs_quote_the_median_and_the_spread() -> None:
    runs = RepeatedRuns(
        connections=1,
        runs=tuple(
            WrkRun(rps * 5, 5.0, 0, p50, p50, p50) for rps, p50 in ((90, 3), (100, 2), (110, 9))
        ),
    )
    assert runs.median_rps == pytest.approx(100.0)
    assert runs.median_p50_ms == 3
    assert runs.rps_spread_percent == pytest.approx(20.0)


def test_percentile_interpolates_between_ranks_and_refuses_an_empty_sample() -> None:
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == pytest.approx(2.5)
    assert percentile(list(map(float, range(101))), 99) == pytest.approx(99.0)
    assert percentile([7.0], 99) == 7.0
    with pytest.raises(ValueError, match="empty"):
        percentile([], 50)


def test_corpus_is_reproducible_and_holds_both_classes() -> None:
    corpus = generate_corpus(300, seed=5)
    assert corpus == generate_corpus(300, seed=5)
    assert corpus != generate_corpus(300, seed=6)
    labels = {label for _, label in corpus}
    assert labels == {"spam", "ham"}
    assert all(text.strip() for text, _ in corpus)


def _runs(connections: int, rps: float, p50_ms: float, failed: int = 0) -> RepeatedRuns:
    run = WrkRun(int(rps * 10), 10.0, failed, p50_ms, p50_ms * 2, p50_ms * 3)
    return RepeatedRuns(connections=connections, runs=(run,))


def _results(ours_rps_64: float, ours_p50_1: float, *, ours_failed: int = 0) -> BenchResults:
    servers = {
        MLFLOW: ServerResult(
            MLFLOW,
            cold_start_s=10.0,
            mismatches=0,
            load={1: _runs(1, 170, 5.7), 64: _runs(64, 170, 350)},
        ),
        OURS: ServerResult(
            OURS,
            cold_start_s=0.8,
            mismatches=0,
            load={1: _runs(1, 900, ours_p50_1), 64: _runs(64, ours_rps_64, 20, ours_failed)},
        ),
        ECHO: ServerResult(
            ECHO, cold_start_s=0.3, load={1: _runs(1, 2000, 0.4), 64: _runs(64, 3000, 15)}
        ),
    }
    kernel = KernelResults(serve_in_memory_s=0.25, busy=LatencySample(500, 3.0, 25.0))
    kernel.unavailable["workers"] = "UsageError: unrecognized arguments: --workers 2"
    return BenchResults(
        date="2026-01-01 00:00 UTC",
        machine={"cores (nproc)": "2"},
        servers=servers,
        kernel=kernel,
        check_emails=200,
        duration_s=10.0,
        repeats=1,
        connections=(1, 64),
    )


def test_targets_are_judged_against_the_same_runs_figures() -> None:
    throughput, latency, _, in_memory_start, *_ = target_rows(_results(2500, 2.0))
    assert (throughput.ours, throughput.mlflow, throughput.met) == (2500, 170, True)
    assert latency.met is True  # 2.0 ms <= 0.4 x 5.7 ms
    assert (in_memory_start.ours, in_memory_start.met) == (250, True)

    slower = target_rows(_results(2300, 2.4))
    assert slower[0].met is False  # 2300 < 0.8 x 3000 echo
    assert slower[1].met is False  # 2.4 ms > 0.4 x 5.7 ms


def test_throughput_with_failed_requests_counts_as_not_available() -> None:
    row = target_rows(_results(5000, 2.0, ours_failed=3))[0]
    assert row.ours is None
    assert row.met is None


def test_report_shows_missing_pieces_as_not_available_with_their_reason() -> None:
    text = render_markdown(_results(2500, 2.0))
    assert "| **met** |" in text and "| not met |" in text  # busy-cell p99 25 ms > 20 ms
    assert f"| {NOT_AVAILABLE} |" in text  # -w 2 throughput was not measured
    assert "unrecognized arguments: --workers 2" in text
    assert "identical to MLflow's on all 200 emails" in text


def _rounds(connections: int, *rps: float) -> RepeatedRuns:
    return RepeatedRuns(connections, tuple(WrkRun(int(r * 5), 5.0, 0, 10, 20, 30) for r in rps))


def _with_recording_off(results: BenchResults, on: RepeatedRuns, off: RepeatedRuns) -> None:
    results.servers[OURS].load[64] = on
    results.servers[OURS_QUIET] = ServerResult(
        OURS_QUIET, load={1: _runs(1, 900, 2.0), 64: off}, cpu_ms_per_request={64: [0.2, 0.1]}
    )


def test_recording_cost_compares_each_rounds_two_runs_not_the_medians() -> None:
    results = _results(2500, 2.0)
    # Rounds' ratios 0.96, 0.975 and 1.0: median 0.975; the medians alone (1,000 vs 1,000)
    # would hide the cost.
    _with_recording_off(results, _rounds(64, 960, 1950, 1000), _rounds(64, 1000, 2000, 1000))
    cost = recording_cost(results, 64)
    assert cost is not None
    assert cost.round_ratios == pytest.approx((0.96, 0.975, 1.0))
    assert cost.cost_percent == pytest.approx(2.5)
    assert (cost.on_rps, cost.off_rps, cost.off_cpu_ms) == (1000, 1000, pytest.approx(0.15))
    row = target_rows(results)[-1]
    assert row.measurement.startswith("Access log + capture cost at 64 connections")
    assert (row.ours, row.met) == (pytest.approx(2.5), True)
    text = render_markdown(results)
    assert "| 64 | 3 | 1,000 | 1,000 | 0.975 (0.960-1.000) | 2.5 % | - / 0.15 ms |" in text


def test_recording_cost_counts_the_extra_pairs_with_the_rounds() -> None:
    results = _results(2500, 2.0)
    # The rounds alone: ratios 0.9, 0.9, 1.0, a 10 % cost; four extra pairs at 0.99 make the
    # median of all seven pairs 0.99.
    _with_recording_off(results, _rounds(64, 900, 900, 1000), _rounds(64, 1000, 1000, 1000))
    results.servers[OURS].paired_runs = list(_rounds(64, 990, 990, 990, 990).runs)
    results.servers[OURS_QUIET].paired_runs = list(_rounds(64, 1000, 1000, 1000, 1000).runs)
    cost = recording_cost(results, 64)
    assert cost is not None
    assert len(cost.round_ratios) == 7
    assert cost.cost_percent == pytest.approx(1.0)
    assert (cost.on_rps, cost.off_rps) == (990, 1000)


def test_recording_cost_over_five_percent_is_not_met() -> None:
    results = _results(2500, 2.0)
    _with_recording_off(results, _rounds(64, 900, 880, 910), _rounds(64, 1000, 1000, 1000))
    row = target_rows(results)[-1]
    assert (row.ours, row.met) == (pytest.approx(10.0), False)
    assert "900 req/s by default, 1,000 with `--no-access-log --capture 0`" in row.measurement


def test_recording_cost_without_the_recording_off_server_is_not_available() -> None:
    results = _results(2500, 2.0)
    assert recording_cost(results, 64) is None
    row = target_rows(results)[-1]
    assert (row.ours, row.met) == (None, None)
    assert "| 64 | not available |" in render_markdown(results)


def test_recording_off_variant_is_the_default_command_with_both_switched_off(
    tmp_path: Path,
) -> None:
    commands = server_commands(tmp_path / "python", tmp_path / "model", 5000)
    assert commands[OURS_QUIET] == [*commands[OURS], "--no-access-log", "--capture", "0"]


def test_every_other_round_drives_the_servers_in_reverse_order() -> None:
    live = {key: RunningServer(key, 1, 0.1, 1) for key in ("a", "b", "c")}
    assert [key for key, _ in round_order(live, 1)] == ["a", "b", "c"]
    assert [key for key, _ in round_order(live, 2)] == ["c", "b", "a"]
    assert [key for key, _ in round_order(live, 3)] == ["a", "b", "c"]


CPU_BURNER = """
import sys, time
while time.process_time() < 0.3:
    pass
print("burnt", flush=True)
sys.stdin.read()
"""


def test_process_tree_cpu_counts_the_live_descendants() -> None:
    burner = subprocess.Popen(
        [sys.executable, "-c", CPU_BURNER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert burner.stdout is not None and burner.stdout.readline().strip() == "burnt"
        child_cpu = process_tree_cpu_seconds(burner.pid)
        assert child_cpu >= 0.25  # it burnt 0.3 s of CPU by construction; /proc counts in ticks
        assert process_tree_cpu_seconds(os.getpid()) >= child_cpu
    finally:
        burner.communicate(input="", timeout=30)
