"""The C header documents every entry in Doxygen style (kernels/include/magma_wino.h).

Every `MW_API` function is directly preceded by its own `/** ... */` block with an `@param` for
each of its parameters (and for nothing else) and an `@return` unless it returns void; every
`typedef enum` / `typedef struct` and the public macros have a `/** ... */` block, and every
struct field and enum value a trailing `/**< ... */`.  The checks parse the header text with
regular expressions, so they run everywhere; where `doxygen` is installed it is run on the header
as well and must not warn."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
HEADER = ROOT / "kernels" / "include" / "magma_wino.h"

# `MW_API <return type> mw_name(<parameters>);` (no function-pointer parameters in this header).
_FUNCTION = re.compile(
    r"^MW_API\s+(?P<ret>[^;(]*?)\b(?P<name>mw_\w+)\s*\((?P<params>[^)]*)\)\s*;", re.M
)
_TYPEDEF = re.compile(
    r"^typedef\s+(?P<kind>enum|struct)\s+(?P<name>\w+)\s*\{(?P<body>.*?)\}\s*\w+\s*;", re.M | re.S
)
_MACROS = ("MW_VERSION_MAJOR", "MW_VERSION_MINOR", "MW_VERSION_PATCH", "MW_VERSION", "MW_MAX_NDIM",
           "MW_MAX_ALPHA", "MW_API")
_PARAM = re.compile(r"[@\\]param(?:\[[^\]]*\])?\s+(\w+(?:\s*,\s*\w+)*)")
_RETURN = re.compile(r"[@\\]returns?\b")
_GROUP_MARKER = re.compile(r"^/\*\*\s*(?:[@\\][{}]\s*)?\*/$")  # /** @{ */, /** @} */: no doc


def _doc_block_before(text: str, pos: int) -> str | None:
    """The `/** ... */` block that ends right before `pos` (only whitespace between), or None: a
    plain comment, a trailing `/**< */`, a group marker or code there is no documentation."""
    before = text[:pos].rstrip()
    if not before.endswith("*/"):
        return None
    start = before.rfind("/*")
    block = before[start:]
    if not block.startswith("/**") or block.startswith("/**<") or _GROUP_MARKER.match(block):
        return None
    return block


def _parameter_names(params: str) -> list[str]:
    """The names of a prototype's parameters: types, `const` and `*` stripped; `void` is none."""
    params = params.strip()
    if params in ("", "void"):
        return []
    return [re.findall(r"\w+", p)[-1] for p in params.split(",")]


def _documented_params(block: str) -> list[str]:
    return [n.strip() for names in _PARAM.findall(block) for n in names.split(",")]


def _functions(text: str) -> list[re.Match]:
    return list(_FUNCTION.finditer(text))


def _function_problems(text: str) -> list[str]:
    """What is wrong with the documentation of the header's functions (empty: nothing)."""
    problems = []
    for f in _functions(text):
        name, ret = f["name"], " ".join(f["ret"].split())
        block = _doc_block_before(text, f.start())
        if block is None:
            problems.append(f"{name}: no /** ... */ block directly before it")
            continue
        params, documented = _parameter_names(f["params"]), _documented_params(block)
        problems += [f"{name}: no @param {p}" for p in params if p not in documented]
        problems += [f"{name}: @param {p} is no parameter" for p in documented if p not in params]
        problems += [f"{name}: @param {p} twice" for p in set(documented)
                     if documented.count(p) > 1]
        if ret != "void" and not _RETURN.search(block):
            problems.append(f"{name}: returns {ret} but has no @return")
        if ret == "void" and _RETURN.search(block):
            problems.append(f"{name}: returns void but has an @return")
    return problems


def test_the_header_declares_the_c_abi_functions():
    text = HEADER.read_text()
    names = [f["name"] for f in _functions(text)]
    # The parse must see every declaration that starts with MW_API, each once (test_c_library
    # checks the same names against the shared libraries' exports).
    assert len(names) == len(re.findall(r"^MW_API\b", text, re.M)), names
    assert len(set(names)) == len(names), names
    assert {"mw_conv_get_geometry", "mw_gemm_batched_ex_ws", "mw_get_version"} <= set(names)


def test_every_c_entry_has_its_own_doc_block():
    text = HEADER.read_text()
    missing = [f["name"] for f in _functions(text) if _doc_block_before(text, f.start()) is None]
    assert missing == [], f"MW_API functions without a /** ... */ block before them: {missing}"


def test_every_c_entry_documents_each_of_its_parameters():
    problems = [p for p in _function_problems(HEADER.read_text()) if "@param" in p]
    assert problems == [], "\n".join(problems)


def test_every_c_entry_that_returns_a_value_documents_it():
    problems = [p for p in _function_problems(HEADER.read_text()) if "@return" in p]
    assert problems == [], "\n".join(problems)


def test_the_check_catches_one_removed_param():
    text = HEADER.read_text()
    line = re.search(r"^ \* @param \w+.*\n", text, re.M)
    assert line is not None
    mutated = text[: line.start()] + text[line.end():]
    assert any("no @param" in p for p in _function_problems(mutated))
    stray = text.replace(" * @param stream ", " * @param stream_ ", 1)
    assert any("is no parameter" in p for p in _function_problems(stray))


