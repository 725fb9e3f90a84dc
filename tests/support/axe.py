"""axe-core, the accessibility checker, from its npm package: installed for the tests only, never served.

``ensure_axe()`` installs the pinned version into tests/e2e/.node (ignored by git) if it is missing;
``make test`` does the same beforehand. ``violations(page)`` runs it on the page as it is now.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from playwright.sync_api import Page

AXE_VERSION = "4.14.1"
NODE_DIR = Path(__file__).resolve().parents[1] / "e2e" / ".node"
AXE_SCRIPT = NODE_DIR / "node_modules" / "axe-core" / "axe.min.js"
# WCAG 2.1 A and AA, the level the pages are held to.
TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]


def ensure_axe() -> Path:
    if not AXE_SCRIPT.is_file():
        NODE_DIR.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            ["npm", "install", "--prefix", str(NODE_DIR), "--no-audit", "--no-fund", f"axe-core@{AXE_VERSION}"],
            check=True,
            capture_output=True,
            timeout=300,
        )
    return AXE_SCRIPT


def violations(page: Page) -> list[dict[str, Any]]:
    """axe's violations on the page (the context must be made with ``bypass_csp=True`` to load it)."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(ensure_axe()))
    result = page.evaluate("tags => axe.run(document, {runOnly: {type: 'tag', values: tags}})", TAGS)
    return [
        {"id": v["id"], "impact": v["impact"], "nodes": [n["target"] for n in v["nodes"]][:5]}
        for v in result["violations"]
    ]
