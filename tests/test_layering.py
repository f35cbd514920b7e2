"""Package layering, read from the source with ``ast`` (every import, also those inside functions).

Layers, lowest first; a module may import its own layer and the ones below, never one above:

0. ``errors``, ``utils`` (files, logging, CLI glue, curves, timing), ``keypoints`` (COCO-17
   metadata);
1. ``codecs``, ``models``;
2. ``data`` (its training transforms encode targets with the codecs; the codecs never read data);
3. ``config`` (checks every choice against the components that publish them);
4. ``dist`` (engines, fail-fast, launchers), ``engine``, ``evaluation``, ``deploy``;
5. ``tools`` (the commands behind ``scripts/*.py`` and the ``gluonpose-*`` entry points),
   ``benchmarks`` (speed measurements and side-by-side comparisons over the whole package),
   ``demo`` (the demo application: inputs, person detector, drawn previews) and the package
   root (``gluonpose/__init__.py``).

And no import circle between modules.
"""
import ast
import os

import pytest

PACKAGE = "gluonpose"
LAYERS = {"errors": 0, "utils": 0, "keypoints": 0, "codecs": 1, "models": 1, "data": 2, "config": 3,
          "dist": 4, "engine": 4, "evaluation": 4, "deploy": 4, "demo": 5, "benchmarks": 5, "tools": 5, "": 5}


def _modules(root):
    """{dotted module name: path} of every .py file of the package."""
    out = {}
    base = os.path.join(root, PACKAGE)
    for folder, _, files in os.walk(base):
        for name in files:
            if name.endswith(".py"):
                rel = os.path.relpath(os.path.join(folder, name), root)[:-3].split(os.sep)
                if rel[-1] == "__init__":
                    rel = rel[:-1]
                out[".".join(rel)] = os.path.join(folder, name)
    return out


def _imports(module, path, modules):
    """Package modules imported by ``module`` (relative imports resolved; ``from pkg import sub``
    counts ``pkg.sub`` when it is a module, else ``pkg``)."""
    is_pkg = os.path.basename(path) == "__init__.py"
    parts = module.split(".")
    found = set()
    for node in ast.walk(ast.parse(open(path, encoding="utf-8").read(), path)):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = parts if is_pkg else parts[:-1]
                anchor = anchor[:len(anchor) - (node.level - 1)]
                target = ".".join(anchor + ([node.module] if node.module else []))
            else:
                target = node.module
            names = [target + "." + a.name if target + "." + a.name in modules else target
                     for a in node.names]
        else:
            continue
        for name in names:
            if name == PACKAGE or name.startswith(PACKAGE + "."):
                while name not in modules and "." in name:     # attribute, not a module
                    name = name.rsplit(".", 1)[0]
                if name in modules and name != module:
                    found.add(name)
    return found


def _layer(module):
    rel = module[len(PACKAGE) + 1:] if module != PACKAGE else ""
    keys = [k for k in LAYERS if rel == k or rel.startswith(k + ".") or (k == "" and rel == "")]
    assert keys, "module %s is in no layer: add its folder to LAYERS" % module
    return LAYERS[max(keys, key=len)]


@pytest.fixture(scope="module")
def graph(repo_root):
    modules = _modules(repo_root)
    return {m: _imports(m, p, modules) for m, p in modules.items()}


def test_the_graph_is_read(graph):
    """The parser sees the imports it must see (relative, nested in functions, ``from pkg import sub``)."""
    assert "gluonpose.codecs.builder" in graph["gluonpose.evaluation.runner"]
    assert "gluonpose.data.sampler" in graph["gluonpose.engine.runner"]
    assert "gluonpose.evaluation.runner" in graph["gluonpose.engine.runner"]   # inside train()
    assert "gluonpose.codecs.layout" in graph["gluonpose.models.heads"]
    assert "gluonpose.models.zoo" in graph["gluonpose"]


def test_lower_layers_never_import_higher_ones(graph):
    bad = ["%s (layer %d) imports %s (layer %d)" % (m, _layer(m), d, _layer(d))
           for m, deps in sorted(graph.items()) for d in sorted(deps) if _layer(d) > _layer(m)]
    assert not bad, "\n".join(bad)


def _cycles(graph):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_cycle_finder_finds_a_circle():
    toy = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(toy) == [["a", "b", "c"]] and _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circles(graph):
    assert _cycles(graph) == []


def test_no_function_over_60_lines(repo_root):
    """Functions stay readable: none of the package or the scripts is longer than 60 lines."""
    long = []
    for top in (PACKAGE, "scripts"):
        for folder, _, files in os.walk(os.path.join(repo_root, top)):
            for name in files:
                if not name.endswith(".py"):
                    continue
                path = os.path.join(folder, name)
                for node in ast.walk(ast.parse(open(path, encoding="utf-8").read(), path)):
                    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                        lines = node.end_lineno - node.lineno + 1
                        if lines > 60:
                            long.append("%s:%d %s (%d lines)" % (os.path.relpath(path, repo_root),
                                                                  node.lineno, node.name, lines))
    assert not long, long