def test_every_typedef_enum_and_struct_has_a_doc_block():
    text = HEADER.read_text()
    typedefs = list(_TYPEDEF.finditer(text))
    assert len(typedefs) == len(re.findall(r"^typedef\s+(?:enum|struct)\b", text, re.M))
    missing = [t["name"] for t in typedefs if _doc_block_before(text, t.start()) is None]
    assert missing == [], f"typedefs without a /** ... */ block: {missing}"
    for t in re.finditer(r"^typedef\s+(?!enum|struct)[^;]*?(\w+)\s*;", text, re.M):
        assert _doc_block_before(text, t.start()) is not None, f"typedef {t[1]} has no /** */ block"


def test_every_struct_field_and_enum_value_has_a_trailing_doc_comment():
    text = HEADER.read_text()
    undocumented = []
    for t in _TYPEDEF.finditer(text):
        body = re.sub(r"/\*\*<.*?\*/", "@DOC@", t["body"], flags=re.S)
        body = re.sub(r"/\*.*?\*/", "", body, flags=re.S)  # plain comments document nothing
        if t["kind"] == "struct":
            for member in re.finditer(r"([^;@]+);\s*(@DOC@)?", body):
                names = re.findall(r"(\w+)\s*(?:\[[^\]]*\])?\s*(?:,|$)", member[1].strip())
                if "," in member[1]:  # one trailing comment documents only the last declarator
                    undocumented += [f"{t['name']}.{n}" for n in names[:-1]]
                if member[2] is None:
                    undocumented.append(f"{t['name']}.{names[-1]}")
        else:
            for value in re.finditer(r"\b([A-Za-z_]\w*)\s*(?:=\s*[^,@]*)?,?\s*(@DOC@)?", body):
                if value[2] is None:
                    undocumented.append(f"{t['name']}.{value[1]}")
    assert undocumented == [], f"no trailing /**< */ comment: {undocumented}"


@pytest.mark.parametrize("macro", _MACROS)
def test_every_public_macro_has_a_doc_block(macro):
    text = HEADER.read_text()
    define = re.search(rf"^#define {macro}\b", text, re.M)
    assert define is not None, f"no #define {macro}"
    # MW_API is defined in an #if / #else: the block stands before the conditional.
    start = define.start()
    conditional = re.compile(r"^#(?:if|ifdef|ifndef|elif|else)\b.*\n\Z", re.M)
    while (cond := conditional.search(text[:start])) is not None:
        start = cond.start()
    assert _doc_block_before(text, start) is not None, f"#define {macro} has no /** ... */ block"


# Doxygen 1.9.4 .. 1.12 (doxygen/doxygen#11147) warns "parameters of member X are not documented"
# and "return type of member X is not documented" for every function, documented or not, when XML
# is the only output.  A fully documented probe tells whether this doxygen has that bug; then those
# two messages are ignored (the text checks above cover them) and every other warning still counts.
_XML_ONLY_BUG = re.compile(
    r": warning: (?:parameters|return type) of member \w+ (?:are|is) not documented$"
)
_PROBE = """/** @file probe.h
 * A probe. */
/**
 * Adds one.
 * @param a  a number.
 * @return a + 1.
 */
int probe(int a);
"""


def _doxygen_warnings(tmp_path: Path, name: str, header: Path) -> list[str]:
    out = tmp_path / name
    out.mkdir()
    doxyfile = out / "Doxyfile"
    doxyfile.write_text("\n".join([
        f'INPUT = "{header}"',
        f'OUTPUT_DIRECTORY = "{out}"',
        "QUIET = YES",
        "WARNINGS = YES",
        "WARN_IF_UNDOCUMENTED = YES",
        "WARN_IF_DOC_ERROR = YES",
        "WARN_NO_PARAMDOC = YES",
        "EXTRACT_ALL = NO",
        "OPTIMIZE_OUTPUT_FOR_C = YES",
        "GENERATE_HTML = NO",
        "GENERATE_LATEX = NO",
        "GENERATE_XML = YES",
        "",
    ]))
    res = subprocess.run(
        ["doxygen", str(doxyfile)], cwd=out, capture_output=True, text=True, timeout=300
    )
    assert res.returncode == 0, res.stderr
    return [line for line in res.stderr.splitlines() if line.strip()]


@pytest.mark.skipif(shutil.which("doxygen") is None, reason="doxygen is not installed")
def test_doxygen_documents_the_header_without_warnings(tmp_path):
    probe = tmp_path / "probe.h"
    probe.write_text(_PROBE)
    probe_warnings = _doxygen_warnings(tmp_path, "probe", probe)
    buggy = bool(probe_warnings) and all(_XML_ONLY_BUG.search(w) for w in probe_warnings)
    assert buggy or probe_warnings == [], probe_warnings
    warnings = _doxygen_warnings(tmp_path, "header", HEADER)
    if buggy:
        warnings = [w for w in warnings if not _XML_ONLY_BUG.search(w)]
    assert warnings == [], "\n".join(warnings)
    xml = (tmp_path / "header" / "xml" / "magma__wino_8h.xml").read_text()
    for f in _functions(HEADER.read_text()):
        assert f"<name>{f['name']}</name>" in xml, f"{f['name']} is not in doxygen's reference"
