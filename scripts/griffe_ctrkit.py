"""Griffe extension used by the docs build (mkdocs.yml): reads ctrkit's docstring conventions as Google style.

ctrkit's docstrings follow the TorchRec-like template Args / Shape / Returns / Example (STYLE.md, lesson 13)
and use a few reST habits. Before griffe parses a docstring this extension rewrites, in the copy it renders
(never the source):

* an ``Example:`` section header to ``Examples:``, so ``>>>`` lines render as code, not as nested quotes;
* ``:class:`~ctrkit.MMoE``` and the other reST roles to inline code (```MMoE```);
* a grouped argument line in ``Args:`` (``x, y: data and labels ...``) to one entry per name with the same
  description, so griffe still checks every name against the signature (a renamed argument fails the build).
"""
from __future__ import annotations

import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|data|attr|exc|obj|const):`(~?)([^`]+)`")
_SECTION = re.compile(r"^(\s*)(Args|Arguments|Parameters|Keyword Args|Other Parameters):\s*$")
_NAMES_GO_ON = re.compile(r"^[\w*]+(\s*,\s*[\w*]+)*,$")
_GROUPED = re.compile(r"^(\s+)([A-Za-z_*][\w*]*(?:\s*,\s*[A-Za-z_*][\w*]*)+)\s*:(.*)$")


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _role(m: re.Match) -> str:
    target = m.group(2)
    return f"`{target.rsplit('.', 1)[-1] if m.group(1) else target}`"


def rewrite(text: str) -> str:
    """The docstring as griffe should read it (see the module docstring)."""
    text = _ROLE.sub(_role, text)
    lines = text.split("\n")
    out: list[str] = []
    section_indent: int | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if re.match(r"^\s*Example:\s*$", line):
            out.append(line.replace("Example:", "Examples:"))
            section_indent = None
            i += 1
            continue
        m = _SECTION.match(line)
        if m:
            section_indent = len(m.group(1))
            out.append(line)
            i += 1
            continue
        if section_indent is not None and stripped and indent <= section_indent:
            section_indent = None
        if section_indent is not None and indent > section_indent and _NAMES_GO_ON.match(stripped):
            # a list of names that goes on on the next line: join the lines, then treat it as one entry
            while i + 1 < len(lines) and line.rstrip().endswith(","):
                line = line.rstrip() + " " + lines[i + 1].strip()
                lines[i + 1] = ""
                i += 1
            lines[i] = line
        other = re.match(r"^(\s+)(other arguments|other args)\s*:(.*)$", line, flags=re.IGNORECASE)
        if section_indent is not None and other and len(other.group(1)) > section_indent:
            # "other arguments: as in MMoE." is no argument name: a paragraph after the section
            out += ["", " " * section_indent + "Other arguments:" + other.group(3)]
            section_indent = None
            i += 1
            continue
        g = _GROUPED.match(line) if section_indent is not None else None
        if g and len(g.group(1)) > section_indent:
            item_indent = len(g.group(1))
            body = [g.group(3)]
            j = i + 1
            while j < len(lines) and (not lines[j].strip() or _indent(lines[j]) > item_indent):
                if not lines[j].strip() and (j + 1 >= len(lines) or not lines[j + 1].strip()
                                             or _indent(lines[j + 1]) <= item_indent):
                    break
                body.append(lines[j])
                j += 1
            for name in (n.strip() for n in g.group(2).split(",")):
                out.append(f"{g.group(1)}{name}:{body[0]}")
                out.extend(body[1:])
            i = j
            continue
        out.append(line)
        i += 1
    return "\n".join(out)


class CtrkitDocstrings(griffe.Extension):
    """Apply :func:`rewrite` to every docstring griffe loads."""

    def on_instance(self, *, node: Any, obj: griffe.Object, agent: Any, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = rewrite(obj.docstring.value)
