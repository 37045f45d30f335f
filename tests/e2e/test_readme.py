"""The README as a user reads it: every command it shows runs (those that train or evaluate for minutes with the
smoke profile), and every link into docs/ names a page of the documentation site, which builds with --strict."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
VENV = Path(sys.prefix)  # the environment running the tests: its iwae, tensorboard and mkdocs
BIN = VENV / "bin"
TIMEOUT = 600

# What a long command gets here so that it runs in seconds; a README command that trains or evaluates and is not
# listed fails test_every_readme_command_is_known, so a new one cannot go untested.
SMOKE = {
    "iwae train": "schedule=smoke progress=false",
    "iwae eval-nll": "k=50 examples=100",
    "iwae table1": "profile=smoke progress=false download=never",
    "make table1": "profile=smoke progress=false download=never",
}
SHORT = ("tensorboard", "make docs-serve", "make test")  # servers (checked while they serve) and this suite itself
# Commands the README's text names besides its code blocks: run after the quick start (make install: the set-up
# that every make target does first, this test's own environment)
INLINE = ("iwae runs", 'make table1 ARGS="datasets=[mnist]"', "make install")
SMOKE_RUN = "smoke-text-paper-sum-seed0"


def section(heading: str) -> str:
    """The README's text under `## heading`, up to the next `## `."""
    text = README.read_text()
    start = text.index(f"\n## {heading}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end > 0 else len(text)]


def commands(text: str) -> list[str]:
    """The command lines of the ```bash blocks in `text`, each without its comment."""
    lines = [line for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S) for line in block.splitlines()]
    return [re.sub(r"\s+#.*$", "", line).strip() for line in lines if line.strip()]


def inline_commands() -> list[str]:
    """The commands in the README's `code spans` (those that start with iwae or make)."""
    return [" ".join(c.split()) for c in re.findall(r"`((?:iwae|make) [^`]*)`", README.read_text())]


def kind(command: str) -> str:
    """The key of SMOKE or SHORT a command falls under ('' where none)."""
    return next((k for k in (*SMOKE, *SHORT) if command.startswith(k)), "")


def env() -> dict[str, str]:
    """A user's shell after `source .venv/bin/activate`: outputs go to ./outputs (no IWAE_OUTPUT_ROOT)."""
    skip = ("IWAE_OUTPUT_ROOT", "HYDRA_FULL_ERROR", "OC_CAUSE")
    base = {k: v for k, v in os.environ.items() if k not in skip}
    return {**base, "PATH": f"{BIN}{os.pathsep}{base.get('PATH', '')}", "PYTHONUNBUFFERED": "1"}


def run(command: str, cwd: Path) -> subprocess.CompletedProcess:
    """`command` as a shell runs it, with the smoke settings of its kind appended."""
    extra = SMOKE.get(kind(command), "")
    if command.startswith("make "):  # the Makefile's venv is this one; its install step is not redone here
        stamp = VENV / ".installed"
        args = re.search(r' ARGS="([^"]*)"', command)
        command = command[: args.start()] if args else command
        command = command.replace("make ", f"make -C {ROOT} VENV={VENV} -o {stamp} ", 1)
        command += f' ARGS="{args.group(1) + " " if args else ""}{extra} output_root={cwd / "outputs"}"'
    elif extra:
        command += " " + extra
    return subprocess.run(["bash", "-c", command], cwd=cwd, env=env(), capture_output=True, text=True,
                          timeout=TIMEOUT)


