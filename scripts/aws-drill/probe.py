#!/usr/bin/env python3
"""The field report's measurement: an HTTP GET every 0.1 s (5 s timeout), one log line each.

Used twice by the aws-drill kit (docs/aws-drill.md): in the kit itself, through the Elastic IP,
and on the lab's client instance, through the web subnet's route (the kit uploads this file to
the lab bucket; the client's user data runs it). Python 3 standard library only; on the client
the log is uploaded with the AWS CLI.

Each request is sent on schedule whatever the earlier ones are doing (as a curl loop started
every 0.1 s would be), so a path that stops answering shows one unanswered line per 0.1 s.
Log line: `<sent, ms since the epoch> <latency ms> <HTTP status or -> <body's first line or
the error>`, e.g. `1764403200123 4 200 unit A i-0abc` or `1764403200223 5000 - timed out`.
"""

import argparse
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

INTERVAL = 0.1
TIMEOUT = 5.0


class NoAnswer(Exception):
    """A request that got no HTTP answer (timeout, refused, unreachable)."""


def http_fetch(url, timeout):
    """One GET without proxies: (status, first line of the body)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def fetch():
        try:
            with opener.open(url, timeout=timeout) as r:
                return r.status, r.read(200).decode("utf-8", "replace")
        except urllib.error.HTTPError as e:
            return e.code, str(e.reason)
        except (urllib.error.URLError, socket.timeout, OSError) as e:
            reason = getattr(e, "reason", e)
            raise NoAnswer(str(reason) or type(reason).__name__) from None

    return fetch


def format_line(sent_ms, latency_ms, status, text):
    text = " ".join(str(text).split())[:120] or "-"
    return f"{sent_ms} {latency_ms} {status} {text}\n"


def parse_line(line):
    """(sent_ms, latency_ms, status or None, text) or None for a partial or foreign line."""
    parts = line.rstrip("\n").split(" ", 3)
    if len(parts) < 4:
        return None
    try:
        sent, latency = int(parts[0]), int(parts[1])
    except ValueError:
        return None
    status = None if parts[2] == "-" else int(parts[2]) if parts[2].isdigit() else None
    return sent, latency, status, parts[3]


def parse_log(text):
    """Every complete line of a probe log, in the order the requests were sent."""
    rows = [r for r in (parse_line(line) for line in text.splitlines(keepends=True) if line.endswith("\n")) if r]
    rows.sort(key=lambda r: r[0])
    return rows


class Prober:
    """Sends `fetch()` every `interval` s, each in its own thread, and appends a line per
    request to `log_path` when it completes. `fetch` returns (status, text) or raises."""

    def __init__(self, fetch, log_path, interval=INTERVAL, timeout=TIMEOUT, clock=time.time):
        self.fetch, self.log_path, self.interval, self.timeout = fetch, log_path, interval, timeout
        self.clock = clock
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = []
        self._loop = None
        open(log_path, "a").close()

    def _one(self, sent):
        start = time.monotonic()
        try:
            status, text = self.fetch()
        except NoAnswer as e:
            status, text = "-", e
        except Exception as e:  # a fetch that fails in any other way is a request without answer
            status, text = "-", f"{type(e).__name__}: {e}"
        latency = int((time.monotonic() - start) * 1000)
        line = format_line(int(sent * 1000), latency, status, text)
        with self._lock, open(self.log_path, "a") as f:
            f.write(line)

    def _run(self):
        next_at = time.monotonic()
        while not self._stop.is_set():
            t = threading.Thread(target=self._one, args=(self.clock(),), daemon=True)
            t.start()
            self._threads.append(t)
            self._threads = [x for x in self._threads if x.is_alive()]
            next_at += self.interval
            delay = next_at - time.monotonic()
            if delay < 0:  # fell behind (a suspended machine): keep the cadence from now
                next_at, delay = time.monotonic(), 0
            self._stop.wait(delay)

    def start(self):
        self._loop = threading.Thread(target=self._run, daemon=True)
        self._loop.start()
        return self

    def stop(self, wait=True):
        """Stops sending; waits (up to the timeout) for the requests in flight to be logged."""
        self._stop.set()
        if self._loop:
            self._loop.join()
        if wait:
            deadline = time.monotonic() + self.timeout + 1
            for t in list(self._threads):
                t.join(max(0, deadline - time.monotonic()))


def aws_cli_uploader(log_path, s3_uri, region):
    def upload():
        subprocess.run(["aws", "s3", "cp", "--only-show-errors", "--region", region, log_path, s3_uri],
                       check=False, timeout=30)
    return upload


def aws_cli_stop_check(s3_uri, region):
    bucket, key = s3_uri[len("s3://"):].split("/", 1)

    def stopped():
        r = subprocess.run(["aws", "s3api", "head-object", "--region", region, "--bucket", bucket, "--key", key],
                           stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False, timeout=30)
        return r.returncode == 0
    return stopped


def run_client(prober, upload, stopped, every=2.0, max_seconds=7200, sleep=time.sleep):
    """The client's loop: probe, upload the log every `every` s, until `stopped()` or
    `max_seconds`; then a last upload with every request's line."""
    prober.start()
    started = time.monotonic()
    try:
        while time.monotonic() - started < max_seconds:
            sleep(every)
            upload()
            if stopped():
                break
    finally:
        prober.stop()
        upload()


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--url", required=True)
    p.add_argument("--log", required=True)
    p.add_argument("--interval", type=float, default=INTERVAL)
    p.add_argument("--timeout", type=float, default=TIMEOUT)
    p.add_argument("--upload", help="s3://bucket/key: upload the log there every 2 s (AWS CLI)")
    p.add_argument("--stop", help="s3://bucket/key: stop once this object exists")
    p.add_argument("--region", default="us-east-1")
    p.add_argument("--max-seconds", type=float, default=7200)
    a = p.parse_args(argv)
    prober = Prober(http_fetch(a.url, a.timeout), a.log, a.interval, a.timeout)
    upload = aws_cli_uploader(a.log, a.upload, a.region) if a.upload else (lambda: None)
    stopped = aws_cli_stop_check(a.stop, a.region) if a.stop else (lambda: False)
    run_client(prober, upload, stopped, max_seconds=a.max_seconds)
    return 0


if __name__ == "__main__":
    sys.exit(main())
