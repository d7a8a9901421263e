"""`[run] malloc_cache`: the demo's CPU train step with glibc's heap kept (ganzoo's default on
CPU) against glibc's defaults (reference), at 32 and 64 px.

The demo's step at those sizes: batch 8, NHWC, bf16 where the CPU has it natively
(recipes/progan_toyfaces.toml). The setting is process-wide and one-way, so each case runs its
trainer in a worker process of its own, and a round times one step there over a pipe (a line
each way: well under 1% of a step). The 64 px case is the one malloc_cache was measured on
(README, Speed).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

WORKER = """
import sys
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from steps import DEMO_WIDTH, make_trainer, step_functions
res, out, malloc_cache = int(sys.argv[2]), Path(sys.argv[3]), sys.argv[4]
trainer = make_trainer(res, out, device="cpu", width=DEMO_WIDTH, batch=8, precision="auto",
                       channels_last=True, malloc_cache="auto" if malloc_cache == "auto" else False)
engine, _ = step_functions(trainer, res, 8)
engine()
print("ready", flush=True)
for _ in sys.stdin:
    engine()
    print("done", flush=True)
"""


@pytest.mark.parametrize("res", [32, 64])
@pytest.mark.parametrize("impl", ["ganzoo", "reference"])
def test_train_step_glibc_heap(benchmark, tmp_path, res, impl):
    benchmark.group = f"progan train step {res}px, batch 8 NHWC: glibc heap kept / default"
    mode = "auto" if impl == "ganzoo" else "false"
    worker = subprocess.Popen([sys.executable, "-c", WORKER, str(Path(__file__).parent), str(res),
                               str(tmp_path / "run"), mode], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert worker.stdout.readline().strip() == "ready"

        def step():
            worker.stdin.write("step\n")
            worker.stdin.flush()
            assert worker.stdout.readline().strip() == "done"
        benchmark.pedantic(step, rounds=20, iterations=1, warmup_rounds=3)
        if benchmark.stats is not None:  # None under --benchmark-disable
            benchmark.extra_info["img_per_s"] = 8 / benchmark.stats.stats.mean
    finally:
        worker.stdin.close()
        assert worker.wait(timeout=120) == 0
