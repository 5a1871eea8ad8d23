"""Build a results report (tables, paired comparison, plots) from evaluation folders and training runs.

    python scripts/report.py --out outputs/report --title "Twelfth session" \\
        --eval "r38 (the reference)=outputs/evals/r38_s10000" --eval "r40: shift 8=outputs/evals/r40_s10000" \\
        [--run r40=outputs/runs/r40_shift8] [--note "what every row has in common"]

Every ``--eval NAME=DIR`` needs ``DIR/eval_info.json`` (``worldmodel eval sim ... eval.out=DIR``); the first one is
the baseline of the paired table (the episodes both ran, exact McNemar). ``--run NAME=DIR`` adds training time and
loss curves from ``DIR/metrics.jsonl``. Writes ``OUT/README.md`` (``worldmodel.evaluation.report.build_report``)
and prints its path; the README's tables are regenerated this way, never typed.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _pairs(values: list[str], flag: str) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for value in values:
        name, sep, path = value.partition("=")
        if not sep or not name or not path:
            raise ValueError(f"{flag} takes NAME=DIR, got {value!r}")
        if name in out:
            raise ValueError(f"{flag} name {name!r} given twice")
        out[name] = Path(path)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True, help="report folder (created)")
    parser.add_argument("--eval", action="append", default=[], metavar="NAME=DIR", help="an evaluation folder")
    parser.add_argument("--run", action="append", default=[], metavar="NAME=DIR", help="a training run folder")
    parser.add_argument("--note", action="append", default=[], help="a sentence for the report's notes")
    parser.add_argument("--title", default="Report")
    args = parser.parse_args(argv)
    try:
        evals, runs = _pairs(args.eval, "--eval"), _pairs(args.run, "--run")
        if not evals:
            raise ValueError("nothing to report: give at least one --eval NAME=DIR")
        for name, d in evals.items():
            if not (d / "eval_info.json").is_file():
                raise ValueError(f"--eval {name}: {d / 'eval_info.json'} does not exist (run `worldmodel eval sim "
                                 f"... eval.out={d}` first)")
        for name, d in runs.items():
            if not d.is_dir():
                raise ValueError(f"--run {name}: {d} is not a folder")
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    from worldmodel.evaluation.report import build_report

    print(build_report(args.out, evals, runs, notes=args.note or None, title=args.title))
    return 0


if __name__ == "__main__":
    sys.exit(main())
