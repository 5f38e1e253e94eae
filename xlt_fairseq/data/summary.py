# This source code is licensed under the MIT license found in the
# LICENSE file in the root directory of this source tree.
"""The preparation summary: one row per corpus and split (examples read,
dropped and why, subset, kept, written), as ``prepare_summary.md`` and ``.json``
next to the data."""

import json
import os
from typing import List, Optional, Sequence

from .staging import os_errors
from .textio import write_text_atomic

SUMMARY_MD = "prepare_summary.md"
SUMMARY_JSON = "prepare_summary.json"


def summary_rows(metas: Sequence[dict]) -> List[dict]:
    """One row per corpus and split: examples read, dropped (and why), kept, written."""
    rows = []
    for meta in metas:
        for split, s in meta["splits"].items():
            sub = s.get("subsample")
            rows.append(
                {
                    "task": meta["task"],
                    "corpus": meta["key"],
                    "split": split,
                    "format": s.get("format", meta.get("format")),
                    "read": s.get("read"),
                    "dropped": dict(s.get("dropped") or {}),
                    "subset": f"{sub['kept']}/{sub['from']}" if sub else "",
                    "tier": (sub or {}).get("tier") or "",
                    "kept": s.get("sentences", s["examples"]) if meta["task"] == "ner" else s["examples"],
                    "examples": s["examples"],
                    "windows": s.get("split_into_windows", 0) + s.get("split_long_lines", 0),
                    "truncated": s.get("truncated", 0),
                    "repaired_i_start": s.get("repaired_i_start", 0),
                    "warnings": list(s.get("warnings", [])),
                }
            )
        if meta.get("scenario", {}).get("zero_shot"):
            rows.append(
                {
                    "task": meta["task"],
                    "corpus": meta["key"],
                    "split": "train",
                    "format": meta.get("format"),
                    "read": 0,
                    "dropped": {},
                    "subset": "zero-shot: left out",
                    "tier": "",
                    "kept": 0,
                    "examples": 0,
                    "windows": 0,
                    "truncated": 0,
                    "repaired_i_start": 0,
                    "warnings": [],
                }
            )
    return rows


def format_summary(rows: Sequence[dict]) -> str:
    """The summary as a markdown table."""
    head = [
        "task",
        "corpus",
        "split",
        "format",
        "read",
        "dropped (why)",
        "subset",
        "kept",
        "examples",
        "windows",
        "truncated",
        "repaired I-",
    ]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for r in rows:
        dropped = ", ".join(f"{n} {why}" for why, n in sorted(r["dropped"].items())) or "0"
        subset = " ".join(x for x in (r["subset"], f"({r['tier']})" if r["tier"] else "") if x)
        cells = [
            r["task"],
            r["corpus"],
            r["split"],
            str(r["format"]),
            str(r["read"]),
            dropped,
            subset,
            str(r["kept"]),
            str(r["examples"]),
            str(r["windows"]),
            str(r["truncated"]),
            str(r["repaired_i_start"]),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    warnings = [w for r in rows for w in r["warnings"]]
    if warnings:
        lines += ["", "Warnings:", ""] + [f"- {w}" for w in warnings]
    return "\n".join(lines) + "\n"


def write_summary(destdir, metas: Sequence[dict], extra: Optional[dict] = None):
    """Writes both summary files, each atomically."""
    rows = summary_rows(metas)
    text_json = json.dumps({**(extra or {}), "rows": rows}, indent=2, ensure_ascii=False) + "\n"
    for name, text in ((SUMMARY_JSON, text_json), (SUMMARY_MD, format_summary(rows))):
        path = os.path.join(destdir, name)
        with os_errors(path):
            write_text_atomic(path, text)
