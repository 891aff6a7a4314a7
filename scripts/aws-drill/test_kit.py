"""The aws-drill kit's parts that need no cloud: the measurement (real HTTP on loopback), the
client's loop and its AWS CLI command lines (a stand-in `aws`), the gap, the timeline, the
plot, and that lab.yaml's user data agrees with probe.py and template.yaml's event rule with
the kit. Run by test-on-moto.sh: python -m unittest discover -s scripts/aws-drill."""

import json
import os
import re
import stat
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import xml.etree.ElementTree as ET
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import kit  # noqa: E402
import probe  # noqa: E402


def read(path):
    with open(path) as f:
        return f.read()


def unit_server(name, port=0):
    class H(BaseHTTPRequestHandler):
        def do_GET(self):
            body = f"unit {name} i-0{name.lower()}\n".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *a):
            pass

    srv = ThreadingHTTPServer(("127.0.0.1", port), H)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


class Measurement(unittest.TestCase):
    def test_line_format_round_trips_and_partial_lines_are_skipped(self):
        line = probe.format_line(1764403200123, 4, 200, "unit A  i-0abc\n")
        self.assertEqual(line, "1764403200123 4 200 unit A i-0abc\n")
        self.assertEqual(probe.parse_line(line), (1764403200123, 4, 200, "unit A i-0abc"))
        self.assertEqual(probe.parse_line("1764403200223 5000 - timed out\n"), (1764403200223, 5000, None, "timed out"))
        rows = probe.parse_log(line + "1764403200023 3 200 unit A i-0abc\n" + "17644032003")
        self.assertEqual([r[0] for r in rows], [1764403200023, 1764403200123])

    def test_real_http_on_loopback_unit_a_then_nothing_then_unit_b(self):
        """The real fetch path: a server naming unit A, then none on the port (refused),
        then one naming unit B; the kit's gap is measured across it."""
        a = unit_server("A")
        port = a.server_address[1]
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "eip.log")
            p = probe.Prober(probe.http_fetch(f"http://127.0.0.1:{port}/", 1.0), path, interval=0.05).start()
            time.sleep(0.5)
            stop_ms = kit.now_ms()
            a.shutdown()
            a.server_close()
            time.sleep(0.5)
            b = unit_server("B", port)
            time.sleep(0.5)
            p.stop()
            b.shutdown()
            b.server_close()
            rows = probe.parse_log(read(path))
        outcomes = [kit.who(r) for r in rows]
        self.assertEqual(outcomes[0], "unit A")
        self.assertEqual(outcomes[-1], "unit B")
        self.assertTrue(any(o.startswith("no answer") for o in outcomes))
        g = kit.gap(rows, stop_ms)
        self.assertGreater(g["unanswered"], 0)
        self.assertEqual(g["lastAnswer"]["by"], "unit A")
        self.assertEqual(g["nextAnswer"]["by"], "unit B")
        self.assertTrue(300 <= g["gapMs"] <= 1500, g)

    def test_requests_keep_their_cadence_when_answers_hang(self):
        def hang():
            time.sleep(0.5)
            raise probe.NoAnswer("timed out")
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "x.log")
            p = probe.Prober(hang, path, interval=0.05, timeout=0.5).start()
            time.sleep(0.5)
            p.stop()
            rows = probe.parse_log(read(path))
        self.assertGreaterEqual(len(rows), 8)  # sent every 0.05 s although each takes 0.5 s


