"""Mutation testing of the security core: does the suite fail when the code is wrong?

Usage (what `make mutation` runs):
    .venv/bin/python scripts/mutation.py [MODULE ...] [--list] [--max-children N]

For each module (default: all below) it copies the tracked and new files of this checkout into
.mutation/work/<module>/, runs mutmut 3 there over that one module against its own test subset on SQLite
only, and reads back what happened to every mutant. It prints a score per module and each surviving mutant
with its diff, and writes the same to .mutation/report.md (not kept in git: it is a measurement of a moment;
docs/SECURITY.md quotes the figures). Mutants that cannot change behaviour are listed, each with a reason,
in scripts/mutation-equivalents.txt and left out of the score.

Modules run one at a time, each under `nice -n 10` with one mutmut worker, since the machine is shared.
Score = killed / (all mutants - equivalent ones); a timeout counts as killed (the suite did not pass), a mutant
no selected test reaches counts as survived. A run cut short leaves mutants "not checked": they are shown and
left out of the score, which is then marked partial; `--resume MODULE` checks just those. After adding tests, `--again MODULE` runs only that
module's surviving mutants once more, against this checkout's tests.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".mutation"
EQUIVALENTS = ROOT / "scripts" / "mutation-equivalents.txt"
TARGET = 0.90

# Test subsets per package, and per module where one needs more than its package's tests.
PACKAGE_TESTS: dict[str, list[str]] = {
    "app/crypto": ["tests/crypto"],
    # tests/security/test_auth_attacks.py is left out: it drives a server in another process, where mutmut
    # cannot see which mutant a test reached, and each run of it takes minutes.
    "app/auth": [
        "tests/auth",
        "tests/web/test_auth_pages.py",
        "tests/web/test_admin_pages.py",
        "tests/web/test_sign_in_stages.py",
    ],
    # The quiet-server checkpoint test is left out for the same reason: a live server in other processes, and
    # half a minute per mutant it reaches; the timer's own rule and checkpoint files are tested in-process.
    "app/audit": [
        "tests/audit",
        "tests/cases/test_bulk_read_alarm.py",
        "tests/cases/test_permissions.py",
        "--deselect",
        "tests/audit/test_checkpoint_timer.py::test_a_quiet_server_logs_a_checkpoint_that_verify_accepts",
        # Likewise the CLI round trips, which run the commands in child processes (seconds each).
        "--deselect",
        "tests/audit/test_keyed_chain.py::test_cli_head_and_verify_against_a_checkpoint",
        "--deselect",
        "tests/audit/test_chain.py::test_cli_audit_verify_names_the_edited_row",
    ],
}
MODULE_TESTS: dict[str, list[str]] = {
    "app/crypto/keyring.py": ["tests/crypto", "tests/lifecycle/test_rotation.py"],
    "app/crypto/service.py": ["tests/crypto", "tests/lifecycle/test_shred.py", "tests/lifecycle/test_reindex.py"],
    "app/cases/workflow.py": ["tests/cases"],
    "app/cases/permissions.py": ["tests/cases", "tests/security/test_access_matrix.py"],
    # The web pages reach passwords only through sign-in, which tests/auth drives directly.
    "app/auth/passwords.py": ["tests/auth"],
    # The account commands run in this process through app.cli.main (tests/cli runs them as child processes).
    "app/auth/cli.py": ["tests/auth/test_cli.py"],
    "app/audit/link.py": ["tests/audit/test_link_format.py", "tests/audit/test_keyed_chain.py"],
    # protect_network and pinned_sums are reached through the joint suppression of a year's releases.
    "app/stats/disclosure.py": [
        "tests/stats/test_disclosure.py",
        "tests/stats/test_disclosure_edges.py",
        "tests/stats/test_joint.py",
    ],
    # What is published and to whom: the release ledger, the joint check of everything released so far.
    "app/stats/ledger.py": ["tests/stats/test_ledger.py", "tests/stats/test_attacks.py", "tests/stats/test_api.py"],
    # joint is pure: its own hand-worked answers and the property attack over a year's releases, without the
    # database-backed ledger tests that reach it through release_month (tens of seconds per mutant).
    "app/stats/joint.py": [
        "tests/stats/test_joint.py",
        "tests/stats/test_attacks.py::test_no_combination_of_released_tables_determines_a_small_count",
    ],
    "app/stats/published.py": [
        "tests/stats/test_published.py",
        "tests/stats/test_ledger.py",
        "tests/stats/test_api.py",
    ],
    # The record-level file: its counts over both query paths, the plans on hand-worked and demo-like data, and
    # the file through the API. The property test is left out: it draws new data each run, and a mutant it
    # catches costs minutes of shrinking; the 200,000-row memory test and the CLI run other processes or minutes.
    "app/exports/records.py": [
        "tests/exports/test_records.py",
        "tests/exports/test_records_plan.py",
        "tests/exports/test_sdc.py",
        "tests/exports/test_api.py",
        "--deselect",
        "tests/exports/test_sdc.py::test_every_plan_is_k_anonymous_and_no_blank_can_be_filled_in",
    ],
    # What the caseworker's day added: notes and corrections, the coordinators' queue, search.
    "app/notes/service.py": ["tests/notes", "tests/web/test_caseworker_pages.py"],
    "app/attention/service.py": [
        "tests/attention",
        "tests/auth/test_duress_rules.py",
        "tests/web/test_caseworker_pages.py",
    ],
    "app/search/service.py": ["tests/search", "tests/web/test_caseworker_pages.py"],
    # What leaves the organisation and what a partner's package must pass. The two-installation and delivery
    # tests drive `helpline` processes and a live server, where mutmut cannot see which mutant a test reached;
    # the same checks run in-process through the services and the upload pages.
    "app/referrals/package.py": [
        "tests/referrals/test_package.py",
        "tests/referrals/test_receiving.py",
        "tests/referrals/test_pages.py::test_a_coordinator_imports_a_package_through_the_upload_page",
        "tests/referrals/test_pages.py::test_a_coordinator_imports_a_partners_answer_through_the_upload_page",
        "tests/referrals/test_refusal_reasons.py",
    ],
    # The sending side: which of a person's fields leave in a package, and who may record, refer and download.
    # Every in-process referral test (seconds on SQLite); the package is opened and read in test_sending.
    "app/referrals/service.py": [
        "tests/referrals/test_sending.py",
        "tests/referrals/test_api.py",
        "tests/referrals/test_pages.py",
        "tests/referrals/test_receiving.py",
        "tests/referrals/test_stats_release.py",
        "tests/referrals/test_consents_and_moves.py",
    ],
    "app/referrals/receiving.py": [
        "tests/referrals/test_receiving.py",
        "tests/referrals/test_pages.py::test_a_coordinator_imports_a_package_through_the_upload_page",
        "tests/referrals/test_pages.py::test_a_coordinator_imports_a_partners_answer_through_the_upload_page",
        "tests/referrals/test_refusal_reasons.py",
    ],
}
# Modules with no function bodies (mutmut mutates inside functions only) are skipped.
SKIP = {"__init__.py", "models.py", "schemas.py", "errors.py"}

KILLED = {"killed", "timeout", "segfault", "caught by type check"}
SURVIVED = {"survived", "no tests", "suspicious"}
UNCHECKED = {"not checked", "check was interrupted by user", "skipped"}


def modules() -> list[str]:
    found = [p for p in MODULE_TESTS if (ROOT / p).exists()]
    for package in PACKAGE_TESTS:
        for path in sorted((ROOT / package).glob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if path.name not in SKIP and rel not in found:
                found.append(rel)
    return sorted(found)


def tests_for(module: str) -> list[str]:
    if module in MODULE_TESTS:
        return MODULE_TESTS[module]
    return PACKAGE_TESTS[module.rsplit("/", 1)[0]]


@dataclass(frozen=True)
class Equivalent:
    function: str  # the mutant's name without its number: app.crypto.cipher.x_seal
    diff: tuple[str, ...]  # its "-"/"+" lines, stripped
    reason: str


def load_equivalents() -> list[Equivalent]:
    """Blocks separated by blank lines: the mutant name, its -/+ lines, and a `why:` line."""
    out: list[Equivalent] = []
    text = EQUIVALENTS.read_text(encoding="utf-8") if EQUIVALENTS.exists() else ""
    for block in re.split(r"\n\s*\n", text):
        lines = [line.strip() for line in block.splitlines() if line.strip() and not line.startswith("#")]
        if not lines:
            continue
        name, rest = lines[0], lines[1:]
        reasons = [line[4:].strip() for line in rest if line.startswith("why:")]
        diff = tuple(_norm(line) for line in rest if line[:1] in "-+")
        if len(reasons) != 1 or not diff:
            sys.exit(f"mutation: {EQUIVALENTS.name}: block for {name} needs -/+ lines and one 'why:' line")
        out.append(Equivalent(_function(name), diff, reasons[0]))
    return out


def _function(mutant: str) -> str:
    return re.sub(r"__mutmut_\d+$", "", mutant)


def _norm(line: str) -> str:
    return line[0] + " " + " ".join(line[1:].split())


@dataclass
class Result:
    module: str
    statuses: dict[str, str] = field(default_factory=dict)
    diffs: dict[str, tuple[str, ...]] = field(default_factory=dict)
    equivalent: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    error: str | None = None
    measured: str = ""  # when and on which commit, for results kept from an earlier run

    def count(self, kinds: set[str]) -> int:
        return sum(1 for n, s in self.statuses.items() if s in kinds and n not in self.equivalent)

    @property
    def scored(self) -> int:
        """Mutants that count: neither equivalent nor left unchecked by a run cut short."""
        return len(self.statuses) - len(self.equivalent) - self.count(UNCHECKED)

    @property
    def score(self) -> float | None:
        return self.count(KILLED) / self.scored if self.scored else None

    @property
    def survivors(self) -> list[str]:
        return [n for n, s in self.statuses.items() if s in SURVIVED and n not in self.equivalent]


def copy_checkout(dest: Path) -> None:
    if dest.exists():
        shutil.rmtree(dest)
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout.split(b"\0")
    for raw in files:
        if not raw:
            continue
        src = ROOT / raw.decode()
        if not src.is_file():
            continue  # deleted but not yet committed
        target = dest / raw.decode()
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(src, target)


def sync_tests(dest: Path) -> None:
    """Bring this checkout's tests into an earlier run's copy, leaving its mutated code as it was."""
    for target in (dest / "tests", dest / "mutants" / "tests"):
        shutil.copytree(ROOT / "tests", target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))


def configure(dest: Path, module: str) -> None:
    config = {
        "source_paths": ["app"],
        "only_mutate": [module],
        "pytest_add_cli_args_test_selection": tests_for(module),
        "pytest_add_cli_args": ["-p", "no:randomly", "-q", "-p", "no:cacheprovider"],
        "also_copy": ["migrations", "alembic.ini", "babel.cfg", "bench"],
    }
    lines = ["", "[tool.mutmut]"] + [f"{key} = {json.dumps(value)}" for key, value in config.items()]
    with (dest / "pyproject.toml").open("a", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")


def mutmut(dest: Path, *args: str, timeout: float | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HELPLINE_TEST_BACKENDS": "sqlite", "PYTHONDONTWRITEBYTECODE": "1"}
    command = ["nice", "-n", "10", str(Path(sys.executable).parent / "mutmut"), *args]
    return subprocess.run(command, cwd=dest, env=env, capture_output=True, text=True, timeout=timeout, check=False)


def run_module(
    module: str,
    *,
    max_children: int,
    equivalents: list[Equivalent],
    collect_only: bool,
    again: bool = False,
    resume: bool = False,
    only: tuple[str, ...] = (),
) -> Result:
    slug = module.removesuffix(".py").replace("/", ".")
    dest = WORK / "work" / slug
    started = time.monotonic()
    output = ""
    if again:
        survivors = collect(dest, module, equivalents).survivors
        if survivors:
            sync_tests(dest)
            run = mutmut(dest, "run", "--max-children", str(max_children), *survivors)
            output = (run.stdout[-2000:] + run.stderr[-2000:]).strip() or f"mutmut exited {run.returncode}"
    elif resume and (dest / "mutants" / f"{module}.meta").exists():
        run = mutmut(dest, "run", "--max-children", str(max_children))
        output = (run.stdout[-2000:] + run.stderr[-2000:]).strip() or f"mutmut exited {run.returncode}"
    elif not collect_only:
        copy_checkout(dest)
        configure(dest, module)
        run = mutmut(dest, "run", "--max-children", str(max_children), *only)
        output = (run.stdout[-2000:] + run.stderr[-2000:]).strip() or f"mutmut exited {run.returncode}"
    result = collect(dest, module, equivalents)
    result.seconds = time.monotonic() - started
    if result.error and output:
        result.error = output
    return result


def collect(dest: Path, module: str, equivalents: list[Equivalent]) -> Result:
    """Read what the last mutmut run in ``dest`` found: each mutant's status, and each survivor's diff."""
    result = Result(module)
    meta = dest / "mutants" / f"{module}.meta"
    if not meta.exists():
        result.error = f"no mutmut results in {dest.relative_to(ROOT)}"
        return result
    from mutmut.stats import status_by_exit_code  # the tool's own reading of its exit codes

    result.measured = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(meta.stat().st_mtime))
    codes = json.loads(meta.read_text())["exit_code_by_key"]
    result.statuses = {name: status_by_exit_code[code] for name, code in sorted(codes.items(), key=_natural)}
    for name, status in result.statuses.items():
        if status in SURVIVED:
            shown = mutmut(dest, "show", name).stdout
            result.diffs[name] = tuple(
                _norm(line)
                for line in shown.splitlines()
                if line[:1] in "-+" and not line.startswith(("---", "+++")) and line[1:].strip()
            )
            for eq in equivalents:
                if eq.function == _function(name) and eq.diff == result.diffs[name]:
                    result.equivalent[name] = eq.reason
    return result


def _natural(item: tuple[str, object]) -> tuple[str, int]:
    match = re.match(r"(.*__mutmut_)(\d+)$", item[0])
    return (match.group(1), int(match.group(2))) if match else (item[0], 0)


def save(result: Result) -> None:
    """Keep each module's latest result, so a run of one module still reports the others' last scores."""
    (WORK / "results").mkdir(parents=True, exist_ok=True)
    slug = result.module.removesuffix(".py").replace("/", ".")
    (WORK / "results" / f"{slug}.json").write_text(json.dumps(result.__dict__, indent=1), encoding="utf-8")


def earlier(modules: list[str]) -> list[Result]:
    out = []
    for path in sorted((WORK / "results").glob("*.json")):
        data = json.loads(path.read_text(encoding="utf-8"))
        if data["module"] not in modules:
            data["diffs"] = {k: tuple(v) for k, v in data["diffs"].items()}
            out.append(Result(**data))
    return out


def _measured() -> str:
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "app", "tests"], cwd=ROOT, capture_output=True)
    return (
        time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
        + f", {commit.stdout.strip()}"
        + (" with uncommitted changes" if dirty.stdout.strip() else "")
    )


def report(results: list[Result]) -> str:
    out = ["# Mutation testing", "", f"Target: at least {TARGET:.0%} of non-equivalent mutants killed per module.", ""]
    out += [
        "| module | mutants | equivalent | killed | timeout | survived | no tests | not checked | score | measured |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        if r.error:
            out.append(f"| {r.module} | error | | | | | | | | {r.measured} |")
            continue
        score = "n/a" if r.score is None else f"{r.score:.1%}" + ("" if r.score >= TARGET else " (below target)")
        if r.count(UNCHECKED):
            score += " (partial: of the checked mutants only)"
        out.append(
            f"| {r.module} | {len(r.statuses)} | {len(r.equivalent)} | {r.count({'killed'})} | "
            f"{r.count({'timeout'})} | {r.count({'survived', 'suspicious'})} | {r.count({'no tests'})} | "
            f"{r.count(UNCHECKED)} | {score} | "
            f"{r.measured} |"
        )
    for r in results:
        if r.error:
            out += ["", f"## {r.module}: mutmut failed", "", "```", r.error, "```"]
            continue
        if not r.survivors:
            continue
        out += ["", f"## Surviving mutants of {r.module}", ""]
        for name in r.survivors:
            out += [f"{name} ({r.statuses[name]})", *(f"    {line}" for line in r.diffs.get(name, ())), ""]
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", help="paths such as app/crypto/cipher.py (default: all)")
    parser.add_argument("--list", action="store_true", help="print the modules and their test subsets, then stop")
    parser.add_argument("--max-children", type=int, default=1, help="parallel mutmut workers (default 1)")
    parser.add_argument(
        "--collect", action="store_true", help="do not run: re-read the last run's results (after editing equivalents)"
    )
    parser.add_argument(
        "--resume", action="store_true", help="finish a run that was cut short: check only its unchecked mutants"
    )
    parser.add_argument(
        "--again",
        action="store_true",
        help="run only the last run's surviving mutants again, against this checkout's tests (after adding tests)",
    )
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="GLOB",
        help="a fresh run of only the mutants whose names match (e.g. 'app.auth.service.x_reset_totp*', "
        "a function changed since the last full run); the others stay unchecked",
    )
    args = parser.parse_args(argv)
    known = modules()
    chosen = args.modules or known
    unknown = [m for m in chosen if m not in known]
    if unknown:
        print(f"mutation: not a mutation target: {', '.join(unknown)} (see --list)", file=sys.stderr)
        return 2
    if args.list:
        for m in known:
            print(f"{m}: {' '.join(tests_for(m))}")
        return 0
    if shutil.which("mutmut", path=str(Path(sys.executable).parent)) is None:
        print("mutation: mutmut is not installed: pip install -e '.[mutation]'", file=sys.stderr)
        return 2
    equivalents = load_equivalents()
    WORK.mkdir(exist_ok=True)
    results: list[Result] = []
    for module in chosen:
        print(f"mutation: {module} against {' '.join(tests_for(module))} ...", flush=True)
        result = run_module(
            module,
            max_children=args.max_children,
            equivalents=equivalents,
            collect_only=args.collect,
            again=args.again,
            resume=args.resume,
            only=tuple(args.only),
        )
        if args.again:
            result.measured = f"survivors run again {_measured()}"
        elif not args.collect:
            result.measured = _measured()
        save(result)
        results.append(result)
        text = report(sorted(results + earlier([r.module for r in results]), key=lambda r: r.module))
        (WORK / "report.md").write_text(text, encoding="utf-8")
        summary = result.error and "mutmut failed" or f"score {result.score:.1%}" if result.score is not None else ""
        print(f"mutation: {module}: {summary} in {result.seconds:.0f} s", flush=True)
    print(text)
    print(f"mutation: report written to {(WORK / 'report.md').relative_to(ROOT)}")
    below = [r for r in results if r.error or (r.score is not None and r.score < TARGET)]
    return 1 if below else 0


if __name__ == "__main__":
    sys.exit(main())
