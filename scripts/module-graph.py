#!/usr/bin/env python3
"""Prints the module graph of crates/core (code only: comments and test modules are left
out), checks its layers and its cycles; exits 1 on a cycle or an arrow that points up.

The folders are the layers: engine/ (what a failover is) below app/ (what the entry points
do with it) below ops/ (what only operators run); aws/ is an adapter over the engine alone.
memory, lab, testing, cfe_tests, profile_tests and group_tests are test support (tests and the
developer tooling).
Usage: scripts/module-graph.py"""
import collections
import os
import re
import sys

SRC = os.path.join(os.path.dirname(__file__), "..", "crates", "core", "src")
LAYERS = ("engine", "app", "ops")
# What each layer may use (besides itself).
ALLOWED = {
    "engine": {"engine"},
    "app": {"engine", "app"},
    "ops": {"engine", "app", "ops"},
    "aws": {"engine", "aws"},
    "support": {"engine", "app", "ops", "aws", "support"},
}


def code(path):
    text = open(path).read()
    cut = re.search(r"#\[cfg\(test\)\]\s*(pub\(crate\) )?mod tests", text)
    if cut:
        text = text[: cut.start()]
    return "\n".join(l.split("//")[0] for l in text.splitlines())


def rs_files(path):
    if os.path.isfile(path):
        return [path]
    return [os.path.join(d, f) for d, _, fs in os.walk(path) for f in sorted(fs) if f.endswith(".rs")]


def modules():
    """module name -> (layer, files)."""
    out = {}
    for f in sorted(os.listdir(SRC)):
        path = os.path.join(SRC, f)
        name = f[:-3] if f.endswith(".rs") else f
        if f == "lib.rs":
            continue
        if f in LAYERS:
            for g in sorted(os.listdir(path)):
                if g == "mod.rs":
                    continue
                out[g[:-3] if g.endswith(".rs") else g] = (f, rs_files(os.path.join(path, g)))
        else:
            out[name] = ("aws" if name == "aws" else "support", rs_files(path))
    return out


def graph(mods):
    deps = collections.defaultdict(set)
    for m, (_, paths) in mods.items():
        for p in paths:
            s = code(p)
            found = re.findall(r"crate::(?:(?:engine|app|ops)::)?([a-z_]+)", s)
            deps[m].update(d for d in found if d != m and d in mods)
    return deps


def cycles(nodes, deps):
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(deps[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(nodes):
        if v not in index:
            visit(v)
    return out


mods = modules()
deps = graph(mods)
bad = []
for layer in ("engine", "app", "ops", "aws", "support"):
    for m in sorted(k for k, (l, _) in mods.items() if l == layer):
        print(f"{layer}/{m} -> {', '.join(sorted(deps[m])) or '-'}")
        for d in sorted(deps[m]):
            if mods[d][0] not in ALLOWED[layer]:
                bad.append(f"UPWARD: {layer}/{m} -> {mods[d][0]}/{d}")
found = cycles(mods, deps)
for c in found:
    print("CYCLE:", " ".join(c))
for b in bad:
    print(b)
sys.exit(1 if found or bad else 0)
