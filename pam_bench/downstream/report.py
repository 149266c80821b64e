"""Table 4 (md + csv) and Fig. 7 (PNG) from the study's runs.

Table 4 rows: All real data; All gen. data; All gen. + 25/50/75/100% real data (plus p%-real-only rows
when requested). Columns: PA-MPJPE, PA-MPVPE (mm, lower is better), F-score at 5 and 15 mm, AUC of
aligned joints (0-50 mm), the mean-pose reference (PA-MPJPE when every image gets the mixture's mean
pose), train images, seeds. With several seeds a cell is ``mean ± std`` (sample std), unless a run says its
seed was not effective (e.g. the official SimpleHand train.py re-seeds with the GPU rank): then the cell is
``mean †`` and a note under the table says why; the CSV leaves its std empty.
A metric that could not be computed is ``n/a`` with the reason under the table, never a number.

Fig. 7: one panel per metric; x = share of the real training clips (0% = generated only), solid line =
generated + p% real, dotted = p% real only (when run), dashed horizontal line = the 100%-real baseline.
Drawn with pam_bench.report.plots.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Sequence

import numpy as np

from ..store import atomic_write_bytes

COLUMNS = (  # key, label, decimals
    ("pa_mpjpe_mm", "PA-MPJPE (mm) ↓", 2),
    ("pa_mpvpe_mm", "PA-MPVPE (mm) ↓", 2),
    ("f_at_5mm", "F@5mm ↑", 4),
    ("f_at_15mm", "F@15mm ↑", 4),
    ("auc_joints", "AUC 0-50mm ↑", 4),
    ("mean_pose_pa_mpjpe_mm", "mean-pose PA-MPJPE (mm)", 2),
)
#: reference columns: shown in the table, not plotted
REFERENCE = ("mean_pose_pa_mpjpe_mm",)


def aggregate(runs: list[dict]) -> list[dict]:
    """Per mixture (in first-seen order): label, values per metric over seeds, counts, reasons."""
    by: dict[str, dict] = {}
    for r in runs:
        m = r["mixture"]
        row = by.setdefault(m["name"], {"name": m["name"], "label": m["label"], "real_fraction": m["real_fraction"],
                                        "generated": m["generated"], "values": {k: [] for k, _, _ in COLUMNS},
                                        "n_train_images": r["n_train_images"], "seeds": [], "reasons": set(),
                                        "fscore_on": set(), "seed_effective": True, "seed_notes": set()})
        row["seeds"].append(r["seed"])
        if not r.get("seed_effective", False):
            row["seed_effective"] = False
            row["seed_notes"].add(r.get("seed_note") or "the trainer did not say whether the seed was effective")
        row["fscore_on"].add(r["metrics"].get("fscore_on"))
        for k, _, _ in COLUMNS:
            v = r["metrics"].get(k)
            if v is None:
                why = r["metrics"].get("pa_mpvpe_reason" if k == "pa_mpvpe_mm" else "reason")
                row["reasons"].add(f"{k}: {why or 'not computed'}")
            else:
                row["values"][k].append(float(v))
    return list(by.values())


def cell(values: list[float], decimals: int, spread: bool = True) -> str:
    """One value, or ``mean ± std`` over seeds; ``spread=False`` (seeds not effective): the mean and a dagger."""
    if not values:
        return "n/a"
    if len(values) == 1:
        return f"{values[0]:.{decimals}f}"
    if not spread:
        return f"{np.mean(values):.{decimals}f} †"
    return f"{np.mean(values):.{decimals}f} ± {np.std(values, ddof=1):.{decimals}f}"


def table_rows(agg: list[dict]) -> tuple[list[str], list[list[str]]]:
    headers = ["Setting"] + [label for _, label, _ in COLUMNS] + ["train images", "seeds"]
    rows = [[a["label"]] + [cell(a["values"][k], d, a["seed_effective"]) for k, _, d in COLUMNS]
            + [str(a["n_train_images"]), str(len(a["seeds"])) + ("" if a["seed_effective"] else " †")] for a in agg]
    return headers, rows


def write_report(runs: list[dict], out: Path, fractions: Sequence[float]) -> list[Path]:
    from tabulate import tabulate

    out = Path(out)
    agg = aggregate(runs)
    headers, rows = table_rows(agg)
    f_on = sorted({x for a in agg for x in a["fscore_on"] if x})
    notes = [f"F-scores on {', '.join(f_on)} after Procrustes alignment (FreiHAND F_aligned); "
             "the paper's are on the 778 MANO vertices.",
             "mean-pose PA-MPJPE: the same evaluation when every image is given the training mixture's mean "
             "root-relative pose (a model that ignores the image); a trained model should be below it."]
    reasons = sorted({why for a in agg for why in a["reasons"]})
    for why in reasons:
        which = [a["label"] for a in agg if why in a["reasons"]]
        notes.append(f"n/a {why}" + ("" if len(which) == len(agg) else f" ({', '.join(which)})"))
    for why in sorted({n for a in agg for n in a["seed_notes"]}):
        which = [a["label"] for a in agg if why in a["seed_notes"] and len(a["seeds"]) > 1]
        if which:
            notes.append(f"† seeds not effective, so no spread over seeds is reported ({', '.join(which)}): {why}.")
    notes = list(dict.fromkeys(notes))
    md = ("Table 4 layout: downstream hand-pose estimation trained on each mixture\n\n"
          + tabulate(rows, headers=headers, tablefmt="github") + "\n\n" + "\n".join(f"- {n}" for n in notes) + "\n")
    atomic_write_bytes(out / "table4.md", md.encode())
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["setting", "name"] + [k for k, _, _ in COLUMNS] + [f"{k}_std" for k, _, _ in COLUMNS]
               + ["n_train_images", "n_seeds", "seeds_effective"])
    for a in agg:
        means = [f"{np.mean(a['values'][k]):.6g}" if a["values"][k] else "" for k, _, _ in COLUMNS]
        stds = [f"{np.std(a['values'][k], ddof=1):.6g}" if len(a["values"][k]) > 1 and a["seed_effective"] else ""
                for k, _, _ in COLUMNS]
        w.writerow([a["label"], a["name"]] + means + stds + [a["n_train_images"], len(a["seeds"]),
                                                             int(a["seed_effective"])])
    atomic_write_bytes(out / "table4.csv", buf.getvalue().encode())
    png = plot_fig7(agg, out / "fig7.png")
    return [out / "table4.md", out / "table4.csv", png]


def fig7_panels(agg: list[dict]) -> list[dict]:
    """One pam_bench.report.plots panel per plotted metric (x in %; None where a mixture was not run)."""
    base = next((a for a in agg if a["name"] == "real-100"), None)
    xs = sorted({100.0 * a["real_fraction"] for a in agg if a["generated"]})
    panels = []
    for k, label, _ in COLUMNS:
        if k in REFERENCE or not any(a["values"][k] for a in agg):
            continue

        def at(x: float, generated: bool):
            for a in agg:
                if a["generated"] == generated and abs(100.0 * a["real_fraction"] - x) < 1e-9 and a["values"][k]:
                    return float(np.mean(a["values"][k]))
            return None

        series = {"generated + p% real": [at(x, True) for x in xs]}
        if any(not a["generated"] and a["name"] != "real-100" for a in agg):
            series["p% real only"] = [at(x, False) for x in xs]
        baseline = float(np.mean(base["values"][k])) if base is not None and base["values"][k] else None
        panels.append({"x": xs, "y": series, "baseline": baseline, "title": label, "ylabel": label,
                       "xlabel": "real training data (%)", "baseline_label": "100% real data only"})
    return panels


def plot_fig7(agg: list[dict], path: Path) -> Path:
    """Fig. 7 as a PNG through pam_bench.report.plots (0% = generated data only)."""
    from ..report.plots import save_png

    return save_png(fig7_panels(agg), path, dpi=110)
