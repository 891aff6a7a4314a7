#!/usr/bin/env python3
"""Prints the `crate::` module graph of crates/core (code only: comments and test modules
are left out) and its cycles; exits 1 when there is a cycle. Usage: scripts/module-graph.py"""
import collections
import os
import re
import sys

SRC = os.path.join(os.path.dirname(__file__), "..", "crates", "core", "src")


def code(path):
    text = open(path).read()
    cut = re.search(r"#\[cfg\(test\)\]\s*(pub\(crate\) )?mod tests", text)
    if cut:
        text = text[: cut.start()]
    return "\n".join(l.split("//")[0] for l in text.splitlines())


def module_files():
    for f in sorted(os.listdir(SRC)):
        if f.endswith(".rs") and f != "lib.rs":
            yield f[:-3], [os.path.join(SRC, f)]
        elif os.path.isdir(os.path.join(SRC, f)):
            d = os.path.join(SRC, f)
            yield f, [os.path.join(d, g) for g in sorted(os.listdir(d)) if g.endswith(".rs")]


def graph():
    files = dict(module_files())
    deps = collections.defaultdict(set)
    for m, paths in files.items():
        for p in paths:
            s = code(p)
            found = re.findall(r"crate::([a-z_]+)", s)
            for group in re.findall(r"use crate::\{([^;]*)\};", s, re.S):
                found += re.findall(r"(?:^|[\s,{])([a-z_]+)(?:::|[,}\s])", " " + group)
            deps[m].update(d for d in found if d != m and d in files)
    return files, deps


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


files, deps = graph()
for m in sorted(files):
    print(f"{m} -> {', '.join(sorted(deps[m])) or '-'}")
found = cycles(files, deps)
for c in found:
    print("CYCLE:", " ".join(c))
sys.exit(1 if found else 0)
