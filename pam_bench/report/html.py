"""A static HTML leaderboard: ``pam-bench leaderboard RESULTS... --format html --out DIR``.

Pages open from disk (no server, no CDN, no network) and fit a 1,280 px window without horizontal
scrolling (checked in headless Chromium by the tests):

- ``DIR/index.html``: the leaderboard (the paper's reported rows marked and cited, measured rows from
  results.json), sorted by clicking a header (vanilla JS; missing values always sort last), best values per
  block in bold, small-N cells marked; then, for a few clips, GT | each method's video | the conditions side
  by side in a responsive grid at a readable size;
- ``DIR/clips.html``: the per-clip drill-down: every clip's per-video metrics for every measured run
  (per_video.jsonl), sortable, each previewed clip linked to ``DIR/clip/<id>.html``, which shows the GT and
  every method's video with that clip's metrics. With ``group_by`` (``--group-by KEY``) the page is one
  section per group of clips sharing a key of the dataset's clip metadata (the grouping rule of
  ``pam-bench breakdown``, :mod:`pam_bench.report.clipgroups`): a table of contents, then per group its
  name, its clip count, each run's mean of each per-clip metric over the group's clips, and its clip rows.
  When the dataset cannot be rebuilt the page stays flat and says why.

Previews are animated WebP files under ``DIR/previews/`` (plain ``<img>``: every browser plays them
without codec support). GT and conditions come from reloading the dataset recorded in the run folder's
``dataset_args.json`` (``--root`` / ``-d`` override it); without it the page still shows generated videos
and says why GT is missing.
"""
from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any, Collection, Sequence

import numpy as np

from .clipgroups import UNKNOWN, group_clips, largest_first
from .leaderboard import ARROWS, Board, board_rows, build
from ..console import echo
from ..results import load_results
from ..store import safe_id

PREVIEW_HEIGHT = 240
PREVIEW_FRAMES = 25


def _resize(frames: np.ndarray, height: int) -> np.ndarray:
    from ..video import resize_frames

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
    from ..run.components import rebuild_dataset

    p = run_dir / "dataset_args.json"
    if not p.is_file():
        return None, (f"{p} is absent (the run was made with a Dataset object, which the page cannot rebuild: "
                      "it shows the generated videos only)")
    try:
        return rebuild_dataset(run_dir, root, options), ""
    except Exception as e:  # a missing dataset root must not stop the page: say why GT is absent
        return None, f"cannot reload the run's dataset: {e}"


