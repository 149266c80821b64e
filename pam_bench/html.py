"""A static HTML leaderboard: ``pam-bench leaderboard RESULTS... --format html --out DIR``.

``DIR/index.html`` opens from disk (no server, no CDN, no network): a table with one row per method
(the paper's reported rows marked and cited, measured rows from results.json) that sorts when a header is
clicked (vanilla JS; missing values always sort last), best values per block in bold, and side-by-side
previews for a few clips: GT | each method's generated video | the conditions (depth, seg, hand).
Previews are small animated WebP files under ``DIR/previews/`` (plain ``<img>``: every browser plays them
without codec support). GT and conditions come from reloading the dataset recorded in the run folder's
``dataset_args.json`` (``--root`` / ``-d`` override it); without it the page still shows generated videos
and says why GT is missing.
"""
from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .leaderboard import Board, board_rows, build
from .results import load_results
from .store import read_json, safe_id

PREVIEW_HEIGHT = 96
PREVIEW_FRAMES = 25


def _resize(frames: np.ndarray, height: int) -> np.ndarray:
    from .video import resize_frames

    h, w = frames.shape[1:3]
    if h <= height:
        return frames
    return resize_frames(frames, (height, max(2, int(round(w * height / h)))))


def write_preview(path: Path, frames: np.ndarray, fps: float, height: int = PREVIEW_HEIGHT,
                  max_frames: int = PREVIEW_FRAMES) -> Path:
    """An animated WebP of ``frames`` (uint8 [T,H,W,3] or [T,H,W]) scaled to ``height``, ≤ max_frames frames."""
    from PIL import Image

    a = np.asarray(frames)
    if a.ndim == 3:
        a = np.repeat(a[..., None], 3, axis=-1)
    step = max(1, int(np.ceil(a.shape[0] / max_frames)))
    a = _resize(np.ascontiguousarray(a[::step]), height)
    imgs = [Image.fromarray(f) for f in a]
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part")
    imgs[0].save(tmp, format="WEBP", save_all=True, append_images=imgs[1:], loop=0, quality=70,
                 duration=int(round(1000 * step / max(fps, 1e-3))))
    tmp.replace(path)
    return path


def _load_dataset(run_dir: Path, root=None, options: dict | None = None):
    """The dataset of a run folder from its dataset_args.json (None, reason) when it cannot be rebuilt."""
    from .harness import build_dataset

    p = run_dir / "dataset_args.json"
    if not p.is_file():
        return None, f"{p} is absent (the run was made with a Dataset object; pass --root and -d options)"
    a = read_json(p)
    opts = {**(a.get("options") or {}), **(options or {})}
    try:
        return build_dataset(a["name"], root or a.get("root"), a.get("split"), **opts), ""
    except Exception as e:  # a missing dataset root must not stop the page: say why GT is absent
        return None, f"cannot reload dataset '{a.get('name')}': {e}"


def _generated_path(run_dir: Path, result: dict, vid: str, index: int | None) -> Path | None:
    cands = [run_dir / "videos" / f"{safe_id(vid)}.mp4"]
    src = result["method"].get("videos")
    if src:
        if index is not None:
            cands.append(Path(src) / "generated" / f"generated_{index:04d}.mp4")
        cands += [Path(src) / f"{safe_id(vid)}.mp4", Path(src) / f"{vid}.mp4"]
    return next((c for c in cands if c.is_file()), None)


def _clip_ids(results: list[dict], clips: int | Sequence[str]) -> list[str]:
    if not isinstance(clips, int):
        return list(clips)
    p = Path(results[0]["_path"]).parent / "per_video.jsonl"
    if not p.is_file():
        return []
    ids = [json.loads(x)["video_id"] for x in p.read_text().splitlines() if x.strip()]
    return ids[:clips]


def build_previews(results: list[dict], out: Path, labels: list[str], clips: int | Sequence[str] = 2,
                   root=None, dataset_options: dict | None = None) -> tuple[list[dict], list[str]]:
    """Write previews for the selected clips; returns (per-clip panels, notes)."""
    from .video import read_video

    notes: list[str] = []
    if not results:
        return [], notes
    run0 = Path(results[0]["_path"]).parent
    ds, why = _load_dataset(run0, root, dataset_options)
    if ds is None:
        notes.append(f"GT and conditions not shown: {why}")
    order = {v: i for i, v in enumerate(ds.split().ids)} if ds is not None else {}
    clips_out = []
    for vid in _clip_ids(results, clips):
        d = out / "previews" / safe_id(vid)
        panels: list[dict[str, Any]] = []
        sample = ds.load(vid) if ds is not None else None
        if sample is not None and sample.video is not None:
            panels.append({"label": "GT", "src": write_preview(d / "gt.webp", sample.video.frames, sample.video.fps)})
        for k, (r, label) in enumerate(zip(results, labels)):
            p = _generated_path(Path(r["_path"]).parent, r, vid, order.get(vid))
            if p is None:
                panels.append({"label": label, "src": None, "missing": "no generated video in the run folder"})
                continue
            v = read_video(p)
            panels.append({"label": label, "src": write_preview(d / f"gen{k}.webp", v.frames, v.fps)})
        if sample is not None:
            for name, cv in sorted(sample.conditions.items()):
                panels.append({"label": f"cond: {name}", "src": write_preview(d / f"cond_{name}.webp", cv.frames, cv.fps)})
        for p in panels:
            if p.get("src") is not None:
                p["src"] = p["src"].relative_to(out).as_posix()
        clips_out.append({"id": vid, "panels": panels})
    return clips_out, notes


