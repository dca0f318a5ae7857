"""Weighted query expressions, rclip-style: `2×'beach' + photo.jpg − 'people'`.

An expression is terms joined by `+` or `-` (also `−`), each written with spaces around it. A term is an
optional weight (`2×`, `2x`, `2*`, `0.5×`) followed by
- quoted text (`'a beach'` or `"a beach"`), or unquoted text (`beach`);
- `frame:<frame_id>`: the vector of a stored frame;
- an image file path (ends in an image extension), read from disk: only where `allow_files` is set (the
  Python client and the CLI; never the HTTP API, which must not read the server's files).

The search vector is the normalised weighted sum of the terms' unit vectors (subtracted terms count
negative), as rclip combines queries. Bad expressions raise `QueryExpressionError` saying which term.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"}
MAX_TERMS = 16

_OPERATOR = re.compile(r"\s+([+\-\u2212])\s+")
_WEIGHT = re.compile(r"^(\d+(?:\.\d+)?|\.\d+)\s*[×xX*]\s*")
_FRAME = re.compile(r"^frame:(\d+)$")


class QueryExpressionError(ValueError):
    pass


@dataclass(frozen=True)
class QueryTerm:
    kind: str  # 'text' | 'image' | 'frame'
    value: str | int  # the text, the image path, or the frame id
    weight: float = 1.0  # negative: subtracted

    def __post_init__(self) -> None:
        if self.kind not in ("text", "image", "frame"):
            raise QueryExpressionError(f"a query term is 'text', 'image' or 'frame', got {self.kind!r}")
        if self.weight == 0:
            raise QueryExpressionError(f"the term {self.value!r} has weight 0")


def parse_expression(expression: str, *, allow_files: bool = True) -> list[QueryTerm]:
    if not isinstance(expression, str) or not expression.strip():
        raise QueryExpressionError("the query expression is empty")
    parts = _OPERATOR.split(" " + expression.strip() + " ")
    # split gives [first, op, term, op, term, ...]; the first term may be empty after a leading operator
    terms: list[QueryTerm] = []
    sign = 1.0
    for index, piece in enumerate(parts):
        if index % 2 == 1:
            sign = 1.0 if piece == "+" else -1.0
            continue
        text = piece.strip()
        if not text:
            if index == 0:
                continue
            raise QueryExpressionError(f"an operator in {expression!r} has no term after it")
        terms.append(_term(text, sign, allow_files))
        sign = 1.0
    if not terms:
        raise QueryExpressionError("the query expression has no terms")
    if len(terms) > MAX_TERMS:
        raise QueryExpressionError(f"at most {MAX_TERMS} terms in one expression, got {len(terms)}")
    if all(t.weight < 0 for t in terms):
        raise QueryExpressionError("a query expression needs at least one added (positive) term")
    return terms


def _term(text: str, sign: float, allow_files: bool) -> QueryTerm:
    weight = 1.0
    match = _WEIGHT.match(text)
    if match:
        weight = float(match.group(1))
        text = text[match.end() :].strip()
        if weight == 0:
            raise QueryExpressionError(f"the term {text!r} has weight 0")
    if not text:
        raise QueryExpressionError("a weight is not followed by a term")
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        inner = text[1:-1].strip()
        if not inner:
            raise QueryExpressionError("a quoted term is empty")
        return QueryTerm("text", inner, sign * weight)
    frame = _FRAME.match(text)
    if frame:
        return QueryTerm("frame", int(frame.group(1)), sign * weight)
    if Path(text).suffix.lower() in IMAGE_SUFFIXES:
        if not allow_files:
            raise QueryExpressionError(
                f"image files cannot be used here ({text!r}); refer to a stored frame as frame:<id>"
            )
        if not Path(text).is_file():
            raise QueryExpressionError(f"query image {text} does not exist")
        return QueryTerm("image", text, sign * weight)
    return QueryTerm("text", text, sign * weight)
