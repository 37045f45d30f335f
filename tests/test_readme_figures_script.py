"""scripts/readme_figures.sh: the published results' commands in order, one output root, resumable; run here with a
stand-in `iwae` that records its arguments (the real commands take hours)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "readme_figures.sh"


def fake_iwae(tmp_path: Path) -> Path:
    """An `iwae` that appends its arguments to calls.txt and, for bench, writes the report bench would."""
    path = tmp_path / "iwae"
    path.write_text(
        "#!/usr/bin/env bash\n"
        f'echo "$*" >> {tmp_path}/calls.txt\n'
        'for a in "$@"; do case $a in output_root=*) root=${a#output_root=};; esac; done\n'
        'if [ "$1" = bench ]; then mkdir -p "$root/bench" && echo {} > "$root/bench/bench.json"; fi\n'
        'if [ "$1" = table-extra ]; then exit 4; fi\n'
    )
    path.chmod(0o755)
    return path


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "IWAE": str(fake_iwae(tmp_path))}
    return subprocess.run(["bash", str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=60)


def test_without_an_output_root_it_says_how_to_call_it(tmp_path: Path) -> None:
    result = run(tmp_path)
    assert result.returncode == 2 and "usage: bash scripts/readme_figures.sh OUTPUT_ROOT" in result.stderr
    assert not (tmp_path / "calls.txt").exists()


def test_every_command_in_order_under_one_root_and_a_rerun_skips_what_is_done(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = run(tmp_path, str(out))
    assert result.returncode == 1, result.stderr  # table-extra's stand-in exits 4: one step failed
    calls = (tmp_path / "calls.txt").read_text().splitlines()
    assert [c.split()[0] for c in calls] == [
        "table1", "table1", "table2", "table1", "table-extra", "grad-snr", "bench", "bench", "table1", "table1", "table2"
    ]
    assert calls[1] == f"table1 datasets=[mnist] seeds=[0,1,2] output_root={out}"
    assert calls[3].endswith(f"output_root={out}/binarized")  # its table1.* must not replace MNIST's
    assert calls[5].startswith(f"grad-snr run={out}/runs/mnist/L1-iwae-k50/quick-text-paper-sum-seed0 ")
    times = (out / "readme_figures.tsv").read_text().splitlines()
    assert times[0].split("\t")[:2] == ["step", "start_utc"] and len(times) == 1 + len(calls)
    assert [line.split("\t")[4] for line in times[1:]].count("4") == 1
    # run again: the tables are re-read (their runs resume or are found done), bench is not re-timed
    (tmp_path / "calls.txt").unlink()
    run(tmp_path, str(out))
    again = [c.split()[0] for c in (tmp_path / "calls.txt").read_text().splitlines()]
    assert again == ["table1", "table1", "table2", "table1", "table-extra", "grad-snr", "table1", "table1", "table2"]
    assert calls[-1] == f"table2 profile=medium seeds=[0,1,2] output_root={out}"
