"""The websocket protocol's client messages, parsed and checked (docs/protocol.md).

Every problem is a ``ProtocolError`` whose message is sent back to the client as
``{"type": "error", "message": ...}``; the socket stays open.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from hidenet_core.codec.container import MAX_ERROR, MAX_LEVELS
from hidenet_core.tools.contenders import MAX_CONTENDERS, ContenderError, Spec, parse_spec

from .links import Link, LinkError, parse_link

__all__ = ["WS_PATH", "ProtocolError", "StartRequest", "Cancel", "Region", "parse_message", "START_DEFAULTS",
           "STREAM_KINDS", "MAX_FRAME_SIDE"]

#: where the websocket is served
WS_PATH = "/ws"


#: optional fields of "start" and their defaults
START_DEFAULTS = {"link": "unlimited", "max_error": 0, "generative_levels": 0, "preview": True, "race": False,
                  "contenders": [], "stream": "layered", "frame": "full"}
#: what "stream" may ask: quality layers (format version 6's default), or one pass over the levels
STREAM_KINDS = ("layered", "resolution")
#: the largest frame side a client may ask for (a display's size; larger means "full")
MAX_FRAME_SIDE = 16384

#: what ``"race": true`` means: the progressive JPEG at its default quality
RACE_DEFAULT = "pjpeg"


class ProtocolError(ValueError):
    """A client message that breaks the protocol; ``code`` is a short machine-readable reason."""

    def __init__(self, message: str, code: str = "bad_request") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class StartRequest:
    image: str  # image id
    link: Link
    max_error: int  # d for every level, 0..MAX_ERROR (0 = lossless)
    generative_levels: int  # g, 0..levels of the image
    preview: bool  # frames are full-size predictions (True) or the level at its own size
    contenders: tuple[Spec, ...] = ()  # the formats raced against hideNet over the same link (at most 3)
    layered: bool = True  # quality layers (True) or one pass over the levels, base first
    frame: tuple[int, int] | None = None  # (width, height) the viewer shows frames at; None: full size

    @property
    def race(self) -> bool:
        return bool(self.contenders)


@dataclass(frozen=True)
class Cancel:
    pass


@dataclass(frozen=True)
class Region:
    """The full-resolution pixels of a rectangle of the stream's latest picture (the 1:1 view)."""

    x: int
    y: int
    width: int
    height: int


def _int(msg: dict, key: str, hi: int) -> int:
    value = msg[key]
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= hi:
        raise ProtocolError(f"{key} must be an integer in 0..{hi}, got {value!r}")
    return value


def _bool(msg: dict, key: str) -> bool:
    value = msg[key]
    if not isinstance(value, bool):
        raise ProtocolError(f"{key} must be true or false, got {value!r}")
    return value


def _contenders(msg: dict) -> tuple[Spec, ...]:
    race, ids = _bool(msg, "race"), msg["contenders"]
    if not isinstance(ids, list):
        raise ProtocolError(f"contenders must be a list of contender ids (GET /api/contenders), got {ids!r}")
    if race and ids:
        raise ProtocolError("give either \"race\": true (the progressive JPEG) or \"contenders\", not both")
    if race:
        ids = [RACE_DEFAULT]
    if len(ids) > MAX_CONTENDERS:
        raise ProtocolError(f"at most {MAX_CONTENDERS} contenders race beside hideNet, got {len(ids)}")
    try:
        specs = tuple(parse_spec(i) for i in ids)
    except ContenderError as exc:
        raise ProtocolError(str(exc)) from None
    keys = [s.key for s in specs]
    if len(set(keys)) != len(keys):
        raise ProtocolError(f"a contender is listed twice: {keys}")
    return specs


def _frame(msg: dict) -> tuple[int, int] | None:
    value = msg["frame"]
    if value == "full":
        return None
    if not isinstance(value, dict) or set(value) != {"width", "height"}:
        raise ProtocolError(f'frame must be "full" or {{"width": W, "height": H}} (the size the viewer shows frames '
                            f"at), got {value!r}")
    w, h = (_int(value, k, MAX_FRAME_SIDE) for k in ("width", "height"))
    if not w or not h:
        raise ProtocolError(f"a frame size must be at least 1x1, got {w}x{h}")
    return w, h


def _region(msg: dict) -> Region:
    unknown = set(msg) - {"type", "x", "y", "width", "height"}
    if unknown:
        raise ProtocolError(f"unknown field(s) in region: {sorted(unknown)}")
    try:
        x, y, w, h = (_int(msg, k, 65535) for k in ("x", "y", "width", "height"))
    except KeyError as exc:
        raise ProtocolError(f"region needs x, y, width and height (image pixels), missing {exc}") from None
    if not w or not h or w * h > 4096 * 4096:
        raise ProtocolError(f"a region is 1x1 to 4096x4096 pixels, got {w}x{h}")
    return Region(x, y, w, h)


def parse_message(text: str) -> StartRequest | Cancel | Region:
    """Parse one text message from the client."""
    try:
        msg = json.loads(text)
    except ValueError as exc:
        raise ProtocolError(f"message is not valid JSON: {exc}") from None
    except RecursionError:  # "[[[[...]]]]": deeper than the parser's stack
        raise ProtocolError("message is nested too deeply; send a flat JSON object") from None
    if not isinstance(msg, dict):
        raise ProtocolError(f"message must be a JSON object with a \"type\", got {type(msg).__name__}")
    kind = msg.get("type")
    if kind == "cancel":
        return Cancel()
    if kind == "region":
        return _region(msg)
    if kind != "start":
        raise ProtocolError(f"unknown message type {kind!r}; expected \"start\", \"cancel\" or \"region\"")
    unknown = set(msg) - {"type", "image", *START_DEFAULTS}
    if unknown:
        raise ProtocolError(f"unknown field(s) in start: {sorted(unknown)}")
    image = msg.get("image")
    if not isinstance(image, str) or not image:
        raise ProtocolError(f"start needs \"image\": an image id string, got {image!r}")
    msg = {**START_DEFAULTS, **msg}
    try:
        link = parse_link(msg["link"])
    except LinkError as exc:
        raise ProtocolError(str(exc)) from None
    return StartRequest(
        image=image,
        link=link,
        max_error=_int(msg, "max_error", MAX_ERROR),
        generative_levels=_int(msg, "generative_levels", MAX_LEVELS),
        preview=_bool(msg, "preview"),
        contenders=_contenders(msg),
        layered=_stream_kind(msg),
        frame=_frame(msg),
    )


def _stream_kind(msg: dict) -> bool:
    if msg["stream"] not in STREAM_KINDS:
        raise ProtocolError(f"stream must be one of {list(STREAM_KINDS)}, got {msg['stream']!r}")
    return msg["stream"] == "layered"
