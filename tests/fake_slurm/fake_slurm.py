#!/usr/bin/env python3
"""A stand-in for SLURM's commands (sbatch, squeue, sacct, scancel, sinfo, srun, sacctmgr) that
runs every job on this machine and records its submission, for testing the slurm profile
without a cluster.

The wrappers beside this file call ``fake_slurm.py <command> <args>``. State lives in
``$FAKE_SLURM_DIR``: ``submissions.jsonl`` (one JSON object per ``sbatch``: job id, job name,
comment, the options as given), ``<id>.sh`` (the job's script), ``<id>.pid`` and ``<id>.rc``
(its exit status once done). Standard library only: it runs with whatever ``python3`` is first
on ``PATH``.
"""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

ACCOUNT = "rhoflow-test"
STATE = Path(os.environ.get("FAKE_SLURM_DIR", "/tmp/fake_slurm"))
SBATCH_FLAGS = {"--parsable", "--requeue", "--no-requeue", "--exclusive"}
"""sbatch options without a value; any other option takes one (``--a=b``, ``--a b``, ``-ab``)."""


def _options(args: list[str], flags: set[str]) -> tuple[dict[str, str], list[str]]:
    """Options (``--name value``, ``--name=value``, ``-n value``, ``-n1``) and positionals."""
    options: dict[str, str] = {}
    rest: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        if arg.startswith("--") and "=" in arg:
            key, value = arg.split("=", 1)
            options[key] = value
        elif arg in flags:
            options[arg] = ""
        elif arg.startswith("--") or (arg.startswith("-") and len(arg) == 2):
            options[arg] = args[i + 1] if i + 1 < len(args) else ""
            i += 1
        elif arg.startswith("-") and len(arg) > 2:
            options[arg[:2]] = arg[2:]
        else:
            rest.append(arg)
        i += 1
    return options, rest


def _next_id() -> int:
    STATE.mkdir(parents=True, exist_ok=True)
    with open(STATE / "counter", "a+") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        fh.seek(0)
        job_id = int(fh.read() or 1000) + 1
        fh.seek(0)
        fh.truncate()
        fh.write(str(job_id))
    return job_id


def sbatch(args: list[str]) -> int:
    options, rest = _options(args, SBATCH_FLAGS)
    script = sys.stdin.read() if rest == ["/dev/stdin"] else "#!/bin/sh\n" + options["--wrap"]
    job_id = _next_id()
    name = options.get("--job-name", options.get("-J", ""))
    record = {"id": job_id, "name": name, "comment": options.get("--comment", ""),
              "options": options, "cwd": os.getcwd()}  # fmt: skip
    with open(STATE / "submissions.jsonl", "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        fh.write(json.dumps(record) + "\n")
    (STATE / f"{job_id}.sh").write_text(script)
    (STATE / f"{job_id}.name").write_text(name)
    log = options.get("--output", str(STATE / "%j.log")).replace("%j", str(job_id))
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, SLURM_JOB_ID=str(job_id), SLURM_JOBID=str(job_id),
               SLURM_CPUS_PER_TASK=options.get("--cpus-per-task", "1"))  # fmt: skip
    rc = STATE / f"{job_id}.rc"
    runner = 'sh "$1" > "$2" 2>&1; echo $? > "$3.tmp"; mv "$3.tmp" "$3"'
    proc = subprocess.Popen(
        ["/bin/sh", "-c", runner, "job", str(STATE / f"{job_id}.sh"), log, str(rc)],
        env=env, start_new_session=True, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    (STATE / f"{job_id}.pid").write_text(str(proc.pid))
    print(job_id)
    return 0


def _state(job_id: str) -> str:
    rc = STATE / f"{job_id}.rc"
    if (STATE / f"{job_id}.cancelled").exists():
        return "CANCELLED"
    if not rc.exists():
        return "RUNNING"
    return "COMPLETED" if rc.read_text().strip() == "0" else "FAILED"


def _jobs_named(name: str | None) -> list[str]:
    return sorted(p.stem for p in STATE.glob("*.name") if name is None or p.read_text() == name)


def job_table(args: list[str]) -> int:
    """sacct / squeue: ``<id>|<state>`` per job of the asked name (the run's uuid); sacct's
    account query (``-o Account``) answers the test account."""
    if any(a.lower().startswith("account") for a in args):
        print(ACCOUNT)
        return 0
    options, _ = _options(args, {"-X", "--parsable2", "--noheader", "--states=all"})
    for job_id in _jobs_named(options.get("--name")):
        print(f"{job_id}|{_state(job_id)}")
    return 0


def scancel(args: list[str]) -> int:
    _, ids = _options(args, set())
    for job_id in ids:
        pid = STATE / f"{job_id}.pid"
        if pid.exists():
            (STATE / f"{job_id}.cancelled").touch()
            try:
                os.killpg(int(pid.read_text()), signal.SIGTERM)
            except ProcessLookupError:
                pass
    return 0


def srun(args: list[str]) -> int:
    """Run the step's command here (``sh -s`` reads it from stdin)."""
    i = 0
    while i < len(args) and args[i].startswith("-"):
        i += 1
    os.execvp(args[i], args[i:])
    return 1


def main() -> int:
    command, args = Path(sys.argv[1]).name, sys.argv[2:]
    STATE.mkdir(parents=True, exist_ok=True)
    with open(STATE / "calls.log", "a") as fh:
        fh.write(json.dumps([command, *args]) + "\n")
    if command == "sbatch":
        return sbatch(args)
    if command in ("sacct", "squeue"):
        return job_table(args)
    if command == "scancel":
        return scancel(args)
    if command == "srun":
        return srun(args)
    if command == "sacctmgr":
        print(ACCOUNT)
        return 0
    if command == "sinfo":
        print("PARTITION AVAIL TIMELIMIT NODES STATE NODELIST\nlocal* up infinite 1 idle localhost")
        return 0
    print(f"fake_slurm: unknown command {command}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
