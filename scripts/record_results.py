"""Put a profile's tables into the record, docs/results/<profile>/, and render their documented Markdown.

    .venv/bin/python scripts/record_results.py OUTPUT_ROOT PROFILE   # copies the four CSVs, writes table1/2.md
    .venv/bin/python scripts/record_results.py --render-only PROFILE  # re-renders the .md from the CSVs there
    .venv/bin/python scripts/record_results.py --frontier-figure DATASET SEED HOLDOUT  # redraws frontier.png

The frontier's figure of record (docs/results/frontier/frontier.png) is redrawn from its frontier.csv by
today's plotting code; DATASET, SEED and HOLDOUT are the ones the frontier was run with (its title says them).

The Markdown is made from the CSV files alone (iwae_cli.reports.tables.record), so the documentation, which
includes it, shows exactly the CSVs' numbers; tests/reports/test_record.py checks the committed files agree.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from iwae_cli.reports.tables.record import RECORD_TABLES, write_record

RECORDS = Path(__file__).resolve().parents[1] / "docs" / "results"


def main(args: list[str]) -> int:
    if len(args) == 4 and args[0] == "--frontier-figure" and args[2].isdigit() and args[3].isdigit():
        import pandas as pd  # the figure's libraries only where a figure is drawn

        from iwae_cli.reports.frontier import plot_frontier

        frontier = RECORDS / "frontier"
        marks = pd.read_csv(frontier / "frontier.csv")
        print(plot_frontier(marks, frontier / "frontier.png", int(args[3]), f"{args[1]}, seed {args[2]}"))
        return 0
    if len(args) != 2:
        print("\n".join(__doc__.strip().splitlines()[2:5]), file=sys.stderr)
        return 2
    source, profile = args
    record = RECORDS / profile
    if source != "--render-only":
        tables = Path(source) / "tables" / profile
        found = [tables / name for pair in RECORD_TABLES.values() for name in pair if (tables / name).is_file()]
        if not found:
            print(f"error: no table files in {tables}: run the profile's table commands there first", file=sys.stderr)
            return 2
        record.mkdir(parents=True, exist_ok=True)
        for path in found:
            shutil.copyfile(path, record / path.name)
    written = write_record(record)
    print("\n".join(str(p) for p in written) or f"error: no table of record in {record}", file=sys.stderr)
    return 0 if written else 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
