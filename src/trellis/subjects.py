"""NATS subject patterns: matching and overlap, shared by permissions, installs and events."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["subject_matches", "subjects_overlap", "well_formed"]


def subject_matches(subject: str, pattern: str) -> bool:
    """True when every subject ``subject`` can denote is allowed by NATS ``pattern``.

    For a concrete subject this is ordinary NATS matching (``*`` one token, ``>`` one or more
    trailing tokens). A subject that itself holds wildcards is treated as the set it denotes,
    so the same function checks whether one grant is covered by another. Empty tokens and a
    ``>`` that is not last never match.
    """
    s_tokens = subject.split(".")
    p_tokens = pattern.split(".")
    if not well_formed(s_tokens) or not well_formed(p_tokens):
        return False
    for i, p in enumerate(p_tokens):
        if p == ">":
            return len(s_tokens) > i
        if i >= len(s_tokens):
            return False
        s = s_tokens[i]
        if s == ">":
            return False
        if p == "*":
            continue
        if s == "*" or s != p:
            return False
    return len(s_tokens) == len(p_tokens)


def well_formed(tokens: Sequence[str]) -> bool:
    return all(tokens) and all(t != ">" for t in tokens[:-1])


def subjects_overlap(a: str, b: str) -> bool:
    """Whether two ``*``-patterns of surface subjects can match one concrete subject."""
    ta, tb = a.split("."), b.split(".")
    return len(ta) == len(tb) and all(x == y or "*" in (x, y) for x, y in zip(ta, tb, strict=True))
