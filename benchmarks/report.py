"""Turn a pytest-benchmark JSON into the markdown table of benchmarks/README.md.

    python -m pytest benchmarks --benchmark-enable --benchmark-json=bench.json
    python benchmarks/report.py bench.json

Each group pairs `ganzoo` with `reference`; the ratio is reference time / ganzoo time
(> 1: ganzoo is faster). Train-step rows also give img/s.
"""

from __future__ import annotations

import json
import sys
from collections import defaultdict


def main(path: str) -> None:
    data = json.load(open(path))
    groups: dict[str, dict[str, dict]] = defaultdict(dict)
    for bench in data["benchmarks"]:
        impl = "ganzoo" if "[ganzoo" in bench["name"] else "reference" if "[reference" in bench["name"] else None
        if impl is None:
            continue
        groups[bench["group"]][impl] = bench
    machine = data.get("machine_info", {})
    print(f"Machine: {machine.get('cpu', {}).get('brand_raw', machine.get('processor', '?'))}, "
          f"torch {data.get('commit_info', {}).get('torch', '')}".rstrip(", torch "))
    print()
    print("| benchmark | ganzoo (ms) | reference (ms) | speed-up | ganzoo img/s | reference img/s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for group in sorted(groups):
        pair = groups[group]
        if {"ganzoo", "reference"} - pair.keys():
            continue
        ours, ref = pair["ganzoo"]["stats"]["median"], pair["reference"]["stats"]["median"]
        ips = [pair[k].get("extra_info", {}).get("img_per_s") for k in ("ganzoo", "reference")]
        cells = [f"{v:,.0f}" if v else "" for v in ips]
        print(f"| {group} | {ours * 1e3:.2f} | {ref * 1e3:.2f} | {ref / ours:.2f}x | {cells[0]} | {cells[1]} |")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "bench.json")
