"""MkDocs hooks: the Reference pages' tables, generated from the code at build time.

A page asks for a table with a marker line, `<!-- generated: NAME -->`; the build replaces it
with GENERATORS[NAME]() (an unknown name fails the build). The sources are the code itself, so
a key, command, flag or output added there shows up in the documentation with no edit here:

- params: every key of the config classes in selectit/config.py, with its type, its value in
  params.yaml and the comments beside it in both files;
- cli: every command and flag of `selectit` (selectit.cli.build_parser);
- outputs: every file each stage writes (the stage registry selectit/stages.py), described by
  the docstrings of selectit/core/layout.py and the registry's notes;
- ratings-columns: the columns of ratings.parquet (selectit.scoring.tables.RATINGS_SCHEMA) with
  the comment beside each.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import re
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
# The project as checked out here, not wherever an editable install points.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

MARKER = re.compile(r"^<!-- generated: ([\w-]+) -->$", re.MULTILINE)


def _cell(text: str) -> str:
    """Text safe inside one Markdown table cell."""
    return " ".join(str(text).split()).replace("|", "\\|")


def _table(header: tuple[str, ...], rows: list[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


# --------------------------------------------------------------------------- params.yaml


def trailing_comment(text: str) -> str:
    """The comment after a YAML value on one line (a `#` inside quotes is part of the value)."""
    quote = None
    for i, char in enumerate(text):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (i == 0 or text[i - 1].isspace()):
            return text[i + 1 :].strip()
    return ""


def yaml_comments(text: str) -> tuple[dict[str, str], dict[str, str]]:
    """The comments of a params file: per dotted key (the comment on its line, and comment lines
    indented under it), and per section (the comment block right above it)."""
    keys: dict[str, str] = {}
    sections: dict[str, str] = {}
    path: list[tuple[int, str]] = []  # (indent, key) from the section down to the current key
    block: list[str] = []  # column-0 comment lines waiting for the section they introduce
    last: tuple[int, str] | None = None  # indent and dotted name of the latest key
    for line in text.splitlines():
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if not stripped:
            block = []
        elif stripped.startswith("#"):
            note = stripped.lstrip("#").strip()
            if indent == 0:
                block.append(note)
            elif last and indent > last[0]:
                keys[last[1]] = f"{keys.get(last[1], '')} {note}".strip()
        elif match := re.match(r"^\s*([\w-]+):(.*)$", line):
            while path and path[-1][0] >= indent:
                path.pop()
            path.append((indent, match[1]))
            dotted = ".".join(key for _, key in path)
            if indent == 0:
                sections[dotted] = " ".join(block)
                block = []
            if comment := trailing_comment(match[2]):
                keys[dotted] = comment
            last = (indent, dotted)
    return keys, sections


def field_comments(cls: type) -> dict[str, str]:
    """The comment beside each field in a dataclass's source (`name: type  # comment`)."""
    found = {}
    for line in inspect.getsource(cls).splitlines():
        if match := re.match(r"^\s+(\w+): [^#=]+#\s?(.*)$", line):
            found[match[1]] = match[2].strip()
    return found


def _own_doc(cls: type) -> str:
    """A class's docstring, not the signature dataclasses writes when there is none."""
    doc = inspect.getdoc(cls) or ""
    return "" if doc.startswith(cls.__name__ + "(") else doc


def _yaml_value(value: object) -> str:
    text = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True).strip()
    return text.removesuffix("...").strip()


def param_rows(cls: type, prefix: str, values: dict, notes: dict[str, str]) -> Iterator[tuple[str, ...]]:
    """(key, type, value in params.yaml, description) for every field of a config class; a nested
    config class gives its own keys, a mapping its entries."""
    comments = field_comments(cls)
    for field in dataclasses.fields(cls):
        key, value = f"{prefix}.{field.name}", values.get(field.name)
        kind = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", str(field.type))
        nested = getattr(sys.modules[cls.__module__], kind, None)
        if dataclasses.is_dataclass(nested):
            yield (f"`{key}`", "section", "", comments.get(field.name, ""))
            yield from param_rows(nested, key, value or {}, notes)
            continue
        # params.yaml's comment is what users read; the class's comment where the file has none.
        what = notes.get(key) or comments.get(field.name, "")
        # `int | None` would need an escaped pipe, which a code span in a table shows as written.
        yield (f"`{key}`", f"`{kind.replace(' | ', ' or ')}`", f"`{_yaml_value(value)}`", what)
        if isinstance(value, dict):
            for name, item in value.items():
                yield (f"`{key}.{name}`", "", f"`{_yaml_value(item)}`", notes.get(f"{key}.{name}", ""))


def params_reference(params_file: Path = ROOT / "params.yaml") -> str:
    from selectit.config import Params

    text = params_file.read_text(encoding="utf-8")
    values = yaml.safe_load(text)
    notes, section_notes = yaml_comments(text)
    parts = []
    for section in dataclasses.fields(Params):
        cls = getattr(sys.modules[Params.__module__], section.type)
        intro = [t for t in (section_notes.get(section.name) or _own_doc(cls),) if t]
        rows = list(param_rows(cls, section.name, values.get(section.name) or {}, notes))
        parts.append(f"## {section.name}\n")
        parts += [" ".join(t.split()) + "\n" for t in intro]
        parts.append(_table(("key", "type", "params.yaml", "what it sets"), rows) + "\n")
    return "\n".join(parts)


# --------------------------------------------------------------------------- the selectit command


