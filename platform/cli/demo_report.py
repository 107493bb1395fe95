"""Printing and HTML output of the demo: the metrics table and a self-contained contact sheet."""

from __future__ import annotations

import base64
import html
from pathlib import Path

from aioreid.platform.services import Services


def format_rows(rows: dict[str, dict[str, float]], title: str) -> str:
    lines = [title, f"{'setting':<18}{'R1':>7}{'mAP':>7}{'queries':>9}"]
    for name, r in rows.items():
        lines.append(f"{name:<18}{r['R1']:>7.1f}{r['mAP']:>7.1f}{int(r['queries']):>9}")
    return "\n".join(lines)


def _data_uri(data: bytes) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(data).decode()


def contact_sheet(
    svc: Services, examples: dict[str, list], labels: dict[int, int | None], path: Path
) -> Path:
    """One row per example query: the query (image and/or text), then its top hits with
    score and camera; green border = the right person, red = someone else."""
    out = [
        "<!doctype html><meta charset='utf-8'><title>aio-reid demo</title>",
        "<style>body{font-family:sans-serif;background:#111;color:#eee}"
        ".row{display:flex;gap:8px;align-items:flex-start;margin:10px 0}"
        ".q{width:180px;font-size:12px}.h{font-size:11px;text-align:center}"
        ".h img{height:128px;border:4px solid #a33}.h.ok img{border-color:#3a3}"
        ".q img{height:128px;border:4px solid #888}</style>",
        "<h1>aio-reid — top results per query (held-out identities)</h1>",
    ]
    for setting, rows in examples.items():
        out.append(f"<h2>{html.escape(setting)}</h2>")
        for q, hits, ranked in rows:
            cell = [f"<div class='q'><b>person {q.pid}</b><br>"]
            for part, value in q.shown.items():
                if isinstance(value, bytes):
                    cell.append(f"<img src='{_data_uri(value)}' title='{part}'>")
                else:
                    cell.append(f"<p>“{html.escape(str(value))}”</p>")
            cell.append("</div>")
            out.append("<div class='row'>" + "".join(cell))
            for hit, ok in zip(hits, ranked, strict=False):
                crop = svc.store.get_bytes(hit.object_key)
                who = labels.get(hit.sighting_id)
                out.append(
                    f"<div class='h{' ok' if ok else ''}'><img src='{_data_uri(crop)}'><br>"
                    f"{hit.score:.3f} · {html.escape(hit.camera or '?')}<br>"
                    f"person {who if who is not None else '?'} · {hit.best_part}</div>"
                )
            out.append("</div>")
    path.write_text("\n".join(out), encoding="utf-8")
    return path
