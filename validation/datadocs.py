"""Great Expectations Data Docs that render styled without network access.

GE 1.24's page templates (``great_expectations/render/view/templates``: ``page.j2``,
``index_page.j2``, ``page_minimal.j2``, ``js_script_imports.j2``, ``top_navbar.j2``)
load these from CDNs, and the inlined ``data_docs_default_styles.css`` one image. Each is
served from ``validation/assets/`` (:data:`CDN_ASSETS` maps every URL to its file):

* ``maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css`` and
  ``stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js``;
* ``unpkg.com/bootstrap-table@1.19.1/dist/``: ``bootstrap-table.min.{css,js}``,
  ``extensions/filter-control/bootstrap-table-filter-control.min.js``; and from
  ``bootstrap-table@1.19.0`` the filter-control ``.css`` and ``.min.css``;
* ``cdnjs.cloudflare.com/ajax/libs/``: ``bootstrap-datepicker/1.9.0`` (css, js),
  ``font-awesome/6.6.0/css/all.min.css`` (and its webfonts), ``popper.js/1.12.9/umd/popper.min.js``;
* ``cdn.jsdelivr.net/npm/@forevolve/bootstrap-dark@1.1.0/dist/css/bootstrap-prefers-dark.css``
  (served minified);
* ``code.jquery.com/jquery-3.7.1.min.js``;
* ``cdn.jsdelivr.net/npm/vega@5``, ``vega-lite@5``, ``vega-embed@6``: unpinned, so the
  newest of each major version: 5.33.1, 5.23.0, 6.29.0;
* ``great-expectations-web-assets.s3.us-east-2.amazonaws.com/logo-long.png`` (navbar) and
  ``full_logo_dark.png`` (dark-mode CSS): GE's own ``static/images/logo-long.png``, which
  its site builder copies (the dark logo is not shipped with GE).

The assets come from the npm registry (``npm pack``; ``validation/assets/README.md``
lists versions and licences). The two files GE loads with subresource integrity
hashes are byte-identical to what GE pins (the tests check the hashes).

After GE builds the site, :func:`localize` copies the assets to ``static/vendor/``,
points every page at them by relative paths (so the site works over ``file://`` and
from any web server), drops the ``integrity``/``crossorigin`` attributes (a file URL has
an opaque origin, so a CORS-mode load of it fails), re-roots GE's links to its own
``static/`` files (the favicon link of validation pages is one ``../`` short in GE
1.24.1), and refuses to leave any external
script, stylesheet or image behind: a GE upgrade that adds one fails loudly here.
Links (``<a href="https://...">``) stay: they load nothing until clicked.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

ASSETS = Path(__file__).resolve().parent / "assets"
SITE_NAME = "dapt"
VENDOR = "static/vendor"

CDN_ASSETS = {
    "https://maxcdn.bootstrapcdn.com/bootstrap/4.3.1/css/bootstrap.min.css": "bootstrap-4.3.1/bootstrap.min.css",
    "https://stackpath.bootstrapcdn.com/bootstrap/4.3.1/js/bootstrap.min.js": "bootstrap-4.3.1/bootstrap.min.js",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.css":
        "bootstrap-table-1.19.1/bootstrap-table.min.css",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/bootstrap-table.min.js":
        "bootstrap-table-1.19.1/bootstrap-table.min.js",
    "https://unpkg.com/bootstrap-table@1.19.1/dist/extensions/filter-control/bootstrap-table-filter-control.min.js":
        "bootstrap-table-1.19.1/bootstrap-table-filter-control.min.js",
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.css":
        "bootstrap-table-1.19.0/bootstrap-table-filter-control.css",
    "https://unpkg.com/bootstrap-table@1.19.0/dist/extensions/filter-control/bootstrap-table-filter-control.min.css":
        "bootstrap-table-1.19.0/bootstrap-table-filter-control.min.css",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/css/bootstrap-datepicker.min.css":
        "bootstrap-datepicker-1.9.0/bootstrap-datepicker.min.css",
    "https://cdnjs.cloudflare.com/ajax/libs/bootstrap-datepicker/1.9.0/js/bootstrap-datepicker.min.js":
        "bootstrap-datepicker-1.9.0/bootstrap-datepicker.min.js",
    "https://cdn.jsdelivr.net/npm/@forevolve/bootstrap-dark@1.1.0/dist/css/bootstrap-prefers-dark.css":
        "bootstrap-dark-1.1.0/bootstrap-prefers-dark.min.css",
    "https://cdnjs.cloudflare.com/ajax/libs/font-awesome/6.6.0/css/all.min.css":
        "fontawesome-free-6.6.0/css/all.min.css",
    "https://code.jquery.com/jquery-3.7.1.min.js": "jquery-3.7.1/jquery.min.js",
    "https://cdnjs.cloudflare.com/ajax/libs/popper.js/1.12.9/umd/popper.min.js": "popper.js-1.12.9/popper.min.js",
    "https://cdn.jsdelivr.net/npm/vega@5": "vega-5.33.1/vega.min.js",
    "https://cdn.jsdelivr.net/npm/vega-lite@5": "vega-lite-5.23.0/vega-lite.min.js",
    "https://cdn.jsdelivr.net/npm/vega-embed@6": "vega-embed-6.29.0/vega-embed.min.js",
}
#: GE's web-assets bucket; its ``static/images/`` holds the light logo only.
_GE_IMAGES = re.compile(
    r"https://great-expectations-web-assets\.s3\.us-east-2\.amazonaws\.com/[\w.-]+(?:\?[^\"'()\s]*)?"
)
_SRI = re.compile(r'\s(?:integrity|crossorigin)="[^"]*"')
#: GE's own files, linked relative to the page; its favicon link on validation pages
#: is one ``../`` short, so every such link is re-rooted.
_STATIC = re.compile(r'(?<=")(?:\.\./)*(?:\./)?static/(?=images/|styles/|fonts/)')
_CDN = re.compile("|".join(re.escape(url) for url in sorted(CDN_ASSETS, key=len, reverse=True)) + r'(?=["\'])')
#: What a browser fetches by itself: script/link/img/iframe/source URLs and CSS url().
_EXTERNAL_LOAD = re.compile(
    r"<(?:script|link|img|iframe|source|embed)\b[^>]*?\s(?:src|href)=[\"']?(https?:)?//[^\"'\s>]+"
    r"|url\(\s*[\"']?(?:https?:)?//[^)]+\)"
    r"|@import\s+[\"'](?:https?:)?//",
    re.IGNORECASE,
)


class DataDocsError(RuntimeError):
    """A page still loads something from the network."""


def site_config(directory: str) -> dict:
    """A filesystem Data Docs site in ``directory`` (for ``DataContextConfig``), rendered
    by GE's views with their templates' bytecode cached (:mod:`validation.datadocs_views`)."""
    def view(class_name: str) -> dict:
        return {"module_name": "validation.datadocs_views", "class_name": class_name}

    return {
        "class_name": "SiteBuilder",
        "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(directory)},
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder", "view": view("CachedIndexPageView")},
        # Merged into GE's default sections, which name their renderers and stores.
        "site_section_builders": {
            section: {"view": view("CachedPageView")} for section in ("expectations", "validations", "profiling")
        },
    }


def localize(site: str) -> list[str]:
    """Serve every CDN asset of the built site from ``site/static/vendor``; returns the
    pages rewritten. Raises :class:`DataDocsError` naming any page that would still
    load something from the network."""
    vendor = os.path.join(site, VENDOR)
    shutil.rmtree(vendor, ignore_errors=True)
    shutil.copytree(ASSETS, vendor, ignore=shutil.ignore_patterns("README.md"))
    pages = sorted(str(p) for p in Path(site).rglob("*.html"))
    leftovers = []
    for page in pages:
        root = Path(os.path.relpath(site, os.path.dirname(page))).as_posix()
        html = Path(page).read_text(encoding="utf-8")
        html = _CDN.sub(lambda m: f"{root}/{VENDOR}/{CDN_ASSETS[m.group()]}", html)
        html = _GE_IMAGES.sub(f"{root}/static/images/logo-long.png", html)
        html = _SRI.sub("", html)
        html = _STATIC.sub(f"{root}/static/", html)
        Path(page).write_text(html, encoding="utf-8")
        leftovers += [f"{page}: {m.group()[:160]}" for m in _EXTERNAL_LOAD.finditer(html)]
    if leftovers:
        raise DataDocsError("Data Docs would load from the network:\n" + "\n".join(leftovers))
    return pages
