"""server/ is in layers (STYLE.md, "server/ in layers"): checked on the
compiled objects of the build under test, so that what is checked is what
runs. A file depends on another when it references a symbol the other
defines (a call, or a function whose address it takes); callbacks handed
down at run time are not references, which is the point of them.

  core <- relay, cluster <- turn <- stun <- transport <- root (main, worker, metrics)

- no object references a symbol of a higher layer, nor of a sibling layer
  (relay and cluster know nothing of each other);
- no two files of server/ depend on each other in a circle, directly or
  through others;
- no file of a layer includes the header of a higher layer, and proto/,
  auth/ and conf/ include nothing of server/.
"""
import os
import re
import subprocess
import unittest

from ternd import ROOT, BUILD

RANK = {"core": 0, "relay": 1, "cluster": 1, "turn": 2, "stun": 3, "transport": 4, "": 5}


def layer(path):
    """server/turn/park.c -> "turn"; server/main.c -> "" (the root)."""
    parts = path.split("/")
    return parts[1] if len(parts) > 2 else ""


def server_sources():
    out = []
    for d, _, files in os.walk(os.path.join(ROOT, "server")):
        for f in files:
            if f.endswith((".c", ".h")):
                out.append(os.path.relpath(os.path.join(d, f), ROOT))
    return sorted(out)


def symbols(obj):
    """(defined, undefined) global symbol names of an object file."""
    p = subprocess.run(["nm", obj], capture_output=True, text=True, check=True)
    defined, undefined = set(), set()
    for line in p.stdout.splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[0] == "U":
            undefined.add(parts[1])
        elif len(parts) == 3 and parts[1] in "TDBR":
            defined.add(parts[2])
    return defined, undefined


def dependency_graph():
    objs = {}
    for src in server_sources():
        if src.endswith(".c"):
            obj = os.path.join(ROOT, BUILD, src[:-2] + ".o")
            if not os.path.exists(obj):
                raise unittest.SkipTest("no objects in %s (build first)" % BUILD)
            objs[src] = symbols(obj)
    owner = {}
    for src, (defined, _) in objs.items():
        for s in defined:
            owner[s] = src
    graph = {src: set() for src in objs}
    for src, (_, undefined) in objs.items():
        for s in undefined:
            if s in owner and owner[s] != src:
                graph[src].add(owner[s])
    return graph


def cycles(graph):
    """Strongly connected components with more than one file (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
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

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


class Layers(unittest.TestCase):
    def test_no_reference_to_a_higher_or_sibling_layer(self):
        bad = []
        for src, deps in sorted(dependency_graph().items()):
            for dep in sorted(deps):
                a, b = layer(src), layer(dep)
                if a != b and RANK[b] >= RANK[a]:
                    bad.append("%s -> %s" % (src, dep))
        self.assertEqual(bad, [], "references against the layers")

    def test_no_files_in_a_circle(self):
        self.assertEqual(cycles(dependency_graph()), [], "files that depend on each other in a circle")

    def test_no_include_of_a_higher_layer(self):
        inc = re.compile(r'^#include "server/(?:(\w+)/)?[\w.]+"', re.M)
        bad = []
        for src in server_sources():
            with open(os.path.join(ROOT, src)) as f:
                for sub in inc.findall(f.read()):
                    a, b = layer(src), sub
                    if a != b and RANK[b] >= RANK[a]:
                        bad.append("%s includes server/%s" % (src, b or "<root>"))
        for top in ("proto", "auth", "conf"):
            for name in os.listdir(os.path.join(ROOT, top)):
                if name.endswith((".c", ".h")):
                    with open(os.path.join(ROOT, top, name)) as f:
                        if '#include "server/' in f.read():
                            bad.append("%s/%s includes server/" % (top, name))
        self.assertEqual(bad, [])

    def test_the_graph_is_not_empty(self):
        # the check above must see real dependencies to mean anything
        g = dependency_graph()
        self.assertIn("server/relay/alloc.c", g["server/turn/turn_alloc.c"])
        self.assertIn("server/turn/turn_dispatch.c", g["server/stun/dispatch.c"])


if __name__ == "__main__":
    unittest.main()
