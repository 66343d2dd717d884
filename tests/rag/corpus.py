"""A small on-disk corpus for the RAG tests: prose, code with a rare identifier, and files to skip."""

from __future__ import annotations

import textwrap
from pathlib import Path

GUIDE = textwrap.dedent(
    """\
    # Accounts

    ## Recovering access
    If you forgot your password, open the account page and choose "reset password".
    A one-time link arrives by e-mail and expires after an hour.

    ## Billing
    Invoices are issued on the first day of every month and paid by card.

    ## Deleting data
    Removing a workspace erases its files, its history and its members permanently.
    """
)

WIDGETS = textwrap.dedent(
    '''\
    """Widget helpers."""


    def render_widget(widget):
        """Draw a widget on the screen."""
        return widget.draw()


    def zqx_frobnicate_v7(widget, depth):
        """Adjust a widget recursively."""
        return [widget.adjust(level) for level in range(depth)]


    def resize_widget(widget, width, height):
        """Change a widget's size."""
        widget.width, widget.height = width, height
    '''
)

NOTES = "Release notes.\n\nVersion 2 adds dark mode and faster startup.\n"


def write_corpus(root: Path) -> Path:
    """Write the corpus under ``root`` and return it: 3 text files, 3 skippable files, 2 ignored folders."""
    (root / "docs").mkdir(parents=True)
    (root / "pkg").mkdir()
    (root / "docs" / "guide.md").write_text(GUIDE, encoding="utf-8")
    (root / "pkg" / "widgets.py").write_text(WIDGETS, encoding="utf-8")
    (root / "NOTES.txt").write_text(NOTES, encoding="utf-8")
    (root / "data.txt").write_bytes(b"header\x00\x01\x02binary payload")
    (root / "latin1.md").write_bytes("# Caf\u00e9 cr\u00e8me\n".encode("latin-1"))
    (root / "logo.png").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00")
    for ignored in (".git", "node_modules"):
        (root / ignored).mkdir()
        (root / ignored / "secret.md").write_text("# should never be ingested\n", encoding="utf-8")
    return root
