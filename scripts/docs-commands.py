#!/usr/bin/env python3
"""Runs the documentation's local commands as written (make docs-check, .ci/run).

Usage: scripts/docs-commands.py [-v] [FILE.md ...]   (default: README.md and docs/**/*.md;
-v prints every block's output, not only a failing one's)

A ```sh block is run when the line before it (blank lines aside) is the marker
<!-- ci: run -->. The marked blocks of one file run in order, in one bash with
`set -euo pipefail`, as a reader's shell would run them one after the other (what a block
exports or starts, e.g. `source scripts/moto.sh`, is there for the next). They run in a
throwaway copy of the working tree (tracked and untracked files, .gitignore'd ones left out;
`target` is a link to the build directory, the .venv* folders links to this checkout's) with
the environment `source scripts/moto.sh` leaves: a moto server this script starts on a free
loopback port (reset before each file), AWS_ENDPOINT_URL, AWS_REGION, dummy credentials and
CLOUD_FAILOVER_EMULATOR=moto; no AWS profile or credentials file is read. The CLI is on PATH
(last: target/debug, which this script builds first, as install.md leaves a reader), and
`cargo install` installs into the throwaway directory (its bin first on PATH). Blocks that
need real AWS are not marked.

Each failing block is printed with its file, line, first line and output; the exit status is 1
when any block failed (or a marker is not followed by a ```sh block).
"""

import glob
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MARKER = re.compile(r"^\s*<!--\s*ci:\s*run\s*-->\s*$")
FENCE_OPEN = re.compile(r"^(\s*)(```+)\s*(\S*)\s*$")
FILE_TIMEOUT = 900  # seconds per file


def blocks_of(path):
    """[(line number of the fence, lines)] of the marked sh blocks; raises on a bad marker."""
    lines = open(path, encoding="utf-8").read().split("\n")
    found = []
    i = 0
    while i < len(lines):
        if not MARKER.match(lines[i]):
            i += 1
            continue
        j = i + 1
        while j < len(lines) and not lines[j].strip():
            j += 1
        m = FENCE_OPEN.match(lines[j]) if j < len(lines) else None
        if not m or m.group(3) != "sh":
            raise ValueError(f"{os.path.relpath(path, ROOT)}:{i + 1}: <!-- ci: run --> is not followed by a ```sh block")
        indent, fence = len(m.group(1)), m.group(2)
        body = []
        k = j + 1
        while k < len(lines) and lines[k].strip() != fence:
            line = lines[k]
            body.append(line[indent:] if line[:indent].strip() == "" else line.lstrip())
            k += 1
        if k == len(lines):
            raise ValueError(f"{os.path.relpath(path, ROOT)}:{j + 1}: unclosed ```sh block")
        found.append((j + 1, body))
        i = k + 1
    return found


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def copy_tree(dest, target_dir):
    """The working tree as git sees it (tracked + untracked, not ignored), mtimes kept, so that
    cargo finds the build directory fresh."""
    out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         cwd=ROOT, check=True, capture_output=True).stdout
    for rel in out.decode().split("\0"):
        if not rel:
            continue
        src = os.path.join(ROOT, rel)
        if not os.path.lexists(src):  # deleted, not yet staged
            continue
        dst = os.path.join(dest, rel)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        if os.path.islink(src):
            os.symlink(os.readlink(src), dst)
        else:
            shutil.copy2(src, dst)
    os.makedirs(target_dir, exist_ok=True)
    os.symlink(target_dir, os.path.join(dest, "target"))
    for venv in (".venv", ".venv-sam", ".venv-iam"):
        if os.path.isdir(os.path.join(ROOT, venv)):
            os.symlink(os.path.join(ROOT, venv), os.path.join(dest, venv))


