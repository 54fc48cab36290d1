"""Run one fuzz case through anedoctor's command line and classify what happened.

Two ways to run a case, both with a per-case timeout and an address-space cap:

- ``fork`` (default): a child forked from this process, which has imported anedoctor once,
  runs the CLI's ``main`` with ``sys.argv`` set; the exit code, output and peak memory
  (``wait4`` rusage) are the child's own. Cheap (no 20 s interpreter start per case).
- ``subprocess``: a fresh ``python -m anedoctor.cli`` process, the cap set with
  ``resource.setrlimit(RLIMIT_AS)`` in ``preexec_fn``.

Outcomes: ``hang`` (killed at the timeout), ``crash`` (traceback, signal, or an exit code
other than 0/1/2), ``generic`` (the CLI's last-resort "unexpected ..." message), ``unnamed``
(a clean one-line error that names no file), ``clean`` (exit 2 with one line naming a file),
``ok`` (exit 0/1). Every case also checks that the inputs are unchanged and nothing was left behind.
"""

from __future__ import annotations

import hashlib
import os
import re
import resource
import signal
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

GiB = 1 << 30
BAD = ("hang", "crash", "generic", "unnamed")
Ran = tuple[int | None, str, bool, int]  # exit code (or -signal), stderr, hung, peak RSS bytes
GENERIC = re.compile(r"^anedoctor: error: unexpected [A-Za-z_.]+: ", re.M)  # the CLI's last-resort handler


@dataclass
class Outcome:
    kind: str
    code: int | None
    stderr: str
    seconds: float
    peak_rss: int  # bytes
    modified: list[str] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)


def snapshot(folder: Path) -> dict[str, str]:
    """Relative path -> content hash (or link target / file kind) of everything under ``folder``, links not followed."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(folder):
        for name in dirnames + filenames:
            path = Path(dirpath) / name
            rel = str(path.relative_to(folder))
            if path.is_symlink():
                out[rel] = "link:" + os.readlink(path)
            elif path.is_dir():
                out[rel] = "dir"
            elif path.is_file():
                out[rel] = hashlib.sha256(path.read_bytes()).hexdigest()
            else:
                out[rel] = "special"
    return out


def classify(code: int | None, stderr: str, hung: bool, names: list[str]) -> str:
    if hung:
        return "hang"
    if code is None or code < 0 or code not in (0, 1, 2) or "Traceback (most recent call last)" in stderr:
        return "crash"
    if code == 2:
        lines = [ln for ln in stderr.splitlines() if ln.strip()]
        if "ANEDOCTOR_DEBUG" in stderr or GENERIC.search(stderr):
            return "generic"
        one_line = len(lines) == 1 and lines[0].startswith("anedoctor: error: ")
        if not one_line or not any(n and n in lines[0] for n in names):
            return "unnamed"
        return "clean"
    return "ok"


def warm_up(model: Path) -> None:
    """Import what the CLI imports lazily (coremltools, torch: ~20 s) and check + run a seed once, so every
    forked case starts warm and the address-space cap measures the case, not the imports."""
    import coremltools  # noqa: F401
    import torch  # noqa: F401

    import anedoctor
    import anedoctor.cli  # noqa: F401
    import anedoctor.report.html  # noqa: F401

    anedoctor.check(str(model)).to_dict()
    anedoctor.run(str(model))


def address_cap(extra: int) -> int:
    """This process's address space plus ``extra`` bytes (torch alone maps about a gigabyte)."""
    with open("/proc/self/status") as f:
        size_kb = next(int(line.split()[1]) for line in f if line.startswith("VmSize:"))
    return size_kb * 1024 + extra


def run_forked(argv: list[str], cwd: Path, tmp: Path, timeout: float, cap: int) -> Ran:
    """Fork, run ``anedoctor ARGV`` in the child; (exit code or -signal, stderr, hung, peak RSS bytes)."""
    err_path = tmp / ".stderr"
    out_path = tmp / ".stdout"
    pid = os.fork()
    if pid == 0:  # child: never returns
        code = 70
        try:
            os.chdir(cwd)
            os.environ["TMPDIR"] = str(tmp)
            tempfile.tempdir = str(tmp)
            resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
            out_fd = os.open(out_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            err_fd = os.open(err_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            os.dup2(out_fd, 1)
            os.dup2(err_fd, 2)
            sys.stdout = open(1, "w", closefd=False)
            sys.stderr = open(2, "w", closefd=False)
            from anedoctor.cli import main

            sys.argv = ["anedoctor", *argv]
            try:
                main()
                code = 0
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        except BaseException:  # noqa: BLE001 - the child reports any escape as a crash with a traceback
            import traceback

            traceback.print_exc()
            code = 70
        finally:
            try:
                sys.stdout.flush()
                sys.stderr.flush()
            finally:
                os._exit(code)
    deadline = time.monotonic() + timeout
    hung = False
    while True:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            break
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            _, status, usage = os.wait4(pid, 0)
            hung = True
            break
        time.sleep(0.005)
    code = os.waitstatus_to_exitcode(status)
    stderr = err_path.read_text(errors="replace") if err_path.exists() else ""
    for p in (err_path, out_path):
        p.unlink(missing_ok=True)
    return code, stderr, hung, usage.ru_maxrss * 1024


def run_subprocess(argv: list[str], cwd: Path, tmp: Path, timeout: float, cap: int) -> Ran:
    """A fresh ``python -m anedoctor.cli ARGV`` with RLIMIT_AS set in preexec_fn."""
    import subprocess

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    env = dict(os.environ, TMPDIR=str(tmp))
    proc = subprocess.Popen(
        [sys.executable, "-m", "anedoctor.cli", *argv],
        cwd=cwd,
        env=env,
        preexec_fn=limit,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        errors="replace",
    )
    try:
        _, stderr = proc.communicate(timeout=timeout)
        hung = False
    except subprocess.TimeoutExpired:
        proc.kill()
        _, stderr = proc.communicate()
        hung = True
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # the largest child so far
    return proc.returncode, stderr, hung, peak


def is_output(rel: str, outputs: list[str]) -> bool:
    """``rel`` is an output the command may write, or inside one (a written ``.mlpackage`` folder)."""
    return any(o and (rel == o or rel.startswith(o + "/")) for o in outputs)


def run_case(
    argv: list[str],
    outputs: list[str],
    case_dir: Path,
    timeout: float = 30.0,
    mode: str = "fork",
    cap: int | None = None,
) -> Outcome:
    """Run one case in ``case_dir``; inputs are everything already there."""
    tmp = case_dir.parent / (case_dir.name + ".tmp")
    tmp.mkdir()
    before = snapshot(case_dir)
    start = time.monotonic()
    runner = run_forked if mode == "fork" else run_subprocess
    code, stderr, hung, peak = runner(argv, case_dir, tmp, timeout, cap or address_cap(2 * GiB))
    seconds = time.monotonic() - start
    after = snapshot(case_dir)
    modified = sorted(k for k, v in before.items() if after.get(k) != v and not is_output(k, outputs))
    leftovers = sorted(k for k in after if k not in before and not is_output(k, outputs))
    leftovers += [f"$TMPDIR/{p.name}" for p in tmp.iterdir()]
    names = [a for a in argv if a and not a.startswith("-")][1:] + [Path(a).name for a in argv[1:] if a]
    kind = classify(code, stderr, hung, names)
    return Outcome(kind, code, stderr.strip()[-2000:], seconds, peak, modified, leftovers)