def _subcommands(parser: argparse.ArgumentParser) -> tuple[dict[str, argparse.ArgumentParser], dict[str, str]]:
    (action,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(action.choices), {choice.dest: choice.help or "" for choice in action._choices_actions}


def _argument_rows(parser: argparse.ArgumentParser, overrides: dict[str, str]) -> list[tuple[str, ...]]:
    rows = []
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction | argparse._SubParsersAction):
            continue
        name = ", ".join(action.option_strings) or (action.metavar or action.dest)
        if action.option_strings and action.nargs != 0:
            name += f" {action.metavar or action.dest.upper()}" + (" ..." if action.nargs in ("+", "*") else "")
        what = (action.help or "").replace("%%", "%")
        if action.choices:
            what = f"{what}; one of: {', '.join(map(str, action.choices))}".lstrip("; ")
        if action.required and action.option_strings:
            what = f"(required) {what}".strip()
        key = overrides.get(action.dest)
        rows.append((f"`{name}`", what, f"`{key}`" if key else ""))
    return rows


def cli_reference() -> str:
    from selectit.cli import OVERRIDES, build_parser

    parser = build_parser()
    commands, helps = _subcommands(parser)
    parts = [
        "## Options of every command\n",
        "They come before the command: `selectit --params other.yaml score ...`.\n",
        _table(("argument", "what it does", "params key it overrides"), _argument_rows(parser, OVERRIDES)) + "\n",
    ]
    for name, command in commands.items():
        # A fixed width, so the page does not depend on the terminal that builds it.
        command.formatter_class = lambda prog: argparse.HelpFormatter(prog, width=100)
        usage = command.format_usage().removeprefix("usage: ").strip()
        parts += [f"## selectit {name}\n", f"{helps.get(name, '').replace('%%', '%')}\n", f"```\n{usage}\n```\n"]
        rows = _argument_rows(command, OVERRIDES)
        parts.append(_table(("argument", "what it does", "params key it overrides"), rows) + "\n")
    return "\n".join(parts)


# --------------------------------------------------------------------------- output files


def layout_docs() -> dict[str, str]:
    """Path (as dvc.yaml names it, `${item}` for a rater or variant) -> the docstring of the
    Layout attribute that gives it."""
    from selectit.core.layout import Layout
    from selectit.stages import DATA, ITEM

    docs = {}
    for name, attr in vars(Layout).items():
        if name.startswith("_"):
            continue
        if isinstance(attr, property):
            path, doc = attr.fget(DATA), inspect.getdoc(attr.fget)
        elif inspect.isfunction(attr) and len(inspect.signature(attr).parameters) == 2:
            path, doc = attr(DATA, ITEM), inspect.getdoc(attr)
        else:
            continue
        if doc:
            docs[Path(path).as_posix()] = doc
    return docs


def outputs_reference() -> str:
    from selectit.stages import DATA, ITEM, STAGES

    described = layout_docs()
    parts = []
    for spec in STAGES.values():
        parts.append(f"## {spec.stage}\n")
        if spec.foreach:
            parts.append(f"One stage per item of `{spec.foreach}`; `{ITEM}` below is that item.\n")
        parts += [" ".join(spec.note) + "\n"] if spec.note else []
        rows = []
        for kind, entries in (("output", spec.outs), ("DVC metrics", spec.metrics), ("DVC plots", spec.plots)):
            for entry in entries:
                working = entry.options.get("persist") and entry.options.get("cache") is False
                what = [described.get(entry.value, ""), str(entry.options.get("title", ""))]
                what += [entry.comment, *entry.note]
                if not any(what):  # a file inside a folder that Layout describes
                    what = [described.get(Path(entry.value).parent.as_posix(), "")]
                rows.append((f"`{entry.value}`", "working cache" if working else kind, " ".join(t for t in what if t)))
        if spec.summary is not None and spec.summary_folder is not None:
            path = (spec.summary_folder(DATA, ITEM) / spec.summary.FILE).as_posix()
            if not any(row[0] == f"`{path}`" for row in rows):
                what = f"the stage's summary (`{spec.summary.__name__}`): counts and the settings it ran with"
                rows.append((f"`{path}`", "summary", what))
        parts.append(_table(("path", "kind", "what it holds"), rows) + "\n")
    return "\n".join(parts)


def ratings_columns() -> str:
    from selectit.scoring import tables

    source = inspect.getsource(tables)
    block = source[source.index("RATINGS_SCHEMA = pa.schema(") :].split("\n)\n", 1)[0]
    notes = {m[1]: m[2].strip() for m in re.finditer(r'\("(\w+)", pa\.[^#\n]*#\s?(.*)', block)}
    rows = [(f"`{f.name}`", f"`{f.type}`", notes.get(f.name, "")) for f in tables.RATINGS_SCHEMA]
    return _table(("column", "type", "meaning"), rows)


GENERATORS: dict[str, Callable[[], str]] = {
    "params": params_reference,
    "cli": cli_reference,
    "outputs": outputs_reference,
    "ratings-columns": ratings_columns,
}


def expand(markdown: str, where: str = "a page") -> str:
    """The page with each marker replaced by its generated Markdown."""

    def generate(match: re.Match) -> str:
        if match[1] not in GENERATORS:
            raise ValueError(f"{where}: unknown generated section {match[1]!r}; known: {sorted(GENERATORS)}")
        return GENERATORS[match[1]]()

    return MARKER.sub(generate, markdown)


def on_page_markdown(markdown: str, page, config, files) -> str:
    return expand(markdown, page.file.src_uri)
