"""Code blocks of README.md and docs/*.md: collect, check and run them (used by tests/test_docs.py).

Rules (also in docs/README.md, "Writing docs"):

- Every fenced block names its language. ```python and ```bash blocks are checked; ```text (program
  output) and other languages (yaml, csv, ...) are not.
- A python or bash block runs offline unless the last non-blank line before its fence is
  `<!-- snippet: no-run (reason) -->`. A no-run python block is compiled, and every `eqv2_calc` module,
  name and attribute it imports or uses must exist, as must every keyword it passes to an `eqv2_calc`
  function or class. Every bash block (run or not) has each `eqv2 ...` command parsed by the real
  argparse parsers: the subcommands and every flag must exist and the arguments must parse.
- The runnable blocks of one page run in document order in one scratch directory, a fresh one per page
  (a later block may read the files an earlier block of the same page wrote). A python block starts with
  empty globals: it imports what it uses. Bash blocks run with `bash -euo pipefail`, `eqv2` being this
  checkout's command line. Both run offline (`EQV2_OFFLINE=1`, an empty model cache) with the embedded
  demo model, so keep them to small structures and a few seconds each.

Run by hand: `python tests/snippets.py` lists every block and runs the runnable ones.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import importlib
import inspect
import io
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CHECKED = ("python", "bash")
NO_RUN = re.compile(r"^<!--\s*snippet:\s*no-run\s*\((?P<reason>[^)]+)\)\s*-->$")
FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,})(?P<info>[^`]*)$")
BLOCK_TIMEOUT_S = 120


@dataclass(frozen=True)
class Block:
    """One fenced code block: `page` relative to the repo, `line` of its opening fence (1-based)."""

    page: str
    line: int
    language: str
    code: str
    no_run: str | None  # the reason, for a block marked no-run

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"


def doc_pages(repo: Path = REPO) -> list[Path]:
    """README.md and every docs/*.md."""
    return [repo / "README.md", *sorted((repo / "docs").glob("*.md"))]


def parse_blocks(path: Path, repo: Path = REPO) -> list[Block]:
    """Every fenced block of a Markdown file (fences may be indented, e.g. inside a list)."""
    lines = path.read_text().splitlines()
    page = path.relative_to(repo).as_posix()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening:
            i += 1
            continue
        indent, fence = opening["indent"], opening["fence"]
        language = opening["info"].strip().split(" ")[0].lower()
        body, j = [], i + 1
        while j < len(lines) and not (lines[j].strip().startswith(fence) and lines[j].strip().strip("`") == ""):
            body.append(lines[j][len(indent):] if lines[j].startswith(indent) else lines[j].lstrip())
            j += 1
        previous = next((lines[k].strip() for k in range(i - 1, -1, -1) if lines[k].strip()), "")
        marker = NO_RUN.match(previous)
        blocks.append(Block(page, i + 1, language, "\n".join(body) + "\n", marker["reason"].strip() if marker else None))
        i = j + 1
    return blocks


def all_blocks(repo: Path = REPO) -> list[Block]:
    return [block for path in doc_pages(repo) for block in parse_blocks(path, repo)]


# --- python: names and keywords of eqv2_calc -------------------------------------------------------

def _resolve(obj: object, path: str, name: str) -> tuple[object, str]:
    """`obj.name`, importing the submodule `path.name` where `obj` is a package without that attribute."""
    try:
        return getattr(obj, name), f"{path}.{name}"
    except AttributeError:
        if inspect.ismodule(obj):
            try:
                return importlib.import_module(f"{path}.{name}"), f"{path}.{name}"
            except ModuleNotFoundError:
                pass
        raise AttributeError(f"{path} has no attribute {name!r}") from None


def _keywords_problem(target: object, path: str, keywords: list[str]) -> str | None:
    if not callable(target) or not keywords:
        return None
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):
        return None
    parameters = signature.parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return None
    unknown = [k for k in keywords if k not in parameters]
    return f"{path}() has no keyword argument {', '.join(unknown)}" if unknown else None


def python_name_problems(code: str) -> list[str]:
    """Every `eqv2_calc` import, attribute and call keyword in `code` that does not exist."""
    tree = ast.parse(code)
    bound: dict[str, tuple[object, str]] = {}  # local name -> (eqv2_calc object, its dotted path)
    problems: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] != "eqv2_calc":
                    continue
                try:
                    module = importlib.import_module(alias.name)
                except ModuleNotFoundError as exc:
                    problems.append(f"import {alias.name}: {exc}")
                    continue
                if alias.asname:
                    bound[alias.asname] = (module, alias.name)
                else:
                    bound["eqv2_calc"] = (importlib.import_module("eqv2_calc"), "eqv2_calc")
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "eqv2_calc":
            try:
                module = importlib.import_module(node.module)
            except ModuleNotFoundError as exc:
                problems.append(f"from {node.module} import ...: {exc}")
                continue
            for alias in node.names:
                try:
                    bound[alias.asname or alias.name] = _resolve(module, node.module, alias.name)
                except AttributeError as exc:
                    problems.append(f"from {node.module} import {alias.name}: {exc}")

    def lookup(expr: ast.expr) -> tuple[object, str] | None:
        """The eqv2_calc object an expression `name.attr.attr` stands for (None: not an eqv2_calc name)."""
        if isinstance(expr, ast.Name):
            return bound.get(expr.id)
        if isinstance(expr, ast.Attribute):
            base = lookup(expr.value)
            if base is None or not (inspect.ismodule(base[0]) or inspect.isclass(base[0])):
                return None  # attributes of instances and results are not checked statically
            try:
                return _resolve(base[0], base[1], expr.attr)
            except AttributeError as exc:
                problems.append(str(exc))
        return None

    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
            lookup(node)
        elif isinstance(node, ast.Call):
            target = lookup(node.func)
            if target is not None:
                problem = _keywords_problem(target[0], target[1], [k.arg for k in node.keywords if k.arg])
                if problem:
                    problems.append(problem)
    return sorted(set(problems))


# --- bash: eqv2 commands against the argparse parsers ----------------------------------------------

def _own_parser(spec: str) -> argparse.ArgumentParser:
    module, name = spec.split(":")
    return getattr(importlib.import_module(module), name)()


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def command_lines(code: str) -> list[list[str]]:
    """The argument lists of every `eqv2 ...` command (also `python -m eqv2_calc.cli`, torchrun ...)."""
    commands = []
    text = code.replace("\\\n", " ")
    for line in text.splitlines():
        lexer = shlex.shlex(line, posix=True, punctuation_chars=";&|()<>")
        lexer.whitespace_split = True
        lexer.commenting = True
        try:
            tokens = list(lexer)
        except ValueError as exc:
            raise ValueError(f"cannot split {line!r}: {exc}") from None
        segment: list[str] = []
        for token in [*tokens, ";"]:
            if token and set(token) <= set(";&|()<>"):
                commands += _eqv2_arguments(segment)
                segment = []
            else:
                segment.append(token)
    return commands


def _eqv2_arguments(tokens: list[str]) -> list[list[str]]:
    while tokens and re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", tokens[0]):
        tokens = tokens[1:]  # VAR=value before a command
    if tokens and tokens[0] == "eqv2":
        return [tokens[1:]]
    if "-m" in tokens:
        i = tokens.index("-m")
        if i + 1 < len(tokens) and tokens[i + 1] == "eqv2_calc.cli":
            return [tokens[i + 2:]]
    return []


def eqv2_command_problem(arguments: list[str]) -> str | None:
    """Why `eqv2 ARGUMENTS` would not parse (unknown subcommand or flag, bad value), or None."""
    from eqv2_calc.cli import build_parser

    parser = build_parser()
    chain = [parser]
    for token in arguments:  # the subcommand path: first matching positional at each level
        choices = _subparsers(chain[-1])
        if token in choices:
            chain.append(choices[token])
        elif not token.startswith("-") and choices:
            return f"eqv2 {' '.join(arguments)}: unknown subcommand {token!r} (choices: {', '.join(choices)})"
    own = chain[-1].get_default("own_parser")
    if own:
        chain.append(_own_parser(own))
    known = {option for p in chain for option in p._option_string_actions}
    for token in arguments:
        flag = token.split("=", 1)[0]
        if flag.startswith("--") or (flag.startswith("-") and len(flag) == 2 and not flag[1].isdigit()):
            if flag not in known:
                return f"eqv2 {' '.join(arguments)}: no option {flag} (of eqv2 {' '.join(p.prog.split()[-1] for p in chain[1:])})"
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(io.StringIO()):
            args, extra = parser.parse_known_args(arguments)
            if own:
                chain[-1].parse_args(extra)
            elif extra:
                return f"eqv2 {' '.join(arguments)}: unrecognized arguments {' '.join(extra)}"
    except SystemExit as exc:
        if exc.code:  # --help and --version exit 0
            return f"eqv2 {' '.join(arguments)}: {stderr.getvalue().strip().splitlines()[-1]}"
    return None


def block_problems(block: Block) -> list[str]:
    """Static checks of a python or bash block (every block: syntax, names; run blocks also run)."""
    if block.language == "python":
        try:
            compile(block.code, block.id, "exec")
        except SyntaxError as exc:
            return [f"syntax error: {exc}"]
        return python_name_problems(block.code)
    if block.language == "bash":
        check = subprocess.run(["bash", "-n"], input=block.code, text=True, capture_output=True, check=False)
        if check.returncode:
            return [f"bash syntax: {check.stderr.strip()}"]
        return [p for arguments in command_lines(block.code) if (p := eqv2_command_problem(arguments))]
    return []


# --- running -----------------------------------------------------------------------------------------

def run_environment(scratch: Path) -> dict[str, str]:
    """Offline, this checkout's package and `eqv2`, an empty model cache, no GPU, plots without a display."""
    bin_dir = scratch / "bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    shim = bin_dir / "eqv2"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m eqv2_calc.cli "$@"\n')
    shim.chmod(0o755)
    python_path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH", "")]))
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}", "PYTHONPATH": python_path,
            "EQV2_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "EQV2_CACHE": str(scratch / "cache"),
            "CUDA_VISIBLE_DEVICES": "", "MPLBACKEND": "Agg"}


def _run_python(code: str, block_id: str) -> str | None:
    try:
        exec(compile(code, block_id, "exec"), {"__name__": "__main__"})
    except BaseException:  # noqa: BLE001 - the block's failure, reported with its traceback
        return traceback.format_exc(limit=-8)
    return None


def run_blocks(blocks: list[Block], scratch: Path) -> dict[str, dict]:
    """Run the runnable blocks, a page at a time in its own directory; {block id: {error, seconds}}.

    Runs in this process (python blocks) and subprocesses (bash blocks): call it in a fresh interpreter
    whose environment is `run_environment(scratch)` (the `__main__` of this module does).
    """
    results: dict[str, dict] = {}
    env = run_environment(scratch)
    os.environ.update(env)
    for page in dict.fromkeys(b.page for b in blocks):
        workdir = scratch / re.sub(r"[^A-Za-z0-9]+", "_", page)
        workdir.mkdir(parents=True, exist_ok=True)
        os.chdir(workdir)
        for block in (b for b in blocks if b.page == page and b.language in CHECKED and b.no_run is None):
            start = time.perf_counter()
            if block.language == "python":
                error = _run_python(block.code, block.id)
            else:
                try:
                    done = subprocess.run(["bash", "-euo", "pipefail", "-c", block.code], cwd=workdir, env=env,
                                          capture_output=True, text=True, timeout=BLOCK_TIMEOUT_S, check=False)
                    error = None if done.returncode == 0 else (
                        f"exit status {done.returncode}\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
                except subprocess.TimeoutExpired:
                    error = f"took longer than {BLOCK_TIMEOUT_S} s"
            results[block.id] = {"error": error, "seconds": round(time.perf_counter() - start, 2)}
    return results


def run_in_subprocess(blocks: list[Block], scratch: Path) -> dict[str, dict]:
    """`run_blocks` in a fresh interpreter (so the test process's state and cwd stay as they are)."""
    scratch.mkdir(parents=True, exist_ok=True)
    (scratch / "blocks.json").write_text(json.dumps([asdict(b) for b in blocks]))
    done = subprocess.run([sys.executable, str(Path(__file__)), "--run", str(scratch)],
                          env=run_environment(scratch), capture_output=True, text=True, check=False)
    results_file = scratch / "results.json"
    if not results_file.exists():
        raise RuntimeError(f"the snippet runner failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return json.loads(results_file.read_text())


def main() -> int:
    if sys.argv[1:2] == ["--run"]:
        scratch = Path(sys.argv[2])
        blocks = [Block(**b) for b in json.loads((scratch / "blocks.json").read_text())]
        results = run_blocks(blocks, scratch)
        (scratch / "results.json").write_text(json.dumps(results, indent=1))
        return 0
    blocks = [b for b in all_blocks() if b.language in CHECKED]
    for block in blocks:
        print(f"{block.id:<28} {block.language:<7} {'no-run: ' + block.no_run if block.no_run else 'run'}")
        for problem in block_problems(block):
            print(f"    PROBLEM {problem}")
    with tempfile.TemporaryDirectory() as scratch:
        for block_id, result in run_in_subprocess(blocks, Path(scratch)).items():
            print(f"{block_id:<28} {result['seconds']:>6.1f} s  {'ok' if not result['error'] else 'FAILED'}")
            if result["error"]:
                print(result["error"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
