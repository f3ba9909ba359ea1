"""MkDocs hook: show the docstrings' Sphinx cross-reference roles as plain code.

The docstrings also serve ``help()`` and ``mgan fit --model.help``, where a reference such as
``:class:`~mgan_lightning.nets.MixtureNorm2d``` reads fine; on the site the role's prefix is
noise. This drops it, and the ``~`` that asks for the last name only.
"""

from __future__ import annotations

import re

_ROLE = re.compile(r":(?:class|func|meth|mod|attr|data|exc|obj):<code>(~?)([^<]*)</code>")


def _name(match: re.Match[str]) -> str:
    tilde, target = match.groups()
    return f"<code>{target.rsplit('.', 1)[-1] if tilde else target}</code>"


def on_page_content(html: str, **kwargs) -> str:
    """Replace ``:role:<code>target</code>`` by ``<code>target</code>`` in every page."""
    return _ROLE.sub(_name, html)