def serve(command: list[str], cwd: Path, url_from_output, check) -> None:
    """Start a server, wait for the URL it prints (url_from_output(output) -> url or None), then poll
    check(url) until it returns true; the server (its whole process group) is stopped after."""
    log = cwd / f"{command[0]}.log"
    with open(log, "w") as out:
        server = subprocess.Popen(command, cwd=cwd, env=env(), stdout=out, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert server.poll() is None, f"{command} ended:\n{log.read_text()}"
            url = url_from_output(log.read_text())
            try:
                if url and check(url):
                    return
            except OSError:
                pass  # not listening yet
            time.sleep(1)
        pytest.fail(f"{command} did not serve what it should in 120 s:\n{log.read_text()}")
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_every_readme_command_is_known() -> None:
    all_commands = commands(README.read_text())
    assert all_commands, "the README shows no command"
    unknown = [c for c in all_commands if not kind(c)]
    assert not unknown, f"README commands this test does not run (add them to SMOKE or SHORT): {unknown}"
    in_text = [c for c in inline_commands() if c not in all_commands and c not in INLINE]
    assert not in_text, f"commands in the README's text this test does not run (add them to INLINE): {in_text}"
    assert commands(section("Two commands")) == ["make table1", "make test"]  # the set-up commands come first
    assert README.read_text().index("make table1") < README.read_text().index("## Quick start")


@pytest.mark.slow
@pytest.mark.timeout(1200)  # five trainings, a sweep and two smoke tables: 8 minutes on a busy 2-core machine
def test_the_quick_start_and_make_table1_run_as_written(
    tmp_path: Path, mnist_data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("IWAE_DATA_DIR", str(mnist_data_dir))  # the real data, as conftest finds it
    quick_start = commands(section("Quick start"))
    assert len(quick_start) == 5, quick_start
    for command in quick_start:
        if command.startswith("tensorboard"):
            serve(shlex.split(command), tmp_path, tensorboard_url, sweep_runs_listed)
        else:
            result = run(command, tmp_path)
            assert result.returncode == 0, f"{command}:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            assert "Traceback" not in result.stderr, result.stderr
    runs = tmp_path / "outputs" / "runs" / "mnist"
    one_cell = json.loads((runs / "L1-iwae-k5" / SMOKE_RUN / "metrics.json").read_text())
    assert "test_nll" in one_cell  # eval-nll took the run just trained
    assert "| 2 | 50 |" in (tmp_path / "outputs" / "tables" / "smoke" / "table1.md").read_text()
    listed = run("iwae runs", tmp_path)
    assert listed.returncode == 0 and "L1-iwae-k5" in listed.stdout, listed.stdout + listed.stderr
    mnist_only = run('make table1 ARGS="datasets=[mnist]"', tmp_path)  # reads the runs trained above
    assert mnist_only.returncode == 0, mnist_only.stderr[-3000:]
    # make table1: both datasets; OMNIGLOT without its file (download=never here) leaves its cells empty, and
    # iwae table1 exits 4, which make reports as "Error 4" (make itself exits 2)
    result = run("make table1", tmp_path)
    if (mnist_data_dir / "omniglot").is_dir():
        assert result.returncode == 0, result.stderr[-3000:]
    else:
        assert result.returncode == 2 and "Error 4" in result.stderr, result.stderr[-3000:]
        assert "error: 12 of 24 Table 1 cells have no numbers" in result.stderr
    table = (tmp_path / "outputs" / "tables" / "smoke" / "table1.md").read_text()
    assert "OMNIGLOT" in table.upper() and "| 2 | 50 |" in table


def tensorboard_url(output: str) -> str | None:
    found = re.search(r"TensorBoard \S+ at (http://\S+?)/? ", output)
    return found.group(1) if found else None


def sweep_runs_listed(url: str) -> bool:
    """TensorBoard lists the sweep's four runs (each run directory's event files)."""
    listed = json.loads(fetch(f"{url}/data/runs"))
    wanted = {f"mnist/L1-{model}-k{k}/{SMOKE_RUN}" for model in ("vae", "iwae") for k in (5, 50)}
    return wanted <= set(listed)


def test_make_docs_serve_serves_the_site(tmp_path: Path) -> None:
    assert commands(section("Documentation")) == ["make docs-serve"]
    address = f"127.0.0.1:{free_port()}"
    command = ["make", "-C", str(ROOT), f"VENV={VENV}", "-o", str(VENV / ".installed"), "docs-serve",
               f"ARGS=--dev-addr {address}"]
    serve(command, tmp_path, lambda _: f"http://{address}", lambda url: "Getting started" in fetch(f"{url}/"))


def nav_pages() -> set[str]:
    """Every page named in mkdocs.yml's nav."""
    config = yaml.load((ROOT / "mkdocs.yml").read_text(), Loader=yaml.SafeLoader)

    def pages(node) -> list[str]:
        if isinstance(node, str):
            return [node]
        if isinstance(node, dict):
            return [p for value in node.values() for p in pages(value)]
        return [p for item in node for p in pages(item)]

    return set(pages(config["nav"]))


def test_every_readme_link_into_docs_resolves() -> None:
    links = re.findall(r"\]\((docs/[^)#\s]*)(?:#([^)\s]*))?\)", README.read_text())
    assert len(links) >= 10, links
    pages = nav_pages()
    for target, anchor in links:
        path = ROOT / target
        assert path.is_file(), f"README links to {target}, which does not exist"
        if path.suffix == ".md":
            assert path.relative_to(ROOT / "docs").as_posix() in pages, f"{target} is not in mkdocs.yml's nav"
        if anchor:
            assert f"{{ #{anchor} }}" in path.read_text() or anchor in slugs(path), f"{target}#{anchor}"


def slugs(page: Path) -> set[str]:
    """The anchors the site gives the page's headings (Python-Markdown's toc: lower case, words joined by -)."""
    headings = re.findall(r"^#+ (.*)$", page.read_text(), flags=re.M)
    return {re.sub(r"[\s]+", "-", re.sub(r"[^\w\s-]", "", h).strip().lower()) for h in headings}


def test_the_documentation_site_builds_strict(tmp_path: Path) -> None:
    mkdocs = BIN / "mkdocs"
    if not mkdocs.exists():
        pytest.skip("mkdocs is not installed (the dev extra installs it)")
    result = subprocess.run([str(mkdocs), "build", "--strict", "--site-dir", str(tmp_path / "site")], cwd=ROOT,
                            env={**env(), "NO_MKDOCS_2_WARNING": "1"}, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "site" / "results" / "index.html").is_file()
