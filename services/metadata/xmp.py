"""The few XMP facts we use, read with bounded regular expressions.

XMP is RDF/XML; a full XML parse of hostile input invites entity expansion and costs far
more than the three fields we need. Both RDF spellings are handled: attributes
(xmp:CreatorTool="...") and elements (<xmp:CreatorTool>...</xmp:CreatorTool>).
"""

from __future__ import annotations

import dataclasses
import html
import re

# XMP we look into; Photoshop's History can reach megabytes, the fields we need come early.
MAX_XMP_CHARS = 1_000_000  # characters
MAX_VALUES = 32  # history entries kept as evidence
MAX_VALUE_CHARS = 200  # characters per value

# An element's value starts at its first non-space character ([^<\s]): were it allowed to
# start with the spaces \s* may also take, a long run of them after an opening tag would be
# retried once per space, up to the value's length each (a 1 MB packet of spaces after
# <xmp:CreatorTool> took 2.5 s). Values are whitespace-normalised anyway (_clean).
_CREATOR_TOOL = re.compile(
    r"""xmp:CreatorTool\s*=\s*["']([^"']{1,500})["']|<xmp:CreatorTool>\s*([^<\s][^<]{0,499})</xmp:CreatorTool>"""
)
_SOFTWARE_AGENT = re.compile(
    r"""stEvt:softwareAgent\s*=\s*["']([^"']{1,500})["']"""
    r"""|<stEvt:softwareAgent>\s*([^<\s][^<]{0,499})</stEvt:softwareAgent>"""
)
_HISTORY_ACTION = re.compile(
    r"""stEvt:action\s*=\s*["']([^"']{1,100})["']|<stEvt:action>\s*([^<\s][^<]{0,99})</stEvt:action>"""
)
_DATE_FIELD = r"""{0}\s*=\s*["']([^"']{{1,64}})["']|<{0}>\s*([^<\s][^<]{{0,63}})</{0}>"""
_MODIFY_DATE = re.compile(_DATE_FIELD.format("xmp:ModifyDate"))
_CREATE_DATE = re.compile(_DATE_FIELD.format("xmp:CreateDate"))


@dataclasses.dataclass(frozen=True)
class XmpData:
    present: bool = False
    creator_tool: str = ""
    history_agents: tuple[str, ...] = ()
    history_actions: tuple[str, ...] = ()
    create_date: str = ""
    modify_date: str = ""


def _first(pattern: re.Pattern, text: str) -> str:
    m = pattern.search(text)
    if m is None:
        return ""
    return _clean(m.group(1) or m.group(2) or "")


def _all(pattern: re.Pattern, text: str) -> tuple[str, ...]:
    seen: list[str] = []
    for m in pattern.finditer(text):
        value = _clean(m.group(1) or m.group(2) or "")
        if value and value not in seen:
            seen.append(value)
            if len(seen) >= MAX_VALUES:
                break
    return tuple(seen)


def _clean(value: str) -> str:
    return " ".join(html.unescape(value).split())[:MAX_VALUE_CHARS]


def read(packet: bytes | None) -> XmpData:
    if not packet:
        return XmpData()
    text = packet[:MAX_XMP_CHARS].decode("utf-8", "replace")
    return XmpData(
        present=True,
        creator_tool=_first(_CREATOR_TOOL, text),
        history_agents=_all(_SOFTWARE_AGENT, text),
        history_actions=_all(_HISTORY_ACTION, text),
        create_date=_first(_CREATE_DATE, text),
        modify_date=_first(_MODIFY_DATE, text),
    )
