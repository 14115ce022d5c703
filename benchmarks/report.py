"""Saving a benchmark's figures: the JSON report and its chart beside it."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable


def pyplot():
    """matplotlib's pyplot on a file-only backend, or None where matplotlib is not installed
    (the figures are still printed and saved as JSON)."""
    try:
        import matplotlib
    except ImportError:
        return None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def save_report(report: dict, json_path: str, plot: Callable[[dict, Path], None]) -> None:
    path = Path(json_path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2))
    plot(report, path.with_suffix(".png"))
    print(f"wrote {path} and {path.with_suffix('.png').name}")
