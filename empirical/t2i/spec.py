"""The prompt spec of ``localcomp t2i locality``: what to measure, read from JSON and validated.

A spec is a JSON object (docs/t2i-locality.md shows a full one)::

    {
      "prompt_sets": [
        {"name": "cat-dog", "base": "a photo", "joiner": ", ",
         "parts": [{"name": "cat", "text": "a cat on the left", "region": [0.0, 0.0, 0.5, 1.0]},
                   {"name": "dog", "text": "a dog on the right", "region": [0.5, 0.0, 1.0, 1.0]}]}
      ],
      "sigmas": [0.5, 2.0, 8.0],
      "seeds": [0],
      "noise_samples": 2,
      "positions": 3,
      "features": ["attn2", "up_blocks"],
      "latent_size": [128, 128],
      "radii": [1, 2, 4, 8, 16, 32],
      "effective_mass": 0.9,
      "sample_steps": 20,
      "guidance": 5.0
    }

Only ``prompt_sets`` and ``sigmas`` are required. The full prompt of a set is ``base``, then the
part texts, joined by ``joiner`` (empty strings left out); the ablation of part ``i`` drops
``i``'s text and re-encodes. A region is a box ``[x0, y0, x1, y1]`` in normalised image
coordinates (``x`` right, ``y`` down, both in ``[0, 1]``), the same at every resolution.
``positions`` is a count of Jacobian output positions drawn uniformly (seeded), or a list of
``[x, y]`` normalised points. Every problem is a :class:`~localcomp.errors.UserError` naming
the field (``prompt_sets[0].parts[1].region``) and what is wrong, raised before anything is
written.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

from localcomp.errors import UserError

DEFAULT_FEATURES = ("attn2", "up_blocks")
DEFAULT_RADII = (1, 2, 4, 8, 16, 32)
_TOP_LEVEL = {"prompt_sets", "sigmas", "seeds", "noise_samples", "positions", "features", "latent_size",
              "radii", "effective_mass", "sample_steps", "guidance", "description"}


@dataclass(frozen=True)
class PromptPart:
    name: str
    text: str
    region: tuple[float, float, float, float] | None = None


@dataclass(frozen=True)
class PromptSet:
    name: str
    parts: tuple[PromptPart, ...]
    base: str = ""
    joiner: str = ", "

    def prompt(self, keep: set[int] | None = None) -> str:
        """The prompt with the parts whose index is in ``keep`` (default all), after ``base``."""
        texts = [self.base] + [p.text for i, p in enumerate(self.parts) if keep is None or i in keep]
        return self.joiner.join(t for t in texts if t)


@dataclass(frozen=True)
class LocalitySpec:
    prompt_sets: tuple[PromptSet, ...]
    sigmas: tuple[float, ...]
    seeds: tuple[int, ...] = (0,)
    noise_samples: int = 1
    positions: int | tuple[tuple[float, float], ...] = 3
    features: tuple[str, ...] = DEFAULT_FEATURES
    latent_size: tuple[int, int] | None = None
    radii: tuple[float, ...] = DEFAULT_RADII
    effective_mass: float = 0.9
    sample_steps: int = 20
    guidance: float = 5.0
    description: str = ""

    def as_json(self) -> dict:
        return asdict(self)


def _fail(where: str, problem: str):
    raise UserError(f"--prompts: {where}: {problem}")


def _string(value, where: str, allow_empty: bool = True) -> str:
    if not isinstance(value, str):
        _fail(where, f"must be a string, got {type(value).__name__}")
    if not allow_empty and not value.strip():
        _fail(where, "must not be empty")
    return value


def _number(value, where: str, low: float | None = None, strict: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        _fail(where, f"must be a finite number, got {value!r}")
    if low is not None and (value <= low if strict else value < low):
        _fail(where, f"must be {'>' if strict else '>='} {low}, got {value!r}")
    return float(value)


def _integer(value, where: str, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        _fail(where, f"must be an integer, got {value!r}")
    if value < low:
        _fail(where, f"must be >= {low}, got {value}")
    return value


def _list(value, where: str, min_len: int = 1) -> list:
    if not isinstance(value, list):
        _fail(where, f"must be a list, got {type(value).__name__}")
    if len(value) < min_len:
        _fail(where, f"needs at least {min_len} entr{'y' if min_len == 1 else 'ies'}")
    return value


def _box(value, where: str) -> tuple[float, float, float, float]:
    box = _list(value, where)
    if len(box) != 4:
        _fail(where, f"must be [x0, y0, x1, y1], got {len(box)} numbers")
    x0, y0, x1, y1 = (_number(v, f"{where}[{i}]") for i, v in enumerate(box))
    if not (0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1):
        _fail(where, f"needs 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1 (normalised coordinates), got {box}")
    return (x0, y0, x1, y1)


def _unknown_keys(obj: dict, known: set[str], where: str) -> None:
    unknown = sorted(set(obj) - known)
    if unknown:
        _fail(where, f"unknown field(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")


def _part(obj, where: str) -> PromptPart:
    if not isinstance(obj, dict):
        _fail(where, "must be an object with 'name' and 'text'")
    _unknown_keys(obj, {"name", "text", "region"}, where)
    for key in ("name", "text"):
        if key not in obj:
            _fail(f"{where}.{key}", "missing")
    region = obj.get("region")
    return PromptPart(name=_string(obj["name"], f"{where}.name", False),
                      text=_string(obj["text"], f"{where}.text", False),
                      region=None if region is None else _box(region, f"{where}.region"))


def _prompt_set(obj, where: str) -> PromptSet:
    if not isinstance(obj, dict):
        _fail(where, "must be an object with 'name' and 'parts'")
    _unknown_keys(obj, {"name", "base", "joiner", "parts"}, where)
    for key in ("name", "parts"):
        if key not in obj:
            _fail(f"{where}.{key}", "missing")
    parts = tuple(_part(p, f"{where}.parts[{i}]")
                  for i, p in enumerate(_list(obj["parts"], f"{where}.parts", 2)))
    names = [p.name for p in parts]
    if len(set(names)) != len(names):
        _fail(f"{where}.parts", f"part names must be distinct, got {names}")
    return PromptSet(name=_string(obj["name"], f"{where}.name", False), parts=parts,
                     base=_string(obj.get("base", ""), f"{where}.base"),
                     joiner=_string(obj.get("joiner", ", "), f"{where}.joiner"))


def _positions(value) -> int | tuple[tuple[float, float], ...]:
    if isinstance(value, int) and not isinstance(value, bool):
        return _integer(value, "positions", 1)
    points = _list(value, "positions")
    out = []
    for i, point in enumerate(points):
        where = f"positions[{i}]"
        if not isinstance(point, list) or len(point) != 2:
            _fail(where, f"must be [x, y] in normalised coordinates, got {point!r}")
        x, y = (_number(v, where) for v in point)
        if not (0 <= x <= 1 and 0 <= y <= 1):
            _fail(where, f"must lie in [0, 1]^2, got {point}")
        out.append((x, y))
    return tuple(out)


def parse_spec(obj) -> LocalitySpec:
    """A validated :class:`LocalitySpec` from the decoded JSON ``obj``; UserError naming the field."""
    if not isinstance(obj, dict):
        _fail("top level", "must be a JSON object")
    _unknown_keys(obj, _TOP_LEVEL, "top level")
    for key in ("prompt_sets", "sigmas"):
        if key not in obj:
            _fail(key, "missing (required)")
    sets = tuple(_prompt_set(s, f"prompt_sets[{i}]") for i, s in enumerate(_list(obj["prompt_sets"], "prompt_sets")))
    names = [s.name for s in sets]
    if len(set(names)) != len(names):
        _fail("prompt_sets", f"names must be distinct, got {names}")
    sigmas = tuple(_number(s, f"sigmas[{i}]", 0) for i, s in enumerate(_list(obj["sigmas"], "sigmas")))
    seeds = tuple(_integer(s, f"seeds[{i}]", 0) for i, s in enumerate(_list(obj.get("seeds", [0]), "seeds")))
    if len(set(seeds)) != len(seeds):
        _fail("seeds", f"must be distinct, got {list(seeds)}")
    features = tuple(_string(f, f"features[{i}]", False)
                     for i, f in enumerate(_list(obj.get("features", list(DEFAULT_FEATURES)), "features", 0)))
    latent = obj.get("latent_size")
    if latent is not None:
        latent = _list(latent, "latent_size")
        if len(latent) != 2:
            _fail("latent_size", f"must be [height, width] in latent pixels, got {latent}")
        latent = tuple(_integer(v, f"latent_size[{i}]", 2) for i, v in enumerate(latent))
    radii = tuple(_number(r, f"radii[{i}]", 0) for i, r in enumerate(_list(obj.get("radii", list(DEFAULT_RADII)), "radii")))
    mass = _number(obj.get("effective_mass", 0.9), "effective_mass", 0)
    if mass > 1:
        _fail("effective_mass", f"must be in (0, 1], got {mass}")
    return LocalitySpec(prompt_sets=sets, sigmas=sigmas, seeds=seeds,
                        noise_samples=_integer(obj.get("noise_samples", 1), "noise_samples", 1),
                        positions=_positions(obj.get("positions", 3)), features=features,
                        latent_size=latent, radii=tuple(sorted(radii)), effective_mass=mass,
                        sample_steps=_integer(obj.get("sample_steps", 20), "sample_steps", 0),
                        guidance=_number(obj.get("guidance", 5.0), "guidance", 0, strict=False),
                        description=_string(obj.get("description", ""), "description"))


def load_spec(path: str | Path) -> LocalitySpec:
    """Read and validate the spec file; UserError when it is missing, not JSON or invalid."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"--prompts: no such file: {path}")
    try:
        obj = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise UserError(f"--prompts: {path} is not valid JSON: {error}") from None
    return parse_spec(obj)