class Client(unittest.TestCase):
    def test_loop_uploads_until_stopped_and_last_upload_has_every_line(self):
        uploads, checks = [], []
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "route.log")
            p = probe.Prober(lambda: (200, "unit A i-1"), path, interval=0.02)
            probe.run_client(p, lambda: uploads.append(read(path)), lambda: checks.append(1) or len(checks) >= 3,
                             every=0.1)
            final = read(path)
        self.assertEqual(len(checks), 3)
        self.assertEqual(uploads[-1], final)
        self.assertGreater(len(probe.parse_log(final)), 5)

    def test_the_clients_aws_cli_command_lines(self):
        """probe.py as lab.yaml's client runs it, with a stand-in `aws` that keeps the
        'bucket' in a folder: the log is uploaded, and client/stop ends the loop."""
        srv = unit_server("A")
        with tempfile.TemporaryDirectory() as d:
            bucket = os.path.join(d, "bucket")
            os.makedirs(os.path.join(bucket, "client"))
            fake = os.path.join(d, "aws")
            with open(fake, "w") as f:
                f.write(f"""#!/bin/sh
echo "$@" >> {d}/calls
if [ "$1 $2" = "s3 cp" ]; then shift 2
  while [ "${{1#--}}" != "$1" ]; do [ "$1" = --region ] && shift; shift; done
  cp "$1" {bucket}/"${{2#s3://lab/}}"; exit 0; fi
if [ "$1 $2" = "s3api head-object" ]; then
  key=$(echo "$@" | sed 's/.*--key //'); [ -f {bucket}/"$key" ]; exit $?; fi
exit 2
""")
            os.chmod(fake, os.stat(fake).st_mode | stat.S_IEXEC)
            env = dict(os.environ, PATH=f"{d}:{os.environ['PATH']}")
            proc = subprocess.Popen([sys.executable, os.path.join(HERE, "probe.py"), "--url", f"http://127.0.0.1:{srv.server_address[1]}/",
                                     "--log", os.path.join(d, "route.log"), "--upload", "s3://lab/client/route.log",
                                     "--stop", "s3://lab/client/stop", "--region", "eu-west-1", "--max-seconds", "30"], env=env)
            time.sleep(2.5)
            open(os.path.join(bucket, "client", "stop"), "w").close()
            self.assertEqual(proc.wait(10), 0)
            srv.shutdown()
            uploaded = probe.parse_log(read(os.path.join(bucket, "client", "route.log")))
            calls = read(os.path.join(d, "calls"))
        self.assertGreater(len(uploaded), 10)
        self.assertEqual(kit.who(uploaded[0]), "unit A")
        self.assertIn("s3 cp --only-show-errors --region eu-west-1", calls)
        self.assertIn("s3api head-object --region eu-west-1 --bucket lab --key client/stop", calls)


class Report(unittest.TestCase):
    def rows(self, spec):
        """'AAA..BB' -> rows 100 ms apart from t=0; '.' = no answer."""
        out = []
        for i, c in enumerate(spec):
            out.append((i * 100, 5, 200, f"unit {c} i-{c}") if c != "." else (i * 100, 5000, None, "timed out"))
        return out

    def test_gap_as_make_drill_measures_it(self):
        g = kit.gap(self.rows("AAAA....BBB"), stop_ms=350)
        self.assertEqual((g["unanswered"], g["gapMs"]), (4, 500))
        self.assertEqual((g["lastAnswer"]["by"], g["nextAnswer"]["by"]), ("unit A", "unit B"))

    def test_no_request_unanswered(self):
        g = kit.gap(self.rows("AAAABBB"), stop_ms=350)
        self.assertEqual((g["unanswered"], g["gapMs"], g["nextAnswer"]["by"]), (0, 0, "unit B"))
        self.assertIn("no request went unanswered", kit.gap_line("eip", g))

    def test_no_answer_came_back(self):
        g = kit.gap(self.rows("AA...."), stop_ms=150)
        self.assertIsNone(g["gapMs"])
        self.assertIn("no answer came back", kit.gap_line("route", g))

    def test_a_lost_request_before_the_stop_is_not_the_gap(self):
        g = kit.gap(self.rows("A.AAA..BB"), stop_ms=450)
        self.assertEqual(g["unanswered"], 2)

    def test_timeline_and_plot(self):
        paths = {"eip": self.rows("AAA..BB"), "route": self.rows("AAAA.BB")}
        events = [(250, "StopInstances i-a (unit A)"), (450, "API: EIP on unit B"), (480, "API: route 0.0.0.0/0 to unit B (active)")]
        gaps = {k: kit.gap(v, 250) for k, v in paths.items()}
        text = kit.timeline(paths, events, 250)
        self.assertIn("eip   200 from unit A", text)
        self.assertIn("x2", text)
        self.assertIn("** API: EIP on unit B", text)
        root = ET.fromstring(kit.svg(paths, events, 250, gaps, "t <&>"))
        self.assertTrue(root.tag.endswith("svg"))
        texts = " ".join(t.text or "" for t in root.iter("{http://www.w3.org/2000/svg}text"))
        self.assertIn("gap without answers", texts)
        self.assertIn("API: EIP on unit B", texts)

    def test_history_events_with_nanoseconds(self):
        ev = kit.history_events(json.dumps([{"runId": "r1", "trigger": "ec2:i-a stopping", "target": "i-b",
                                             "taskState": "SUCCEEDED", "message": "2 operation(s)",
                                             "startedAt": "2026-11-29T21:29:03.054541481Z", "durationMs": 105}]))
        self.assertEqual(len(ev), 2)
        self.assertEqual(ev[1][0] - ev[0][0], 105)
        self.assertIn("SUCCEEDED", ev[1][1])

    def test_cost_is_cents(self):
        total = float(kit.cost_lines("t3.nano")[-1].split("$")[1].split()[0])
        self.assertLess(total, 0.10)