def start_moto(log_path):
    py = subprocess.run(["bash", os.path.join(ROOT, "scripts/ensure-moto.sh")], check=True,
                        capture_output=True, text=True).stdout.strip()
    port = free_port()
    proc = subprocess.Popen([py, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=open(log_path, "w"), stderr=subprocess.STDOUT)
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            break
        except OSError:
            time.sleep(0.1)
    else:
        proc.kill()
        raise RuntimeError("moto did not start")
    return proc, f"http://127.0.0.1:{port}"


def reset_moto(endpoint):
    req = urllib.request.Request(endpoint + "/moto-api/reset", method="POST", data=b"")
    urllib.request.urlopen(req, timeout=30).read()


def run_file(path, blocks, workdir, env, state):
    """Runs one file's blocks in one bash; returns [(line, first line, ok, seconds, output)]."""
    for f in glob.glob(os.path.join(state, "*")):
        os.remove(f)
    progress = os.path.join(state, "progress")
    script = ["set -euo pipefail", f"cd {sh_quote(workdir)}",
              "__cf_block() { printf '%s %s\\n' \"$1\" \"$(date +%s.%N)\" >>" + sh_quote(progress) +
              "; exec >" + sh_quote(state) + "/out.\"$1\" 2>&1; }"]
    for n, (_, body) in enumerate(blocks):
        script.append(f"__cf_block {n}")
        script.extend(body)
    script.append(f"__cf_block {len(blocks)}")
    proc = subprocess.Popen(["bash", "-c", "\n".join(script) + "\n"], cwd=workdir, env=env,
                            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                            stderr=open(os.path.join(state, "bash.err"), "w"),
                            start_new_session=True)
    timed_out = False
    try:
        proc.wait(timeout=FILE_TIMEOUT)
    except subprocess.TimeoutExpired:
        timed_out = True
    # Whatever a block left running in the background (a moto, a watcher) ends with the file.
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    proc.wait()
    end = time.time()
    marks = []
    if os.path.exists(progress):
        for line in open(progress):
            n, t = line.split()
            marks.append((int(n), float(t)))
    results = []
    for i, (n, t) in enumerate(marks):
        if n == len(blocks):
            break
        t_next = marks[i + 1][1] if i + 1 < len(marks) else end
        finished = i + 1 < len(marks)
        out_file = os.path.join(state, f"out.{n}")
        output = open(out_file, errors="replace").read() if os.path.exists(out_file) else ""
        if not finished:
            extra = open(os.path.join(state, "bash.err"), errors="replace").read()
            output += extra
            if timed_out:
                output += f"\n(timed out after {FILE_TIMEOUT} s)\n"
            else:
                output += f"\n(exit {proc.returncode})\n"
        line, body = blocks[n]
        first = next((l for l in body if l.strip()), "")
        results.append((line, first, finished, t_next - t, output))
    if not marks:
        results.append((blocks[0][0], "(setup)", False, 0.0,
                        open(os.path.join(state, "bash.err"), errors="replace").read()))
    return results


def sh_quote(s):
    return "'" + s.replace("'", "'\\''") + "'"


def main():
    args = sys.argv[1:]
    verbose = "-v" in args
    args = [a for a in args if a != "-v"]
    files = [os.path.abspath(a) for a in args] or (
        [os.path.join(ROOT, "README.md")]
        + sorted(glob.glob(os.path.join(ROOT, "docs", "**", "*.md"), recursive=True)))
    target_dir = os.path.abspath(os.environ.get("CARGO_TARGET_DIR") or os.path.join(ROOT, "target"))
    started = time.time()
    failed = 0
    bad_markers = 0
    plan = []
    for f in files:
        try:
            b = blocks_of(f)
        except ValueError as e:
            print(f"FAIL  {e}")
            bad_markers += 1
            continue
        if b:
            plan.append((f, b))
    # The CLI and the lab, as a reader who followed install.md has the CLI (on PATH, last).
    build = ["cargo", "build", "--bin", "cloud-failover", "--bin", "cf-lab"]
    print("docs-commands: " + " ".join(build), flush=True)
    subprocess.run(build, cwd=ROOT, check=True, env=dict(os.environ, CARGO_TARGET_DIR=target_dir))
    tmp = tempfile.mkdtemp(prefix="docs-commands.")
    moto = None
    try:
        workdir = os.path.join(tmp, "repo")
        copy_tree(workdir, target_dir)
        moto, endpoint = start_moto(os.path.join(tmp, "moto.log"))
        home = os.path.join(tmp, "cargo-install")
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("AWS_") and k not in ("CLOUD_FAILOVER_EMULATOR", "DECLARATION_URI",
                                                       "SCOPING_TAG_KEY")}
        env.update({
            # What `source scripts/moto.sh` exports.
            "AWS_ENDPOINT_URL": endpoint, "AWS_REGION": "us-east-1", "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_EC2_METADATA_DISABLED": "true", "CLOUD_FAILOVER_EMULATOR": "moto",
            # Never a real account: no profile, no credentials file.
            "AWS_CONFIG_FILE": os.devnull, "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "CARGO_TARGET_DIR": target_dir, "CARGO_INSTALL_ROOT": home,
            "PATH": os.pathsep.join([os.path.join(home, "bin"), os.environ.get("PATH", ""),
                                     os.path.join(target_dir, "debug")]),
            "SAM_CLI_TELEMETRY": "0", "TMPDIR": tmp,
        })
        state = os.path.join(tmp, "state")
        os.makedirs(state)
        total = 0
        for f, blocks in plan:
            rel = os.path.relpath(f, ROOT)
            reset_moto(endpoint)
            results = run_file(f, blocks, workdir, env, state)
            ran = len(results)
            for line, first, ok, secs, output in results:
                total += 1
                print(f"{'PASS' if ok else 'FAIL'}  {rel}:{line}  {first.strip()[:70]}  ({secs:.1f} s)", flush=True)
                if not ok:
                    failed += 1
                if verbose or not ok:
                    shown = output.rstrip().split("\n")
                    print("      " + "\n      ".join(shown if verbose else shown[-60:]), flush=True)
            for line, body in blocks[ran:]:
                first = next((l for l in body if l.strip()), "")
                print(f"SKIP  {rel}:{line}  {first.strip()[:70]}  (after a failure above)")
        print(f"docs-commands: {total} block(s) run in {len(plan)} file(s), {total - failed} passed, "
              f"{failed} failed{f', {bad_markers} bad marker(s)' if bad_markers else ''}, "
              f"{time.time() - started:.0f} s")
    finally:
        if moto:
            moto.terminate()
            moto.wait()
        shutil.rmtree(tmp, ignore_errors=True)
    sys.exit(1 if failed or bad_markers else 0)


if __name__ == "__main__":
    main()
