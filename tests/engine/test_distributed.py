"""torchrun with two CPU processes (gloo): the data is sharded, and only rank 0 writes files."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import torch

from ganzoo.engine.stream import BatchOrder, Cursor, _BatchPlan


def test_ranks_split_every_global_batch_without_overlap():
    order = BatchOrder(size=50, seed=3, mirror=True)
    plans = [iter(_BatchPlan(order, Cursor(), 8, rank, 2)) for rank in range(2)]
    whole = iter(_BatchPlan(order, Cursor(), 8, 0, 1))
    for _ in range(10):  # crosses epoch boundaries (50 is not a multiple of 8)
        shards = [next(plan) for plan in plans]
        assert sorted(shards[0] + shards[1]) == sorted(next(whole))
        assert not set(shards[0]) & set(shards[1])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_torchrun_two_processes(small_recipe, tmp_path):
    torchrun = os.path.join(os.path.dirname(sys.executable), "torchrun")
    result = subprocess.run(
        [torchrun, "--nproc_per_node", "2", "--master_port", str(free_port()), "-m", "ganzoo", "run",
         str(small_recipe), "--set", "train.kimg=0.256"],
        capture_output=True, text=True, timeout=600, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert result.returncode == 0, result.stderr[-3000:]
    out = tmp_path / "run"
    records = [json.loads(l) for l in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["kimg"] for r in records] == [0.128, 0.256]  # written once, by rank 0
    assert all(torch.isfinite(torch.tensor(r["G/nonsaturating"])) for r in records)
    assert len(list((out / "checkpoints").glob("*.safetensors"))) == 1
