"""The page a resident opens from the link they got with their report (回访/民评): what was
reported and how it stands, and, once it is resolved, three buttons and a comment box. Built for
a phone: no map, no script, a plain form that posts back to the same address."""

from __future__ import annotations

import html
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from geo.incidents.lifecycle import RATINGS, STATE_ZH

_STYLE = """
body{font:16px/1.5 system-ui,"Noto Sans CJK SC",sans-serif;margin:0;background:#f4f5f7;color:#222}
main{max-width:28rem;margin:0 auto;padding:1rem}
h1{font-size:1.25rem;margin:.2rem 0 1rem}
.card{background:#fff;border-radius:.6rem;padding:1rem;margin-bottom:1rem;box-shadow:0 1px 3px #0002}
dl{display:grid;grid-template-columns:auto 1fr;gap:.3rem .8rem;margin:0}dt{color:#666}dd{margin:0}
textarea{width:100%;box-sizing:border-box;min-height:5rem;font:inherit;padding:.5rem}
button{display:block;width:100%;font:inherit;font-size:1.1rem;padding:.8rem;margin:.5rem 0;border:0;
border-radius:.5rem;color:#fff}
.satisfied{background:#2e7d32}.basically_satisfied{background:#558b2f}.unsatisfied{background:#c62828}
.done{color:#2e7d32;font-weight:600}.problem{color:#c62828}
"""


def render(incident: dict[str, Any], zone: str, message: str | None = None, problem: bool = False) -> str:
    """The page for one incident as its reporter sees it (and a line saying what just happened)."""
    tz = ZoneInfo(zone)

    def when(value: datetime | None) -> str:
        return "" if value is None else value.astimezone(tz).strftime("%Y-%m-%d %H:%M")

    esc = html.escape
    place = incident.get("grid") or incident.get("community") or incident.get("queue_street") or {}
    rows = [("事项", f"{incident['category_zh']}"), ("上报时间", when(incident["reported_at"])),
            ("状态", STATE_ZH.get(incident["state"], incident["state"])), ("网格", place.get("name", "")),
            ("描述", incident["description"] or "")]
    resolved = [e for e in incident["events"] if e["to"] == "resolved"]
    if resolved:
        rows.append(("处置结果", f"{when(resolved[-1]['at'])} {resolved[-1]['note'] or ''}".strip()))
    evaluation = incident.get("evaluation")
    if evaluation and evaluation["rating"] in RATINGS:
        rows.append(("您的评价", RATINGS[evaluation["rating"]] + (f"：{evaluation['comment']}"
                                                              if evaluation.get("comment") else "")))
    details = "".join(f"<dt>{esc(k)}</dt><dd>{esc(str(v))}</dd>" for k, v in rows)
    if incident["state"] == "resolved":
        buttons = "".join(f'<button type="submit" name="rating" value="{k}" class="{k}">{esc(v)}</button>'
                          for k, v in RATINGS.items())
        form = ('<form method="post" class="card"><p>问题已处理，请您评价处置结果：</p>'
                '<textarea name="comment" maxlength="5000" placeholder="意见和建议（选填）"></textarea>'
                f"{buttons}</form>")
    else:
        form = ('<p class="card">处理完成后，您可以在此页面评价处置结果。</p>' if incident["state"] not in
                ("closed", "rejected", "duplicate") else "")
    said = f'<p class="card {"problem" if problem else "done"}">{esc(message)}</p>' if message else ""
    return (f'<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>事件回访 #{incident['id']}</title><style>{_STYLE}</style></head><body><main>"
            f"<h1>事件回访 · 编号 {incident['id']}</h1>{said}<section class=\"card\"><dl>{details}</dl></section>"
            f"{form}</main></body></html>")


def not_found(message: str) -> str:
    """The page for a link that opens no report."""
    return (f'<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width,initial-scale=1">'
            f"<title>事件回访</title><style>{_STYLE}</style></head><body><main><h1>事件回访</h1>"
            f'<p class="card problem">链接无效：请打开随上报回执收到的链接。<br>{html.escape(message)}</p>'
            "</main></body></html>")
