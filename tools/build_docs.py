#!/usr/bin/env python
"""Build the docs site in `_docs/` from the notebooks in `nbs/`, without executing them.

nbdev prepares every notebook into `_proc/` (`proc_nbs`: drops `#| hide` cells, renders `show_doc`, turns names in
backticks into links); it runs only the exported cells, imports and `show_doc` calls, never the tests.
With a `quarto` on PATH the pages are rendered by `nbdev-docs`. Without one they are rendered here (mistune +
pygments): `quarto-cli` on PyPI is a source package whose install downloads Quarto from GitHub, which this
project's machines cannot reach, and `nbdev-install-quarto` downloads too.
Then every local link is checked: a link to a page or a section that does not exist fails the build.

Usage: python tools/build_docs.py [--serve PORT]
"""
from __future__ import annotations
import html, json, os, re, shutil, subprocess, sys, time
from html.parser import HTMLParser
from pathlib import Path

import mistune
from pygments import highlight
from pygments.formatters import HtmlFormatter
from pygments.lexers import get_lexer_by_name
from pygments.util import ClassNotFound

ROOT = Path(__file__).resolve().parents[1]


def _say(msg): print(f"docs: {msg}", file=sys.stderr, flush=True)


# --- rendering (used when no quarto is installed) ---------------------------------------------------------

def _anchor(text:str)->str:
    "Pandoc's auto identifier for a heading (what Quarto and nbdev's doc links use)"
    s = re.sub(r"<[^>]+>", "", html.unescape(text)).strip().lower()
    s = re.sub(r"[^\w\s.-]", "", s)
    s = re.sub(r"\s+", "-", s)
    return re.sub(r"^[^a-z_]+", "", s) or "section"


def _code_html(code:str, lang:str="python")->str:
    try: lexer = get_lexer_by_name(lang or "text")
    except ClassNotFound: lexer = get_lexer_by_name("text")
    return highlight(code, lexer, HtmlFormatter(cssclass="sourceCode"))


class _Renderer(mistune.HTMLRenderer):
    "HTML with heading ids and highlighted code blocks"
    def __init__(self):
        super().__init__(escape=False)
        self.ids = set()
    def heading(self, text, level, **attrs):
        base = _anchor(text); i, n = base, 1
        while i in self.ids: i, n = f"{base}-{n}", n + 1
        self.ids.add(i)
        return f'<h{level} id="{i}" class="anchored">{text}</h{level}>\n'
    def block_code(self, code, info=None):
        return _code_html(code, (info or "text").split()[0])


def _clean_md(md:str)->str:
    "Drop the Pandoc-only syntax nbdev writes for Quarto: link attributes `{...}` and fenced divs `:::`"
    md = re.sub(r"(\]\([^)\s]*\))\{[^}]*\}", r"\1", md)
    return re.sub(r"(?m)^:::.*$", "", md)


def _directives(src:str)->tuple[dict, str]:
    "Quarto cell options (`#| key: value`) at the top of a cell, and the code after them"
    lines, opts = src.splitlines(), {}
    while lines and lines[0].startswith("#|"):
        k, _, v = lines.pop(0)[2:].strip().partition(":")
        opts[k.strip()] = v.strip().lower()
    return opts, "\n".join(lines)


def _output_html(o:dict, md)->str:
    if o.get("output_type") == "stream": return f'<pre class="output">{html.escape("".join(o.get("text", "")))}</pre>'
    data = o.get("data", {})
    if "text/markdown" in data: return md(_clean_md("".join(data["text/markdown"])))
    if "text/html" in data: return "".join(data["text/html"])
    if "image/svg+xml" in data: return "".join(data["image/svg+xml"])
    if "image/png" in data: return f'<img src="data:image/png;base64,{"".join(data["image/png"]).strip()}">'
    if "text/plain" in data: return f'<pre class="output">{html.escape("".join(data["text/plain"]))}</pre>'
    return ""


def _inline(text:str)->str:
    "One line of markdown (a page description) as HTML, without the paragraph"
    return re.sub(r"^<p>|</p>\s*$", "", mistune.html(text).strip())


def _front(nb:dict)->dict:
    "The YAML front matter nbdev writes as the first raw cell (title, description, output-file)"
    import yaml
    for c in nb["cells"]:
        if c["cell_type"] == "raw":
            m = re.match(r"\s*---\n(.*?)\n---", "".join(c["source"]), re.S)
            if m: return yaml.safe_load(m.group(1)) or {}
    return {}


def render_page(nb:dict)->str:
    "The body of one page: markdown cells, shown code and its outputs"
    r = _Renderer(); md = mistune.create_markdown(renderer=r, plugins=["table", "strikethrough", "url"])
    out = []
    for c in nb["cells"]:
        src = "".join(c["source"])
        if c["cell_type"] == "markdown": out.append(md(_clean_md(src)))
        if c["cell_type"] != "code": continue
        opts, code = _directives(src)
        if opts.get("include") == "false": continue
        if opts.get("echo") != "false" and code.strip(): out.append(_code_html(code))
        if opts.get("output") != "false": out += [_output_html(o, md) for o in c.get("outputs", [])]
    return "\n".join(out)


_PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title} – {site}</title>
<link rel="stylesheet" href="pygments.css"><link rel="stylesheet" href="styles.css"></head>
<body><nav class="sidebar"><a class="site" href="index.html">{site}</a><ul>{nav}</ul></nav>
<main><header><h1 class="title">{title}</h1><p class="description">{desc}</p></header>
{body}
<footer><a href="{repo}">{repo}</a></footer></main></body></html>
"""


def _order(p:Path):
    "nbdev's sidebar order: index first, then by file name (the layer number)"
    return ("" if p.stem == "index" else p.name)


def render_site(proc:Path, out:Path, cfg)->list[str]:
    "Render every notebook in `proc` to `out`; the page names as Quarto gives them (numeric prefix dropped)"
    from nbdev.config import nbpath2html
    nbs = sorted(proc.glob("*.ipynb"), key=_order)
    pages = []
    for p in nbs:
        nb = json.loads(p.read_text())
        fm = _front(nb)
        pages.append((p, nb, fm, fm.get("output-file") or nbpath2html(p.name).name))
    nav = "".join(f'<li><a href="{name}">{html.escape(str(fm.get("title", name)))}</a></li>' for _, _, fm, name in pages)
    if out.exists(): shutil.rmtree(out)
    out.mkdir(parents=True)
    site_url = f"{cfg.doc_host}{cfg.doc_baseurl}".rstrip("/") + "/"
    for p, nb, fm, name in pages:
        body = render_page(nb).replace(f'href="{site_url}', 'href="')  # doc links to this site stay inside it
        # nbdev links private names too, but documents none of them: keep those as plain code
        body = re.sub(r'<a href="[^"#:]*#_[^"]*">(.*?)</a>', r"\1", body)
        body = body.replace('<p><a href="https://github.com', '<p class="source-link"><a href="https://github.com')  # show_doc's [source]
        (out/name).write_text(_PAGE.format(title=html.escape(str(fm.get("title", p.stem))), site=html.escape(cfg.title),
                                           desc=_inline(str(fm.get("description", ""))), nav=nav, body=body,
                                           repo=cfg.git_url))
    (out/"pygments.css").write_text(HtmlFormatter(cssclass="sourceCode").get_style_defs(".sourceCode"))
    css = cfg.nbs_path/"styles.css"
    if css.exists(): shutil.copy(css, out/"styles.css")
    return [name for *_, name in pages]


# --- link check (both ways of rendering) ------------------------------------------------------------------

class _Links(HTMLParser):
    def __init__(self):
        super().__init__(); self.ids, self.links = set(), []
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get("id"): self.ids.add(a["id"])
        for k in ("href", "src"):
            if a.get(k): self.links.append(a[k])


def check_links(site:Path, site_url:str)->list[str]:
    "Every link inside the site (relative, or absolute to `site_url`) that names a page or section that is not there"
    parsed = {}
    for f in site.rglob("*.html"):
        lp = _Links(); lp.feed(f.read_text(errors="replace")); parsed[f.resolve()] = lp
    bad = []
    for f, lp in sorted(parsed.items()):
        for link in lp.links:
            if link.startswith(site_url): link = os.path.relpath(site/link[len(site_url):], f.parent)
            if re.match(r"^[a-z][a-z0-9+.-]*:", link, re.I) or link.startswith("//"): continue  # other sites, data:, mailto:
            path, _, frag = link.partition("#")
            target = (f.parent/path.split("?")[0]).resolve() if path else f
            if target.is_dir(): target = target/"index.html"
            where = f.relative_to(site.resolve())
            if not target.exists(): bad.append(f"{where}: missing page {link}"); continue
            if frag and target.suffix == ".html" and frag not in parsed[target].ids: bad.append(f"{where}: missing section {link}")
    return bad


# --- the build ------------------------------------------------------------------------------------------

def build()->int:
    t0 = time.time()
    os.chdir(ROOT/"nbs")  # notebooks run with their own folder as cwd, as under nbdev-test
    # nbdev warns with the whole source of each cell that mixes imports and other code; a failing one is reported below
    os.environ["PYTHONWARNINGS"] = "ignore:Found cells containing imports"
    from nbdev.config import get_config
    from nbdev.quarto import refresh_quarto_yml, nbdev_sidebar
    from nbdev.serve import proc_nbs
    cfg = get_config()
    refresh_quarto_yml()
    nbdev_sidebar.__wrapped__(path=cfg.nbs_path)
    if shutil.which("quarto"):
        _say("rendering with Quarto (nbdev-docs)")
        r = subprocess.run([str(Path(sys.executable).parent/"nbdev-docs"), "--n-workers", "2"], capture_output=True, text=True, cwd=ROOT)
        sys.stderr.write(r.stdout + r.stderr)
        if r.returncode: return r.returncode
        if re.search(r"WARN.*(resolve link|not found)", r.stdout + r.stderr): _say("Quarto warned about a missing page"); return 1
        pages = [p.name for p in cfg.doc_path.glob("*.html")]
    else:
        _say("no quarto on PATH: nbdev prepares the notebooks, pages rendered by tools/build_docs.py")
        try: proc = proc_nbs(str(cfg.nbs_path), n_workers=2)
        except Exception as e:  # nbdev runs a notebook's exported cells, imports and show_doc calls to render it
            lines = str(e).strip().splitlines() or [type(e).__name__]
            _say(f"FAILED {lines[0].rstrip(' :')}: {lines[-1]}")
            _say("nbdev runs every cell that imports something to render a page: keep imports in cells of their own"); return 1
        pages = render_site(proc, cfg.doc_path, cfg)
    bad = check_links(cfg.doc_path, f"{cfg.doc_host}{cfg.doc_baseurl}".rstrip("/") + "/")
    for b in bad: _say(f"WARNING {b}")
    _say(f"{len(pages)} pages in {cfg.doc_path.relative_to(ROOT)}/ in {time.time() - t0:.0f} s; {len(bad)} broken links")
    return 1 if bad else 0


if __name__ == "__main__":
    if "--serve" in sys.argv:  # serve the built site, on 127.0.0.1 only
        port = (sys.argv[sys.argv.index("--serve") + 1:] or ["8000"])[0]
        os.execv(sys.executable, [sys.executable, "-m", "http.server", port, "--bind", "127.0.0.1", "--directory", str(ROOT/"_docs")])
    sys.exit(build())
