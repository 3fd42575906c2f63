"""Every code example in README.md and docs/*.md runs, every documented signature matches the
code, every ``magma-wino …`` command line in them parses.

The conventions (also in docs/index.md, "Code examples in the docs"):

* ```` ```python ```` blocks run: the blocks of one file in order, in one fresh interpreter
  (a subprocess, with a timeout), sharing one namespace, stdout discarded.  A block fails
  the test if it raises.
* A block that imports ``cupy`` (a GPU example) runs on the CPU against a CuPy stand-in:
  NumPy arrays from ``cp.random.*`` / ``cp.zeros`` / … with every dimension above 16
  divided by 8 (``(8, 64, 56, 56)`` → ``(8, 8, 7, 7)``, filters ``(128, 64, 3, 3)`` →
  ``(16, 8, 3, 3)``: channel counts shrink alike in x and w), ``cp.cuda.Stream`` a no-op,
  and the ``auto`` / ``cuda`` backends resolved to the emulator (the same kernel source).
  So the docs keep realistic shapes and the test stays fast.
* A block whose statements are all bare signatures ``name(param, key=default, *, …)``
  (docs/api.md) is not run: its parameters (names, kinds, order, literal defaults) must
  match ``inspect.signature`` of the object of that name in magma_wino.
* ``python3 - <<'PY' … PY`` heredocs in ```` ```sh ```` blocks run like a python block,
  in a fresh namespace.
* ``<!-- doctest: skip: REASON -->`` on the line before a fence skips that block; the
  reason is required and the list is kept tiny (at most MAX_SKIPPED blocks).
* ``magma-wino …`` and ``python -m magma_wino.<module> …`` command lines — in fenced
  sh / console / text blocks, indented code blocks and inline code — must parse: the
  real parser runs on them and is stopped right after parsing (``--help`` / ``--version``
  count as parsed).
* Output blocks (```` ```text ```` after "Output:") are illustrative and not compared.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import importlib
import importlib.util
import inspect
import io
import re
import shlex
import subprocess
import sys
import textwrap
import time
import types
from dataclasses import dataclass
from pathlib import Path
from unittest import mock

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOC_FILES = [ROOT / "README.md"] + sorted((ROOT / "docs").glob("*.md"))
MAX_SKIPPED = 3
TIMEOUT_S = 120
SKIP_RE = re.compile(r"<!--\s*doctest:\s*skip\s*:?\s*(?P<reason>.*?)\s*-->")
FENCE_RE = re.compile(r"^(?P<indent>\s*)(?P<fence>```+|~~~+)\s*(?P<info>[^`\s]*)[^`]*$")
HEREDOC_RE = re.compile(r"python3?\s+-\s+<<-?\s*(['\"]?)(?P<tag>\w+)\1")
COMMAND_LANGS = {"", "sh", "bash", "shell", "console", "text", "zsh"}


# --------------------------------------------------------------------------- extraction


@dataclass
class Block:
    path: Path
    line: int  # 1-based line of the first line of the body
    lang: str
    body: str
    skip: str | None = None  # the reason, when marked skip
    fresh: bool = False  # run in a fresh namespace (heredocs)

    @property
    def where(self) -> str:
        return f"{self.path.relative_to(ROOT) if self.path.is_relative_to(ROOT) else self.path}:{self.line}"


def fenced_blocks(path: Path, text: str | None = None) -> list[Block]:
    """The fenced code blocks of a markdown file (indented fences in list items too)."""
    lines = (path.read_text() if text is None else text).split("\n")
    out, i = [], 0
    while i < len(lines):
        m = FENCE_RE.match(lines[i])
        if not m:
            i += 1
            continue
        indent, fence = len(m["indent"]), m["fence"]
        j = i + 1
        while j < len(lines) and not re.match(rf"^\s*{re.escape(fence[0]) * len(fence)}+\s*$", lines[j]):
            j += 1
        body = "\n".join(ln[indent:] if ln[:indent].strip() == "" else ln for ln in lines[i + 1:j])
        prev = next((lines[k] for k in range(i - 1, -1, -1) if lines[k].strip()), "")
        skip = SKIP_RE.search(prev)
        out.append(Block(path, i + 2, m["info"].lower(), body, skip["reason"] if skip else None))
        i = j + 1
    return out


def heredoc_blocks(block: Block) -> list[Block]:
    """``python3 - <<'PY' … PY`` bodies inside a shell block, as python blocks."""
    lines, out, i = block.body.split("\n"), [], 0
    while i < len(lines):
        m = HEREDOC_RE.search(lines[i])
        if not m:
            i += 1
            continue
        j = i + 1
        while j < len(lines) and lines[j].strip() != m["tag"]:
            j += 1
        out.append(Block(block.path, block.line + i + 1, "python", "\n".join(lines[i + 1:j]), block.skip, True))
        i = j + 1
    return out


def _signature_chunks(body: str) -> list[str] | None:
    """The signatures of a block that consists only of ``name(params)`` lines, else None."""
    chunks, cur, depth = [], [], 0
    for ln in body.split("\n"):
        code = ln.split("#", 1)[0].rstrip()
        if not code and not cur:
            continue
        cur.append(code)
        depth += code.count("(") - code.count(")")
        if depth == 0:
            chunks.append(" ".join(c.strip() for c in cur))
            cur = []
    if cur or not chunks:
        return None
    for c in chunks:
        if not re.fullmatch(r"[A-Za-z_][\w.]*\(.*\)", c):
            return None
        try:
            ast.parse(f"def {c.split('(', 1)[0].split('.')[-1]}({c.split('(', 1)[1]}: pass")
        except SyntaxError:
            return None
    return chunks


def python_blocks(path: Path) -> list[Block]:
    out = []
    for b in fenced_blocks(path):
        if b.lang in ("python", "py", "python3"):
            out.append(b)
        elif b.lang in ("sh", "bash", "shell", "console"):
            out += heredoc_blocks(b)
    return out


def runnable(blocks: list[Block]) -> list[Block]:
    return [b for b in blocks if b.skip is None and _signature_chunks(b.body) is None]


# --------------------------------------------------------------------------- the runner (subprocess)

def _scaled(shape):
    """The CuPy stand-in's shapes: every dimension above 16 divided by 8 (at least 4)."""
    if shape is None:
        return None
    if isinstance(shape, int):
        shape = (shape,)
    return tuple(int(d) if d <= 16 else max(4, int(d) // 8) for d in shape)


def cupy_standin():
    """A ``cupy`` module for running GPU examples on the CPU (see the module docstring)."""
    import numpy as np

    rng = np.random.default_rng(0)
    cp = types.ModuleType("cupy")
    cp.__doc__ = "magma_wino docs test: CuPy stand-in (NumPy arrays, dimensions > 16 divided by 8)"

    def _cast(a, dtype):
        return a.astype(dtype if dtype is not None else np.float64, copy=False)

    cp.random = types.SimpleNamespace(
        standard_normal=lambda size=None, dtype=float: _cast(rng.standard_normal(_scaled(size)), dtype),
        normal=lambda loc=0.0, scale=1.0, size=None, dtype=float: _cast(rng.normal(loc, scale, _scaled(size)), dtype),
        uniform=lambda low=0.0, high=1.0, size=None, dtype=float: _cast(rng.uniform(low, high, _scaled(size)), dtype),
        random=lambda size=None, dtype=float: _cast(rng.random(_scaled(size)), dtype),
        rand=lambda *size, dtype=float: _cast(rng.random(_scaled(size)), dtype),
        randn=lambda *size, dtype=float: _cast(rng.standard_normal(_scaled(size)), dtype),
        randint=lambda low, high=None, size=None, dtype=int: rng.integers(low, high, _scaled(size)).astype(dtype),
        seed=lambda seed=None: None,
    )
    def _constructor(f):
        return lambda shape, dtype=float, *a, **k: f(_scaled(shape), dtype)

    cp.zeros, cp.ones, cp.empty = _constructor(np.zeros), _constructor(np.ones), _constructor(np.empty)
    cp.full = lambda shape, fill_value, dtype=None, *a, **k: np.full(_scaled(shape), fill_value, dtype)
    cp.asnumpy = lambda a, *args, **kw: np.asarray(a)
    cp.is_available = lambda: False
    cp.get_array_module = lambda *arrays: np

    class ndarray:  # no array is a CuPy array: magma_wino treats them all as host arrays
        pass

    cp.ndarray = ndarray

    class Stream:
        def __init__(self, *a, **k):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def synchronize(self):
            pass

        def use(self):
            return self

    cp.cuda = types.SimpleNamespace(
        Stream=Stream, Event=Stream, Device=lambda *a, **k: Stream(),
        get_current_stream=lambda *a, **k: Stream(), runtime=types.SimpleNamespace(deviceSynchronize=lambda: None),
    )
    cp.__getattr__ = lambda name: getattr(np, name)  # float32, asarray, abs, … (PEP 562)
    return cp


@contextlib.contextmanager
def gpu_example_on_the_emulator():
    """The CuPy stand-in in sys.modules and the auto / cuda backends resolved to the
    emulator (numpy when the emulator is not built), for one block."""
    from magma_wino import _backend

    target = "emulator" if _backend.extension("emulator", required=False) is not None else "numpy"
    real_resolve = _backend.resolve

    def resolve(backend, *arrays):
        return target if backend in ("auto", "cuda") else real_resolve(backend, *arrays)

    saved = sys.modules.get("cupy")
    sys.modules["cupy"] = cupy_standin()
    _backend.resolve = resolve
    try:
        yield
    finally:
        _backend.resolve = real_resolve
        if saved is None:
            sys.modules.pop("cupy", None)
        else:
            sys.modules["cupy"] = saved


def uses_cupy(body: str) -> bool:
    return re.search(r"^\s*(import\s+cupy\b|from\s+cupy\b)", body, re.M) is not None


def run_file(path: Path) -> int:
    """Run the python blocks of ``path`` in order (the subprocess side); 1 on the first failure."""
    import traceback

    ns: dict = {"__name__": "__docs__"}
    for b in runnable(python_blocks(path)):
        scope = {"__name__": "__docs__"} if b.fresh else ns
        code = compile("\n" * (b.line - 1) + textwrap.dedent(b.body), str(b.path), "exec")
        t0 = time.perf_counter()
        try:
            with contextlib.redirect_stdout(io.StringIO()):
                if uses_cupy(b.body):
                    with gpu_example_on_the_emulator():
                        exec(code, scope)
                else:
                    exec(code, scope)
        except BaseException:  # noqa: BLE001 - report anything a docs example raises
            print(f"{b.where}: the example raised:\n{traceback.format_exc()}", file=sys.stderr)
            return 1
        print(f"{b.where}: ok ({time.perf_counter() - t0:.2f} s)")
    return 0


# --------------------------------------------------------------------------- tests


def _files_with(kind) -> list[Path]:
    return [p for p in DOC_FILES if kind(p)]


@pytest.mark.parametrize("path", _files_with(lambda p: runnable(python_blocks(p))),
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_python_examples_run(path: Path) -> None:
    # A page whose examples use PyTorch (docs/training.md) needs the optional [torch] extra; its
    # blocks share one namespace, so without torch the whole page is skipped (CI installs torch).
    # docs/experiments.md needs the [experiments] extra (PyTorch and scikit-learn) likewise.
    bodies = [b.body for b in runnable(python_blocks(path))]
    uses_torch = any(re.search(r"^\s*(import|from)\s+(torch|magma_wino\.torch)\b", b, re.M) for b in bodies)
    if uses_torch and importlib.util.find_spec("torch") is None:
        pytest.skip(f"{path.relative_to(ROOT)}: its examples use PyTorch, which is not installed (the [torch] extra)")
    uses_jax = any(re.search(r"^\s*(import|from)\s+(jax|magma_wino\.jax)\b", b, re.M) for b in bodies)
    if uses_jax and importlib.util.find_spec("jax") is None:
        pytest.skip(f"{path.relative_to(ROOT)}: its examples use JAX, which is not installed (the [jax] extra)")
    uses_experiments = any(re.search(r"\bmagma_wino\.experiments\b|from magma_wino import experiments", b)
                           for b in bodies)
    missing = [m for m in ("torch", "sklearn") if importlib.util.find_spec(m) is None]
    if uses_experiments and missing:
        pytest.skip(f"{path.relative_to(ROOT)}: its examples need the [experiments] extra ({', '.join(missing)} "
                    f"not installed)")
    try:
        proc = subprocess.run([sys.executable, __file__, str(path)], capture_output=True, text=True,
                              timeout=TIMEOUT_S, cwd=ROOT)
    except subprocess.TimeoutExpired:
        pytest.fail(f"{path.relative_to(ROOT)}: the examples took over {TIMEOUT_S} s (shrink them)")
    assert proc.returncode == 0, proc.stderr[-6000:] or proc.stdout[-2000:]


def _resolve_name(name: str):
    """The object a documented signature names: magma_wino's exports, the plan classes'
    methods, then the public modules."""
    import magma_wino
    from magma_wino import layer

    if "." in name:
        mod, _, attr = name.rpartition(".")
        return getattr(importlib.import_module(mod if mod.startswith("magma_wino") else f"magma_wino.{mod}"), attr)
    places = [magma_wino, layer.WinogradConv2d]
    for mod in ("sparse", "pruning", "reference", "transforms", "accuracy", "cost", "errors", "conv", "layer"):
        places.append(importlib.import_module(f"magma_wino.{mod}"))
    for place in places:
        try:
            return getattr(place, name)
        except AttributeError:
            continue
    raise LookupError(name)


def _documented_params(chunk: str) -> list[tuple[str, str, object]]:
    name, _, rest = chunk.partition("(")
    fn = ast.parse(f"def f({rest}: pass").body[0]
    a = fn.args
    out = []
    pos = a.posonlyargs + a.args
    defaults = [None] * (len(pos) - len(a.defaults)) + list(a.defaults)
    kinds = ["POSITIONAL_ONLY"] * len(a.posonlyargs) + ["POSITIONAL_OR_KEYWORD"] * len(a.args)
    for arg, kind, d in zip(pos, kinds, defaults):
        out.append((arg.arg, kind, d))
    if a.vararg:
        out.append((a.vararg.arg, "VAR_POSITIONAL", None))
    for arg, d in zip(a.kwonlyargs, a.kw_defaults):
        out.append((arg.arg, "KEYWORD_ONLY", d))
    if a.kwarg:
        out.append((a.kwarg.arg, "VAR_KEYWORD", None))
    return out


def signature_blocks() -> list[tuple[Block, str]]:
    return [(b, c) for p in DOC_FILES for b in python_blocks(p) if b.skip is None
            for c in (_signature_chunks(b.body) or [])]


@pytest.mark.parametrize("block,chunk", signature_blocks(), ids=lambda v: v.where if isinstance(v, Block) else "")
def test_documented_signatures_match_the_code(block: Block, chunk: str) -> None:
    name = chunk.split("(", 1)[0]
    try:
        obj = _resolve_name(name)
    except LookupError:
        pytest.fail(f"{block.where}: `{name}` is documented but magma_wino has no such name")
    real = list(inspect.signature(obj).parameters.values())
    doc = _documented_params(chunk)
    want = [(p.name, p.kind.name) for p in real]
    got = [(n, k) for n, k, _ in doc]
    assert got == want, f"{block.where}: documented {name}({', '.join(n for n, _ in got)}) but the code has " \
                        f"{name}{inspect.signature(obj)}"
    for (n, _, d), p in zip(doc, real):
        if d is None or p.default is inspect.Parameter.empty:
            assert (d is None) == (p.default is inspect.Parameter.empty), \
                f"{block.where}: {name}: parameter {n}: default documented {ast.unparse(d) if d else 'none'}, " \
                f"code {p.default!r}"
            continue
        try:
            value = ast.literal_eval(d)
        except ValueError:
            continue  # not a literal (e.g. `...`): only its presence is checked
        assert value == p.default, f"{block.where}: {name}: {n}={ast.unparse(d)} documented, code has {p.default!r}"


def test_skipped_examples_are_few_and_give_a_reason() -> None:
    skipped = [b for p in DOC_FILES for b in fenced_blocks(p) if b.skip is not None]
    for b in skipped:
        assert b.skip, f"{b.where}: <!-- doctest: skip --> needs a reason"
    assert len(skipped) <= MAX_SKIPPED, f"too many examples skipped: {[b.where for b in skipped]}"


# ----------------------------------------------------------------- command lines

CMD_RE = re.compile(r"(?:^|[\s;&|(`$])((?:magma-wino|python3?\s+-m\s+magma_wino\.\w+)(?:\s[^`#;&|]*)?)")


def command_lines() -> list[tuple[str, str]]:
    """(where, command) for every magma-wino command line in code in the docs."""
    out = []
    for path in DOC_FILES:
        rel = path.relative_to(ROOT)
        lines = path.read_text().split("\n")
        in_fence, lang, prev_blank = None, "", True
        for n, ln in enumerate(lines, 1):
            m = FENCE_RE.match(ln)
            if in_fence is None and m:
                in_fence, lang = m["fence"], m["info"].lower()
                continue
            if in_fence is not None:
                if re.match(rf"^\s*{re.escape(in_fence)}\s*$", ln):
                    in_fence = None
                elif lang in COMMAND_LANGS:
                    if lang == "text" and not ln.lstrip().startswith("$"):
                        continue  # program output, except "$ command" lines
                    code = re.sub(r"^\s*\$\s+", "", _continued(lines, n - 1))
                    for c in CMD_RE.findall(code.split(" #", 1)[0]):
                        out.append((f"{rel}:{n}", c.strip()))
                continue
            if ln.startswith("    ") and prev_blank and ln.strip().startswith(("magma-wino ", "python")):
                for c in CMD_RE.findall(_continued(lines, n - 1).split(" #", 1)[0]):  # indented code block
                    out.append((f"{rel}:{n}", c.strip()))
            for span in re.findall(r"`([^`]+)`", ln):  # inline code
                if span.startswith(("magma-wino ", "python -m magma_wino.", "python3 -m magma_wino.")):
                    out.append((f"{rel}:{n}", span.strip()))
            prev_blank = ln.strip() == "" or (prev_blank and ln.startswith("    "))
    return out


def _continued(lines: list[str], i: int) -> str:
    """Line ``i`` joined with the lines it continues onto (trailing backslash)."""
    text = lines[i]
    while text.rstrip().endswith("\\") and i + 1 < len(lines):
        i += 1
        text = text.rstrip()[:-1] + " " + lines[i].strip()
    return text


def is_synopsis(command: str) -> bool:
    """``magma-wino validate [--quick] [--json FILE]``-style usage, not a command line."""
    return "[" in command or "..." in command or "…" in command


class _Parsed(Exception):
    def __init__(self, parser: argparse.ArgumentParser) -> None:
        super().__init__()
        self.parser = parser


def parse_only(command: str, parsers: list | None = None) -> str | None:
    """Run the command's real argument parser, stopped right after parsing; None when the
    command line parses, else the parser's message.  ``parsers`` collects the parser used."""
    from magma_wino import cli

    try:
        argv = shlex.split(command)
    except ValueError as exc:
        return f"not a shell command line: {exc}"
    if argv[0].startswith("python"):
        module = argv[2]
        entry = importlib.import_module(module).main
        args = argv[3:]
    else:
        entry, args = cli.main, argv[1:]
    real = argparse.ArgumentParser.parse_args

    def stop_after_parsing(self, args=None, namespace=None):
        real(self, args, namespace)
        raise _Parsed(self)

    err = io.StringIO()
    with mock.patch.object(argparse.ArgumentParser, "parse_args", stop_after_parsing), \
            contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        try:
            entry(args)
        except _Parsed as done:
            if parsers is not None:
                parsers.append(done.parser)
            return None
        except SystemExit as exc:
            if exc.code in (0, None):
                return None  # --help, --version
            return err.getvalue().strip() or f"exit status {exc.code}"
    return "the command ran without parsing its arguments"


def options_of(command: str) -> set[str]:
    """The option strings the (sub)command of ``command`` accepts."""
    words = shlex.split(command.replace("[", " ").replace("]", " ").replace("|", " "))
    n = 3 if words[0].startswith("python") else 2
    # nested subcommands (`magma-wino experiment prune`): the words up to the first option
    while n < len(words) and not words[n].startswith("-") and not words[n - 1].startswith("-") \
            and parse_only(" ".join(words[:n])) is not None:
        n += 1
    head = words[:n]
    parsers: list = []
    why = parse_only(" ".join(head), parsers)
    if why is not None:
        raise ValueError(f"`{' '.join(head)}` does not parse: {why}")
    parser = parsers[0]  # magma-wino's; python -m magma_wino.cli.<name>: the subcommand's own
    for word in head[1:]:  # down the subcommands named
        sub = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
        if sub is not None and word in sub.choices:
            parser = sub.choices[word]
    return {o for a in parser._actions for o in a.option_strings}


def test_documented_command_lines_parse() -> None:
    cmds = command_lines()
    assert len(cmds) >= 20, cmds  # the scan finds the docs' commands
    bad = []
    for where, cmd in cmds:
        if is_synopsis(cmd):  # usage: every option it names must exist
            try:
                unknown = sorted(set(re.findall(r"(?<![\w-])--?[A-Za-z][\w-]*", cmd)) - options_of(cmd))
            except ValueError as exc:
                bad.append((where, cmd, str(exc)))
                continue
            if unknown:
                bad.append((where, cmd, f"no such option(s) {unknown}"))
        elif (why := parse_only(cmd)) is not None:
            bad.append((where, cmd, why))
    assert not bad, "\n".join(f"{w}: `{c}`: {why}" for w, c, why in bad)


# ----------------------------------------------------------------- the extraction itself


def test_extraction_follows_the_conventions(tmp_path) -> None:
    md = tmp_path / "x.md"
    md.write_text(textwrap.dedent('''\
        Text `magma-wino validate --quick` and more.

        ```python
        a = 1
        ```

        * item

          ```python
          b = a + 1
          ```

        <!-- doctest: skip: needs a GPU driver -->
        ```python
        raise SystemExit
        ```

        ```python
        conv2d(x, w, bias=None, *, points=None)
        WinogradConv2d(w, bias=None,
                       padding=0)
        ```

        ```sh
        magma-wino bench --quick   # time it
        python3 - <<'PY'
        c = 3
        PY
        ```
        '''))
    blocks = python_blocks(md)
    assert [b.body for b in blocks][:2] == ["a = 1", "b = a + 1"]
    assert blocks[2].skip == "needs a GPU driver"
    assert _signature_chunks(blocks[3].body) == ["conv2d(x, w, bias=None, *, points=None)",
                                                 "WinogradConv2d(w, bias=None, padding=0)"]
    assert blocks[4].body == "c = 3" and blocks[4].fresh
    assert [b.body for b in runnable(blocks)] == ["a = 1", "b = a + 1", "c = 3"]
    assert _signature_chunks("import numpy as np\nnp.zeros(3)") is None
    assert _scaled((8, 64, 56, 56)) == (8, 8, 7, 7) and _scaled((128, 64, 3, 3)) == (16, 8, 3, 3)
    assert parse_only("magma-wino validate --quick --filter 3d") is None
    assert parse_only("magma-wino --version") is None
    assert parse_only("magma-wino cost --network vgg16") is None
    assert "invalid choice" in parse_only("magma-wino validate --backend opencl")
    assert parse_only("magma-wino accuracy --no-such-option") is not None
    assert {"--quick", "--json", "--backend"} <= options_of("magma-wino validate [--quick] [--json FILE]")
    assert "--totals-only" in options_of("magma-wino cost [--totals-only]")
    assert "--no-such-option" not in options_of("magma-wino validate [--no-such-option]")


if __name__ == "__main__":  # the subprocess of test_python_examples_run
    sys.exit(run_file(Path(sys.argv[1])))
