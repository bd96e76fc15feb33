"""Evaluation report: ``evaluation.json``, ``evaluation.md`` and PNG plots in one folder."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from training.plots import plot_bars, plot_confusion, plot_roc


def write_report(summary: dict[str, Any], folder: Path, meta: dict[str, Any]) -> Path:
    """Write the report files; returns the JSON path."""
    folder.mkdir(parents=True, exist_ok=True)
    data = _clean({"meta": meta, "summary": summary})
    path = folder / "evaluation.json"
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    (folder / "evaluation.md").write_text(render_markdown(summary, meta), encoding="utf-8")
    if summary.get("dice_per_level"):
        plot_bars(
            summary["dice_per_level"], folder / "dice_per_level.png", "Dice per level", "Dice"
        )
    fracture = summary.get("fracture")
    if fracture:
        curves = {}
        for name in ("grade>=1", "grade>=2"):
            for level in ("vertebra", "patient"):
                fpr, tpr = fracture[name][f"{level}_roc"]
                curves[f"{name} {level}"] = (fpr, tpr, fracture[name][level]["auc"])
        plot_roc(curves, folder / "roc.png")
        plot_confusion(fracture["grade_confusion"], folder / "grade_confusion.png", "Genant grade")
    return path


def _clean(value: Any) -> Any:
    """NaN -> None so the JSON is standard."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def _fmt(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def render_markdown(summary: dict[str, Any], meta: dict[str, Any]) -> str:
    lines = ["# Evaluation report", "", "**Not validated on patients.**", ""]
    lines += [f"- {key}: {value}" for key, value in meta.items()]
    lines += [
        "",
        "## Segmentation and identification",
        "",
        f"- Cases: {summary['cases']}, vertebrae: {summary['vertebrae']}",
        f"- Mean vertebra Dice: {_fmt(summary['mean_dice'])}",
        "- Mean foreground Dice (any vertebra, levels ignored; per case): "
        f"{_fmt(summary['mean_foreground_dice'])}",
        f"- Identification rate (VerSe 20 mm rule): {_fmt(summary['identification_rate'])}",
        f"- Mean localisation error: {_fmt(summary['mean_localisation_error_mm'])} mm",
        *_complete_lines(summary),
        *_transitional_lines(summary.get("transitional_spines")),
        "",
        *_height_lines(summary.get("height_error_mm")),
        "| level | Dice |",
        "| --- | --- |",
        *[f"| {k} | {_fmt(v)} |" for k, v in summary["dice_per_level"].items()],
        "",
    ]
    fracture = summary.get("fracture")
    if fracture:
        lines += _fracture_lines(fracture, graded_by_model=meta.get("grader", "none") != "none")
    return "\n".join(lines) + "\n"


def _complete_lines(summary: dict[str, Any]) -> list[str]:
    if "complete_vertebrae" not in summary:  # a report from before these figures
        return []
    return [
        f"- Vertebrae the field of view holds whole: {summary['complete_vertebrae']} of "
        f"{summary['vertebrae']}; their mean Dice {_fmt(summary['mean_dice_complete'])}, "
        f"identification rate {_fmt(summary['identification_rate_complete'])} (the figures "
        "above count every labelled vertebra, cut ones included)",
    ]


def _transitional_lines(spines: dict[str, Any] | None) -> list[str]:
    if not spines:
        return []
    return [
        f"- Spines with a T13 or an L6 (transitional): {spines['cases']} cases, "
        f"{spines['vertebrae']} vertebrae, identification rate "
        f"{_fmt(spines['identification_rate'])}; the other spines: "
        f"{_fmt(spines['identification_rate_other_spines'])}",
    ]


def _fracture_lines(fracture: dict[str, Any], graded_by_model: bool = True) -> list[str]:
    source = (
        "morphometry on the predicted labels blended with the grader model"
        if graded_by_model
        else "morphometry on the predicted labels alone: no grader model"
    )
    lines = [
        "## Fractures (threshold 0.5 on P(grade >= n); patient = max over vertebrae)",
        "",
        f"Graded vertebrae: {fracture['graded_vertebrae']}; complete vertebrae the product "
        f"measured but did not grade (slices thicker than 3 mm): "
        f"{fracture.get('not_graded_vertebrae', 0)}",
        "",
        f"Scores are the product's fracture scores ({source}, pipeline/grading.py); the grade "
        "is the product's fused grade.",
        "",
        "| target | level | positives | negatives | sensitivity | specificity | PPV | NPV | AUC |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for name in ("grade>=1", "grade>=2"):
        for level in ("vertebra", "patient"):
            s = fracture[name][level]
            cells = [s[k] for k in ("sensitivity", "specificity", "ppv", "npv", "auc")]
            lines.append(
                f"| {name} | {level} | {s['positives']} | {s['negatives']} | "
                + " | ".join(_fmt(c) for c in cells)
                + " |"
            )
    flagged = fracture.get("grade>=2_flagged")
    if flagged:
        lines += [
            "",
            "Grade >= 2 fractures the product flags (graded >= 1: listed in fractured_levels, "
            f"the study positive): {flagged['found']} of {flagged['positives']} (sensitivity "
            f"{_fmt(flagged['sensitivity'])}); false positives, flagged vertebrae without a "
            f"grade >= 2 fracture: {flagged['false_positives']} of {flagged['below_grade2']} "
            f"({_fmt(flagged['false_positive_rate'])}), of them normal: "
            f"{flagged['false_positives_normal']} of {flagged['normal']} "
            f"({_fmt(flagged['false_positive_rate_normal'])})",
        ]
    sources = fracture.get("sources") or {}
    if sources:
        lines += [
            "",
            "Vertebra AUC of each opinion alone (the scores above blend them): "
            + "; ".join(
                f"{name} {_fmt(a['grade>=1'])} (grade >= 1), {_fmt(a['grade>=2'])} (grade >= 2)"
                for name, a in sources.items()
            ),
        ]
    lines += [
        "",
        f"Grade 1 vertebrae called fractured: {_fmt(fracture['grade1_detected_as_fracture'])}",
        "",
        "Grade confusion (rows true 0-3, columns predicted 0-3):",
        "",
        *[f"    {row}" for row in fracture["grade_confusion"]],
        "",
    ]
    return lines


def _height_lines(heights: dict[str, Any] | None) -> list[str]:
    if not heights:
        return ["- Height error: no heights known for these cases", ""]
    return [
        f"- Height error (pipeline morphometry on the predicted labels, mean of Ha, Hm, Hp): "
        f"mean {_fmt(heights['mean'])} mm, max {_fmt(heights['max'])} mm "
        f"over {heights['measured']} vertebrae",
        "",
    ]