_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
table.lb{border-collapse:collapse;font-size:14px}
table.lb th,table.lb td{border-bottom:1px solid #ddd;padding:4px 8px;text-align:right;white-space:nowrap}
table.lb th{cursor:pointer;background:#f4f4f4;user-select:none}
table.lb th[aria-sort=ascending]::after{content:" ▲"} table.lb th[aria-sort=descending]::after{content:" ▼"}
table.lb td.l,table.lb th.l{text-align:left}
tr.reported td{color:#555;font-style:italic}
.clip{margin:1em 0} .clip figure{display:inline-block;margin:0 6px 6px 0;text-align:center;font-size:12px}
.notes{font-size:12px;color:#555}
"""

_JS = """
(function(){
  const table=document.getElementById('leaderboard');
  const body=table.tBodies[0];
  table.querySelectorAll('th[data-col]').forEach(function(th,ci){
    th.addEventListener('click',function(){
      const col=th.dataset.col, numeric=th.dataset.numeric==='1';
      let asc;
      if(th.getAttribute('aria-sort')) asc=th.getAttribute('aria-sort')!=='ascending';
      else asc=numeric?th.dataset.better!=='higher':true;
      table.querySelectorAll('th').forEach(function(h){h.removeAttribute('aria-sort');});
      th.setAttribute('aria-sort',asc?'ascending':'descending');
      const rows=Array.from(body.rows);
      rows.sort(function(a,b){
        const x=a.cells[th.cellIndex].dataset.v, y=b.cells[th.cellIndex].dataset.v;
        if(x===undefined||x==='') return (y===undefined||y==='')?0:1;
        if(y===undefined||y==='') return -1;
        let c=numeric?(parseFloat(x)-parseFloat(y)):x.localeCompare(y);
        return asc?c:-c;
      });
      rows.forEach(function(r){body.appendChild(r);});
    });
  });
})();
"""


def _e(s: Any) -> str:
    return html.escape(str(s), quote=True)


def _table(board: Board) -> str:
    rows = board_rows(board)
    cols = board.columns
    head = ['<th class="l" data-col="method">method</th>', '<th class="l" data-col="kind">source</th>',
            '<th class="l" data-col="block">protocol</th>']
    head += [f'<th data-col="{_e(c.label)}" data-numeric="1" data-better="{_e(c.direction)}" '
             f'title="backend: {_e(c.backend or "unstated")}">{_e(c.label)}</th>' for c in cols]
    head += ['<th data-col="n">N</th>']
    body = []
    for r in rows:
        cells = [f'<td class="l" data-v="{_e(r["label"])}">{_e(r["label"])}</td>',
                 f'<td class="l" data-v="{_e(r["kind"])}">{_e(r["kind"])}'
                 + (f' <sup title="{_e(r["source"])}">[cite]</sup>' if r["kind"] == "reported" else "") + "</td>",
                 f'<td class="l" data-v="{_e(r["block"])}">{_e(r["block"])}</td>']
        for c in cols:
            v = r["values"].get(c.label)
            txt = _e(r["text"][c.label])
            if c.label in r["best"]:
                txt = f"<b>{txt}</b>"
            cells.append(f'<td data-v="{"" if v is None else repr(float(v))}">{txt}</td>')
        cells.append(f'<td data-v="{_e(r["n"])}">{_e(r["n"] or "–")}</td>')
        body.append(f'<tr class="{_e(r["kind"])}" data-label="{_e(r["label"])}">' + "".join(cells) + "</tr>")
    return (f'<table id="leaderboard" class="lb"><thead><tr>{"".join(head)}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table>')


def _previews_html(clips: list[dict]) -> str:
    out = []
    for c in clips:
        figs = []
        for p in c["panels"]:
            if p.get("src"):
                figs.append(f'<figure><img class="preview" src="{_e(p["src"])}" alt="{_e(p["label"])}">'
                            f'<figcaption>{_e(p["label"])}</figcaption></figure>')
            else:
                figs.append(f'<figure><div>{_e(p.get("missing", "missing"))}</div>'
                            f'<figcaption>{_e(p["label"])}</figcaption></figure>')
        out.append(f'<div class="clip" data-clip="{_e(c["id"])}"><h3>{_e(c["id"])}</h3>{"".join(figs)}</div>')
    return "".join(out)


def write_html(paths: Sequence[str | Path], out: str | Path, layout: str = "table1", reported=None,
               include_reported: bool = True, clips: int | Sequence[str] = 2, root=None,
               dataset_options: dict | None = None) -> Path:
    """Write DIR/index.html (+ previews); returns its path."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results = [load_results(p) for p in paths]
    board = build(results, layout, reported, include_reported)
    measured = [r for r in board_rows(board) if r["kind"] == "measured"]
    by_path = {m["path"]: m["label"] for m in measured}
    labels = [by_path.get(r["_path"], r["method"]["name"]) for r in results]
    clips_out, notes = build_previews(results, out, labels, clips, root, dataset_options)
    foot = "".join(f"<li>{_e(f)}</li>" for f in board.footnotes + notes)
    page = (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>{_e(board.layout.title)}</title>'
            f"<style>{_CSS}</style></head><body><h1>{_e(board.layout.title)}</h1>"
            "<p>Click a column header to sort (best first on the first click).</p>"
            f"{_table(board)}<ul class=\"notes\">{foot}</ul>"
            f"<h2>Previews</h2>{_previews_html(clips_out) or '<p>no clips selected</p>'}"
            f"<script>{_JS}</script></body></html>\n")
    index = out / "index.html"
    tmp = out / ".index.html.part"
    tmp.write_text(page, encoding="utf-8")
    tmp.replace(index)
    return index
