#!/usr/bin/env python3
"""Measures each Lambda bootstrap the way the Lambda service runs it: a local Runtime API
(this script) on loopback, the binary started with AWS_LAMBDA_RUNTIME_API pointing at it.
Init time = process start to its first GET /invocation/next (ready for the first event);
peak RSS = VmHWM after one invocation. The failover function runs one real failover on a
moto server holding the field report's topology.

usage: coldstart.py LAMBDA_DIR CLI MOTO_ENDPOINT DECLARATION_URI EVENT_FILE [RUNS]"""
import http.server, json, os, socketserver, statistics, subprocess, sys, threading, time

lambda_dir, cli, endpoint, decl_uri, event_file = sys.argv[1:6]
runs = int(sys.argv[6]) if len(sys.argv) > 6 else 5
event = open(event_file, "rb").read()

class State:
    ready = None
    served = False
    response = None
    done = threading.Event()

class Api(http.server.BaseHTTPRequestHandler):
    def log_message(self, *a):
        pass
    def do_GET(self):
        if not self.path.endswith("/invocation/next"):
            self.send_error(404); return
        if State.ready is None:
            State.ready = time.monotonic()
        if State.served:
            State.done.wait(30)  # hold the second poll until the process is measured and killed
            self.send_error(410); return
        State.served = True
        self.send_response(200)
        self.send_header("Lambda-Runtime-Aws-Request-Id", "bench-1")
        self.send_header("Lambda-Runtime-Deadline-Ms", str(int(time.time() * 1000) + 30000))
        self.send_header("Lambda-Runtime-Invoked-Function-Arn", "arn:aws:lambda:us-east-1:123456789012:function:bench")
        self.send_header("Content-Length", str(len(event)))
        self.end_headers()
        self.wfile.write(event)
    def do_POST(self):
        n = int(self.headers.get("Content-Length", 0))
        State.response = (self.path, self.rfile.read(n))
        self.send_response(202); self.end_headers(); self.wfile.write(b"{}")
        State.done.set()

class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True

def measure(binary):
    State.ready, State.served, State.response = None, False, None
    State.done = threading.Event()
    srv = Server(("127.0.0.1", 0), Api)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    env = dict(os.environ, AWS_LAMBDA_RUNTIME_API=f"127.0.0.1:{srv.server_address[1]}",
               AWS_LAMBDA_FUNCTION_NAME="bench", AWS_LAMBDA_FUNCTION_MEMORY_SIZE="128",
               AWS_LAMBDA_FUNCTION_VERSION="$LATEST", AWS_LAMBDA_LOG_FORMAT="JSON",
               AWS_LAMBDA_LOG_LEVEL="WARN", DECLARATION_URI=decl_uri, AWS_ENDPOINT_URL=endpoint,
               AWS_REGION="us-east-1", AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing",
               AWS_EC2_METADATA_DISABLED="true", CLOUD_FAILOVER_EMULATOR="moto")
    start = time.monotonic()
    p = subprocess.Popen([binary], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    State.done.wait(60)
    handled = time.monotonic()
    hwm = 0
    with open(f"/proc/{p.pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
    p.kill(); p.wait(); srv.shutdown(); srv.server_close()
    init_ms = (State.ready - start) * 1000 if State.ready else float("nan")
    path, body = State.response or ("", b"")
    return init_ms, (handled - start) * 1000, hwm / 1024, path.rsplit("/", 1)[-1], body

print("| function | stripped bootstrap | init (process start → ready), median of %d | first invocation end to end | peak RSS | answer |" % runs)
print("|---|---:|---:|---:|---:|---|")
for fn in ["failover", "probe", "inspect"]:
    binary = os.path.join(lambda_dir, fn, "bootstrap")
    size = os.path.getsize(binary) / 1e6
    results = [measure(binary) for _ in range(runs)]
    init = statistics.median(r[0] for r in results)
    total = statistics.median(r[1] for r in results)
    rss = max(r[2] for r in results)
    kind, body = results[0][3], results[0][4]
    try:
        j = json.loads(body)
        what = j.get("status") or j.get("errorType") or ("active " + str(j.get("active"))) if isinstance(j, dict) else ""
    except Exception:
        what = body[:60].decode(errors="replace")
    print(f"| {fn} | {size:.1f} MB | {init:.1f} ms | {total:.0f} ms | {rss:.1f} MB | {kind}: {what} |")
