"""What to run when an optional part is missing: the extra that brings it, installed against the lock
(constraints.txt), so an extra added later never moves a version another extra depends on."""

from __future__ import annotations


def install_hint(extra: str) -> str:
    return f"pip install -c constraints.txt -e '.[{extra}]' in the unitok checkout; make install has them all"
