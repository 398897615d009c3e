"""Render the JSON of ``bench_forward.py`` / ``bench_train.py`` / ``bench_data.py`` as Markdown tables.

python benchmarks/render_tables.py benchmarks/results/forward_tiny_cpu.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def forward_tables(data: dict) -> str:
    rows = [r for r in data["results"] if "time_ms" in r]
    out = []
    for h, w in sorted({(r["height"], r["width"]) for r in rows}):
        sub = [r for r in rows if (r["height"], r["width"]) == (h, w)]
        frames = sorted({r["frames"] for r in sub})
        modules = list(dict.fromkeys(r["module"] for r in sub))
        by = {(r["module"], r["frames"]): r for r in sub}
        for key, title, fmt in (
            ("time_ms", "median forward time, ms", "{:.1f}"),
            ("time_ms_per_frame", "median time per frame, ms", "{:.2f}"),
            ("peak_mib", "extra peak memory, MiB", "{:.1f}"),
        ):
            body = [[m] + [fmt.format(by[(m, s)][key]) if (m, s) in by else "-" for s in frames] for m in modules]
            out.append(f"**{h}×{w} — {title}**\n\n" + _table(["module"] + [f"S={s}" for s in frames], body))
    return "\n\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("json", help="a bench_forward JSON file")
    args = parser.parse_args(argv)
    print(forward_tables(json.loads(Path(args.json).read_text())))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
