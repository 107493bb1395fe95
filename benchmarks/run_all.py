"""`make bench`: run every benchmark in turn; each prints its figures and writes its JSON
under benchmarks/results/. Pass names to run a subset: `python benchmarks/run_all.py eval`."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
BENCHES = {
    "world": ["bench_world.py"],
    "missing_modality": ["bench_missing_modality.py"],
    "eval": ["bench_eval.py"],
    "encoder": ["bench_encoder.py"],
    "ingest": ["bench_ingest.py"],
    "index": ["bench_index.py"],
    "celery_ingest": ["bench_celery_ingest.py"],
}


def main(argv: list[str]) -> int:
    chosen = argv or list(BENCHES)
    unknown = [n for n in chosen if n not in BENCHES]
    if unknown:
        print(f"unknown benchmarks {unknown}; known: {list(BENCHES)}", file=sys.stderr)
        return 2
    failed = []
    for name in chosen:
        script, *args = BENCHES[name]
        print(f"\n=== {name} ===", flush=True)
        t0 = time.perf_counter()
        rc = subprocess.call([sys.executable, str(HERE / script), *args])
        print(f"=== {name}: exit {rc} in {time.perf_counter() - t0:.0f} s ===", flush=True)
        if rc != 0:
            failed.append(name)
    if failed:
        print(f"failed: {failed}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
