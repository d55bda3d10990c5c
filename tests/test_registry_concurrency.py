"""Several processes, and several threads, register into one embedded registry at once."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from test_registry import predicted_label, write_model_dir

from jupyter_serve.registry import EmbeddedRegistry

PROCESSES = 4
VERSIONS_EACH = 3

# Each child warms up, reports "ready", waits for "go" on stdin (so all start registering together),
# then registers VERSIONS_EACH versions of two models and prints the numbers it was given.
CHILD = """
import json, sys
from pathlib import Path
from jupyter_serve.registry import EmbeddedRegistry
root, source, worker, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
registry = EmbeddedRegistry(Path(root))
registry.list_models()  # the imports and the schema, before the race starts
import sklearn.dummy  # what loading the artifact needs, imported before the race too
print("ready", flush=True)
assert sys.stdin.readline().strip() == "go"
got = []
for _ in range(count):
    spam = registry.register_model(source, "spam", alias="w" + worker)
    got.append((spam, registry.register_model(source, "ham")))
print(json.dumps(got), flush=True)
"""


def test_concurrent_processes_get_every_version_once(tmp_path: Path) -> None:
    root = tmp_path / "shared-registry"
    sources = [write_model_dir(tmp_path / f"w{i}", label=f"w{i}") for i in range(PROCESSES)]
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", CHILD, str(root), str(src), str(i), str(VERSIONS_EACH)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i, src in enumerate(sources)
    ]
    try:
        for process in workers:
            assert process.stdout is not None
            assert process.stdout.readline().strip() == "ready"
        for process in workers:
            assert process.stdin is not None
            process.stdin.write("go\n")
            process.stdin.flush()
        reported: dict[int, list[list[int]]] = {}
        for i, process in enumerate(workers):
            out, err = process.communicate(timeout=240)
            assert process.returncode == 0, err
            reported[i] = json.loads(out)
    finally:
        for process in workers:
            if process.poll() is None:
                process.kill()

    total = PROCESSES * VERSIONS_EACH
    label_of_version: dict[int, str] = {}
    for worker, pairs in reported.items():
        for spam_version, _ in pairs:
            label_of_version[spam_version] = f"w{worker}"
    assert sorted(label_of_version) == list(range(1, total + 1))
    assert sorted(ham for pairs in reported.values() for _, ham in pairs) == list(
        range(1, total + 1)
    )

    registry = EmbeddedRegistry(root)
    assert registry.list_models() == ["ham", "spam"]
    versions = registry.list_versions("spam")
    assert [v.version for v in versions] == list(range(1, total + 1))
    for version in versions:
        # Each number holds the artifact of the process that was given it, complete.
        assert predicted_label(version.path) == label_of_version[version.version]
    for worker, pairs in reported.items():
        last_spam_version = pairs[-1][0]
        assert registry.resolve(f"models:/spam@w{worker}").version == last_spam_version
    assert [v.version for v in registry.list_versions("ham")] == list(range(1, total + 1))
    assert list((root / ".staging").iterdir()) == []


def test_threads_of_one_kernel_share_a_registry_object(tmp_path: Path) -> None:
    registry = EmbeddedRegistry(tmp_path / "registry")
    source = write_model_dir(tmp_path / "src", label="t")
    threads = 4
    with ThreadPoolExecutor(max_workers=threads) as pool:
        futures = [
            pool.submit(lambda: [registry.register_model(source, "spam") for _ in range(3)])
            for _ in range(threads)
        ]
        numbers = sorted(n for future in futures for n in future.result(timeout=120))
    assert numbers == list(range(1, threads * 3 + 1))
    assert [v.version for v in registry.list_versions("spam")] == numbers


def test_threads_opening_a_new_registry_at_the_same_moment_all_succeed(tmp_path: Path) -> None:
    # Switching a new database to WAL raced: about one attempt in 70 saw "database is locked".
    threads, attempts = 8, 40
    failures: list[Exception] = []
    for attempt in range(attempts):
        root = tmp_path / f"registry-{attempt}"
        start = threading.Barrier(threads)

        def first_use(root: Path = root, start: threading.Barrier = start) -> None:
            registry = EmbeddedRegistry(root)
            start.wait()
            try:
                registry.list_models()
            except Exception as error:
                failures.append(error)

        workers = [threading.Thread(target=first_use) for _ in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join(timeout=60)

    assert failures == []