class Consistency(unittest.TestCase):
    def test_lab_client_command_line_is_probe_pys(self):
        lab = read(os.path.join(HERE, "lab.yaml"))
        line = re.search(r"ExecStart=/usr/bin/python3 /usr/local/bin/drill-probe.py (.*)", lab).group(1)
        args = re.sub(r"\$\{[^}]+\}", "x", line).split()
        self.assertEqual(probe.main.__code__.co_varnames[0], "argv")
        import argparse
        real_parse = argparse.ArgumentParser.parse_args
        seen = {}

        def capture(self, argv=None, namespace=None):
            seen["a"] = real_parse(self, argv, namespace)
            raise SystemExit(0)
        argparse.ArgumentParser.parse_args = capture
        try:
            with self.assertRaises(SystemExit):
                probe.main(args)
        finally:
            argparse.ArgumentParser.parse_args = real_parse
        self.assertEqual(seen["a"].upload, "s3://x/client/route.log")
        self.assertEqual(seen["a"].stop, "s3://x/client/stop")

    def test_user_data_is_bash(self):
        lab = read(os.path.join(HERE, "lab.yaml"))
        scripts = re.findall(r"- \|\n((?:            .*\n|\n)+)", lab)
        self.assertEqual(len(scripts), 3)
        for s in scripts:
            body = re.sub(r"\$\{[A-Za-z:]+\}", "x", "\n".join(line[12:] for line in s.splitlines()))
            r = subprocess.run(["bash", "-n"], input=body, text=True, capture_output=True)
            self.assertEqual(r.returncode, 0, r.stderr)

    def test_both_units_run_the_same_user_data(self):
        lab = read(os.path.join(HERE, "lab.yaml"))
        a, b, client = re.findall(r"- \|\n((?:            .*\n|\n)+)", lab)
        self.assertEqual(a, b)  # what differs (unit name, VIP) comes from the !Sub variables

    def test_member_state_rule_is_the_templates(self):
        template = read(os.path.join(ROOT, "template.yaml"))
        states = re.search(r"instance-id: \[!Ref MemberAInstanceId, !Ref MemberBInstanceId\]\n\s+state: \[([^\]]+)\]", template)
        self.assertEqual([s.strip() for s in states.group(1).split(",")], kit.MEMBER_STATES)

    def test_iam_policy_is_a_managed_policy_and_names_the_runs_resources(self):
        text = read(os.path.join(HERE, "iam-policy.json"))
        doc = json.loads(text)
        self.assertLess(len("".join(json.dumps(doc).split())), 6144)  # IAM's managed policy limit
        scoped = [st for st in doc["Statement"] if st["Resource"] != "*"]
        for st in scoped:
            for r in st["Resource"] if isinstance(st["Resource"], list) else [st["Resource"]]:
                self.assertTrue("cfdrill-" in r or "ami-amazon-linux-latest" in r or "transform/Serverless" in r, r)
        self.assertTrue(kit.PREFIX == "cfdrill-")
        docs = read(os.path.join(ROOT, "docs", "aws-drill.md"))
        shown = re.search(r"```json\n(.*?)```", docs, re.S).group(1)
        self.assertEqual(json.loads(shown), doc, "docs/aws-drill.md shows another policy than iam-policy.json")

    def test_stack_parameters_exist_in_the_template(self):
        template = read(os.path.join(ROOT, "template.yaml"))
        params = template[template.index("Parameters:"):template.index("Conditions:")]
        src = read(os.path.join(HERE, "kit.py"))
        block = src[src.index("def sam_deploy"):src.index("log(f\"failover stack {run.cf_stack}: sam deploy")]
        for name in re.findall(r'"([A-Z][A-Za-z]+)": ', block):
            self.assertIn(f"\n  {name}:\n", params, name)


if __name__ == "__main__":
    unittest.main()
