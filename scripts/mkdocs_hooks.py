"""MkDocs hook (mkdocs.yml `hooks:`): links from a docs page to repository files outside docs/.

Pages link to files such as `../benchmarks/RESULTS.md` or `../examples/census_mmoe.py`, which work when the
Markdown is read on a code host but are not part of the site. A link whose target exists in the repository is
rendered as the file's path in code (`benchmarks/RESULTS.md`); a link whose target does not exist is left as
it is, so `mkdocs build --strict` still fails on it.
"""
from __future__ import annotations

import os
import re

_LINK = re.compile(r"(?<!!)\[([^\]]+)\]\((\.\./[^)\s#]+)(#[^)\s]*)?\)")


def on_page_markdown(markdown, page, config, files):
    docs_dir = os.path.abspath(config["docs_dir"])
    root = os.path.dirname(docs_dir)
    page_dir = os.path.dirname(os.path.join(docs_dir, page.file.src_path))

    def repl(m: re.Match) -> str:
        target = os.path.normpath(os.path.join(page_dir, m.group(2)))
        inside_repo = os.path.commonpath([target, root]) == root
        outside_docs = os.path.commonpath([target, docs_dir]) != docs_dir
        if not (inside_repo and outside_docs and os.path.exists(target)):
            return m.group(0)
        rel = os.path.relpath(target, root).replace(os.sep, "/")
        text = m.group(1).strip("`")
        return f"`{rel}`" if text in (rel, m.group(2), os.path.basename(rel)) else f"{m.group(1)} (`{rel}`)"

    return _LINK.sub(repl, markdown)