def _generated_path(run_dir: Path, result: dict, vid: str, index: int | None) -> Path | None:
    cands = [run_dir / "videos" / f"{safe_id(vid)}.mp4"]
    src = result["method"].get("videos")
    if src:
        if index is not None:
            cands += [Path(src) / "generated" / f"generated_{index:04d}.mp4", Path(src) / f"generated_{index:04d}.mp4"]
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
                   root=None, dataset_options: dict | None = None,
                   loaded: tuple[Any, str] | None = None) -> tuple[list[dict], list[str]]:
    """Write previews for the selected clips; returns (per-clip panels, notes).

    ``loaded``: the (dataset, reason) of :func:`_load_dataset` when the caller already has it."""
    from ..video import read_video

    notes: list[str] = []
    if not results:
        return [], notes
    run0 = Path(results[0]["_path"]).parent
    ds, why = loaded if loaded is not None else _load_dataset(run0, root, dataset_options)
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
*{box-sizing:border-box}
body{font-family:system-ui,sans-serif;margin:0 auto;padding:1em 1.5em;max-width:1600px;color:#222}
nav a{margin-right:1em}
.wrap{max-width:100%}
table.lb{border-collapse:collapse;font-size:13px;max-width:100%}
table.lb th,table.lb td{border-bottom:1px solid #ddd;padding:3px 6px;text-align:right}
table.lb td{white-space:nowrap}
table.lb th{cursor:pointer;background:#f4f4f4;user-select:none;white-space:normal;vertical-align:bottom}
table.lb th[aria-sort=ascending]::after{content:" \\25B2"} table.lb th[aria-sort=descending]::after{content:" \\25BC"}
table.lb td.l,table.lb th.l{text-align:left;white-space:normal}
tr.reported td{color:#555;font-style:italic}
.grid{margin-top:1em;display:grid;grid-template-columns:repeat(auto-fill,minmax(min(100%,260px),1fr));gap:10px}
.grid figure{margin:0;text-align:center;font-size:13px;min-width:0}
.grid img{width:100%;height:auto;display:block;background:#eee}
.missing{padding:2em .5em;background:#f4f4f4;color:#777}
.notes{font-size:12px;color:#555;overflow-wrap:anywhere}
"""

_JS = """
(function(){
  document.querySelectorAll('table.lb').forEach(function(table){
    const body=table.tBodies[0];
    table.querySelectorAll('th[data-col]').forEach(function(th){
      th.addEventListener('click',function(){
        const numeric=th.dataset.numeric==='1';
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
  });
})();
"""


def _e(s: Any) -> str:
    return html.escape(str(s), quote=True)


def _th(label: str, col: str, numeric: bool = False, better: str = "", title: str = "", left: bool = False) -> str:
    attrs = f' data-col="{_e(col)}"' + (' data-numeric="1"' if numeric else "") \
        + (f' data-better="{_e(better)}"' if better else "") + (f' title="{_e(title)}"' if title else "")
    cls = ' class="l"' if left else ""
    return f"<th{cls}{attrs}>{_e(label)}</th>"


def _table(board: Board) -> str:
    rows = board_rows(board)
    cols = board.columns
    head = [_th("method", "method", left=True), _th("source", "kind", left=True)]
    head += [_th(c.label, c.label, True, c.direction, f"backend: {c.backend or 'unstated'}") for c in cols]
    head += [_th("N", "n")]
    body = []
    for r in rows:
        cite = f' <sup title="{_e(r["source"])}">[cite]</sup>' if r["kind"] == "reported" else ""
        cells = [f'<td class="l" data-v="{_e(r["label"])}">{_e(r["label"])}</td>',
                 f'<td class="l" data-v="{_e(r["kind"])}" title="{_e(r["block"])}">{_e(r["kind"])}{cite}</td>']
        for c in cols:
            v = r["values"].get(c.label)
            txt = _e(r["text"][c.label])
            if c.label in r["best"]:
                txt = f"<b>{txt}</b>"
            cells.append(f'<td data-v="{"" if v is None else repr(float(v))}">{txt}</td>')
        cells.append(f'<td data-v="{_e(r["n"])}">{_e(r["n"] or "–")}</td>')
        body.append(f'<tr class="{_e(r["kind"])}" data-label="{_e(r["label"])}">' + "".join(cells) + "</tr>")
    return (f'<div class="wrap"><table id="leaderboard" class="lb"><thead><tr>{"".join(head)}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>')


def _figures(panels: list[dict], prefix: str = "") -> str:
    figs = []
    for p in panels:
        if p.get("src"):
            figs.append(f'<figure><img class="preview" src="{_e(prefix + p["src"])}" alt="{_e(p["label"])}">'
                        f'<figcaption>{_e(p["label"])}</figcaption></figure>')
        else:
            figs.append(f'<figure><div class="missing">{_e(p.get("missing", "missing"))}</div>'
                        f'<figcaption>{_e(p["label"])}</figcaption></figure>')
    return f'<div class="grid">{"".join(figs)}</div>'


def _previews_html(clips: list[dict]) -> str:
    return "".join(f'<div class="clip" data-clip="{_e(c["id"])}"><h3><a href="clip/{_e(safe_id(c["id"]))}.html">'
                   f'{_e(c["id"])}</a></h3>{_figures(c["panels"])}</div>' for c in clips)


def _per_video(results: list[dict]) -> list[dict[str, dict]]:
    """per_video.jsonl of each run, keyed by video id (empty when a run has none)."""
    out = []
    for r in results:
        p = Path(r["_path"]).parent / "per_video.jsonl"
        rows = [json.loads(x) for x in p.read_text().splitlines() if x.strip()] if p.is_file() else []
        out.append({row["video_id"]: row for row in rows})
    return out


def _clip_metrics(results: list[dict]) -> list[tuple[str, str]]:
    """(metric, direction) of the per-video metrics, in the order the runs list them."""
    seen: dict[str, str] = {}
    for r, pv in zip(results, _per_video(results)):
        names = {k for row in pv.values() for k in row if k != "video_id"}
        for name, m in r["metrics"].items():
            if name in names:
                seen.setdefault(name, m["direction"])
    return list(seen.items())


def _clips_table(results: list[dict], labels: list[str], linked: set[str], prefix: str = "",
                 only: Collection[str] | None = None) -> str:
    metrics = _clip_metrics(results)
    head = [_th("clip", "clip", left=True), _th("method", "method", left=True)]
    head += [_th(f"{m} {ARROWS[d]}", m, True, d) for m, d in metrics]
    body = []
    for pv, label in zip(_per_video(results), labels):
        for vid, row in pv.items():
            if only is not None and vid not in only:
                continue
            name = _e(vid)
            if vid in linked:
                name = f'<a href="{prefix}clip/{_e(safe_id(vid))}.html">{name}</a>'
            cells = [f'<td class="l" data-v="{_e(vid)}">{name}</td>',
                     f'<td class="l" data-v="{_e(label)}">{_e(label)}</td>']
            for m, _ in metrics:
                v = row.get(m)
                cells.append(f'<td data-v="{"" if v is None else repr(float(v))}">'
                             f'{"–" if v is None else f"{float(v):.4g}"}</td>')
            body.append("<tr>" + "".join(cells) + "</tr>")
    return (f'<div class="wrap"><table class="lb"><thead><tr>{"".join(head)}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>')


def _groups(results: list[dict], loaded: tuple[Any, str], by: str) -> tuple[list[tuple[str, list[str]]] | None, str]:
    """The runs' clips grouped by ``clip_meta[by]`` (largest group first), or (None, why not) after saying so.

    Clips the rebuilt dataset does not hold (a run on another split) fall in '(unknown)' with the clips
    that lack the key, so every clip is in one group; a key that no clip has raises (naming --group-by)."""
    ds, why = loaded
    ids = list(dict.fromkeys(vid for pv in _per_video(results) for vid in pv))
    held = set(ds.split().ids) if ds is not None else set()
    if ds is None or not held.intersection(ids):
        why = why if ds is None else f"no clip of the runs is in dataset '{ds.name}'"
        note = f"--group-by {by}: clips.html is not grouped: {' '.join(str(why).split())}"
        echo(f"pam-bench: warning: {note}", err=True)
        return None, note
    groups = group_clips(ds, [v for v in ids if v in held], by, "--group-by")
    rest = [v for v in ids if v not in held]
    if rest:
        groups.setdefault(UNKNOWN, []).extend(rest)
    return largest_first(groups), ""


def _means_table(results: list[dict], labels: list[str], ids: list[str]) -> str:
    """Each run's mean of each per-clip metric over ``ids`` (the clips that have a finite value)."""
    metrics = _clip_metrics(results)
    head = [_th("method", "method", left=True)] + [_th(f"mean {m} {ARROWS[d]}", m, True, d) for m, d in metrics]
    body = []
    for pv, label in zip(_per_video(results), labels):
        cells = [f'<td class="l" data-v="{_e(label)}">{_e(label)}</td>']
        for m, _ in metrics:
            vals = [float(pv[v][m]) for v in ids if isinstance(pv.get(v, {}).get(m), (int, float))]
            vals = [x for x in vals if np.isfinite(x)]
            if not vals:
                cells.append(f'<td data-metric="{_e(m)}" data-v="" title="no clip of the group has a value">–</td>')
                continue
            mean = float(np.mean(np.array(vals, np.float64)))
            cells.append(f'<td data-metric="{_e(m)}" data-v="{mean!r}" data-n="{len(vals)}" '
                         f'title="mean over {len(vals)} of the {len(ids)} clips of the group">{mean:.4g}</td>')
        body.append(f'<tr data-label="{_e(label)}">' + "".join(cells) + "</tr>")
    return (f'<div class="wrap"><table class="lb means"><thead><tr>{"".join(head)}</tr></thead>'
            f'<tbody>{"".join(body)}</tbody></table></div>')


def _grouped_clips_body(results: list[dict], labels: list[str], linked: set[str], by: str,
                        groups: list[tuple[str, list[str]]]) -> str:
    """clips.html grouped: a table of contents, then one section per group (means, then its clip rows)."""
    toc = "".join(f'<li><a href="#group-{i}">{_e(key)}</a> ({len(ids)} clips)</li>'
                  for i, (key, ids) in enumerate(groups))
    sections = "".join(
        f'<section class="group" id="group-{i}" data-group="{_e(key)}" data-n="{len(ids)}">'
        f'<h2>{_e(by)}: {_e(key)} ({len(ids)} clip{"" if len(ids) == 1 else "s"})</h2>'
        f"{_means_table(results, labels, ids)}<h3>Clips</h3>{_clips_table(results, labels, linked, only=set(ids))}"
        "</section>" for i, (key, ids) in enumerate(groups))
    return (f"<p>Per-video metrics of every measured run (per_video.jsonl), grouped by the clips' "
            f"<code>{_e(by)}</code> (dataset clip metadata): each group's per-run mean of every per-clip metric "
            "over its clips, then its clips. Click a header to sort; a linked clip has a page with its videos.</p>"
            f'<h2>Groups by {_e(by)}</h2><ul class="toc">{toc}</ul>{sections}')


def _page(title: str, body: str, prefix: str = "") -> str:
    nav = f'<nav><a href="{prefix}index.html">leaderboard</a><a href="{prefix}clips.html">per clip</a></nav>'
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1"><title>{_e(title)}</title>'
            f"<style>{_CSS}</style></head><body>{nav}<h1>{_e(title)}</h1>{body}<script>{_JS}</script></body></html>\n")


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.part")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


def write_html(paths: Sequence[str | Path], out: str | Path, layout: str = "table1", reported=None,
               include_reported: bool = True, clips: int | Sequence[str] = 2, root=None,
               dataset_options: dict | None = None, labels: dict[str, str] | None = None,
               all_columns: bool = False, group_by: str | None = None) -> Path:
    """Write DIR/index.html, DIR/clips.html and DIR/clip/<id>.html (+ previews); returns index.html.

    ``group_by``: a clip-metadata key; clips.html then has one section per group (see the module docstring)."""
    out = Path(out)
    results = [load_results(p) for p in paths]
    board = build(results, layout, reported, include_reported, labels, all_columns)
    measured = [r for r in board_rows(board) if r["kind"] == "measured"]
    by_path = {m["path"]: m["label"] for m in measured}
    names = [by_path.get(r["_path"], r["method"]["name"]) for r in results]
    loaded = _load_dataset(Path(results[0]["_path"]).parent, root, dataset_options) if results else None
    groups, group_note = _groups(results, loaded, group_by) if group_by is not None and loaded else (None, "")
    out.mkdir(parents=True, exist_ok=True)
    clips_out, notes = build_previews(results, out, names, clips, root, dataset_options, loaded)
    foot = "".join(f"<li>{_e(f)}</li>" for f in board.footnotes + notes)
    linked = {c["id"] for c in clips_out}
    body = ("<p>Click a column header to sort (best first on the first click). "
            "<a href=\"clips.html\">Per-clip metrics</a>.</p>"
            f"{_table(board)}<ul class=\"notes\">{foot}</ul>"
            f"<h2>Videos</h2>{_previews_html(clips_out) or '<p>no clips selected</p>'}")
    index = out / "index.html"
    _write(index, _page(board.layout.title, body))
    if groups is not None:
        clips_body = _grouped_clips_body(results, names, linked, group_by, groups)
    else:
        clips_body = ("<p>Per-video metrics of every measured run (per_video.jsonl). Click a header to sort; "
                      "a linked clip has a page with its videos.</p>" + _clips_table(results, names, linked))
        if group_note:
            clips_body += f'<ul class="notes"><li>{_e(group_note)}</li></ul>'
    _write(out / "clips.html", _page("Per-clip metrics", clips_body))
    for c in clips_out:
        body = (_clips_table(results, names, set(), "../", only={c["id"]})
                + _figures(c["panels"], "../"))
        _write(out / "clip" / f"{safe_id(c['id'])}.html", _page(f"Clip {c['id']}", body, "../"))
    return index
