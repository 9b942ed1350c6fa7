"""CLEVR scene sampling (geometry only, no rendering), after Johnson et al. 2017.

Every number is taken from facebookresearch/clevr-dataset-gen (``image_generation/
render_images.py`` defaults and ``data/properties.json``) or, for the camera and lights that
live in the binary ``base_scene.blend``, from Kubric's re-creation of that scene; the sources
are listed in ``docs/clevr-data.md``.

World frame: z up, the floor is z = 0, objects rest on it. An object's "radius" r is the
CLEVR size (0.7 large, 0.35 small); cubes use r/sqrt(2) as half side (CLEVR's rule), spheres
radius r, cylinders radius r and height 2r. The centre sits at height (half height).

Image convention (other code relies on it): a point projecting to continuous pixel
coordinates (col, row), pixel centres at integer+0.5, has location
``u = 2*col/W - 1`` (x to the right), ``v = 2*row/H - 1`` (y down), so pixel (c, r)'s centre
is ``u = 2*(c+0.5)/W - 1``, ``v = 2*(r+0.5)/H - 1``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

# --- data/properties.json -------------------------------------------------------------------
SHAPES = ("cube", "sphere", "cylinder")
COLORS: dict[str, tuple[int, int, int]] = {
    "gray": (87, 87, 87),
    "red": (173, 35, 35),
    "blue": (42, 75, 215),
    "green": (29, 105, 20),
    "brown": (129, 74, 25),
    "purple": (129, 38, 192),
    "cyan": (41, 208, 208),
    "yellow": (255, 238, 51),
}
COLOR_NAMES = tuple(COLORS)
MATERIALS = ("rubber", "metal")
SIZES: dict[str, float] = {"large": 0.7, "small": 0.35}

# --- render_images.py defaults --------------------------------------------------------------
PLACEMENT_HALF_WIDTH = 3.0      # x, y ~ uniform(-3, 3)
MIN_DIST = 0.25                 # centre distance minus both radii must be >= 0.25
CLEVR_MARGIN = 0.4              # CLEVR: offsets along left/right/front/behind not in (0, 0.4)
#: our margin: 0.4 makes 11-12 objects nearly unplaceable (~2 s of re-placing per scene),
#: and the margin only serves CLEVR's spatial-relation questions (see docs/clevr-data.md)
MARGIN = 0.2
MAX_RETRIES = 50                # tries per object before re-placing the whole scene
CLEVR_MIN_PIXELS = 200          # visible pixels per object at 320x240
CLEVR_IMAGE_PIXELS = 320 * 240

# --- base_scene.blend (values via Kubric's CLEVR re-creation, see docs) ----------------------
CAMERA_POSITION = (7.48113, -6.50764, 5.34367)
CAMERA_TARGET = (0.0, 0.0, 0.0)
CAMERA_UP = (0.0, 0.0, 1.0)
CAMERA_FOCAL_MM = 35.0
CAMERA_SENSOR_MM = 32.0
#: horizontal field of view (degrees) of a 35 mm lens on a 32 mm sensor: 2 atan(16/35)
CAMERA_FOV_DEG = math.degrees(2.0 * math.atan(CAMERA_SENSOR_MM / 2.0 / CAMERA_FOCAL_MM))
KEY_LIGHT_POSITION = (6.44671, -2.90517, 4.2584)
FILL_LIGHT_POSITION = (-4.67112, -4.0136, 3.01122)
BACK_LIGHT_POSITION = (-1.1685, 2.64602, 5.81574)
SUN_POSITION = (11.6608, -6.62799, 25.8232)


@dataclass(frozen=True)
class SceneObject:
    """One object: shape/size/material/colour names, centre ``position`` (x, y, z) in world
    units, rotation about z in degrees, and ``radius`` r (the CLEVR size value)."""

    shape: str
    size: str
    material: str
    color: str
    position: tuple[float, float, float]
    rotation: float

    @property
    def radius(self) -> float:
        return SIZES[self.size]


@dataclass(frozen=True)
class Scene:
    objects: tuple[SceneObject, ...] = field(default_factory=tuple)


def min_visible_pixels(resolution: int) -> int:
    """CLEVR's 200 px at 320x240 scaled by pixel count to a square ``resolution`` image:
    ceil(200 * R^2 / 76800) (3 px at 32, 11 at 64, 43 at 128)."""
    return int(math.ceil(CLEVR_MIN_PIXELS * resolution * resolution / CLEVR_IMAGE_PIXELS))


@dataclass(frozen=True)
class Camera:
    """A pinhole camera for a square image: ``position``, ``target``, ``up`` in world units and
    the field of view ``fov_deg`` (horizontal = vertical, the image is square)."""

    name: str
    position: tuple[float, float, float]
    target: tuple[float, float, float] = CAMERA_TARGET
    up: tuple[float, float, float] = CAMERA_UP
    fov_deg: float = CAMERA_FOV_DEG


#: CLEVR's camera (base_scene.blend)
CLEVR_CAMERA = Camera("clevr", CAMERA_POSITION)

#: the placement square's corners at floor level and at the top of a large cylinder (z = 1.4):
#: what a framed camera must keep in view
PLACEMENT_CORNERS = np.array([[x, y, z] for x in (-PLACEMENT_HALF_WIDTH, PLACEMENT_HALF_WIDTH)
                              for y in (-PLACEMENT_HALF_WIDTH, PLACEMENT_HALF_WIDTH)
                              for z in (0.0, 2 * SIZES["large"])])


def camera_frame(camera: Camera = CLEVR_CAMERA) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Orthonormal camera axes (right, down, forward) in world coordinates, each shape [3]."""
    eye = np.asarray(camera.position, dtype=np.float64)
    forward = np.asarray(camera.target, dtype=np.float64) - eye
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, np.asarray(camera.up, dtype=np.float64))
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    return right, down, forward


def orbit_position(azimuth_deg: float, elevation_deg: float,
                   distance: float) -> tuple[float, float, float]:
    """Camera position on a sphere of ``distance`` around the origin: azimuth 0 looks along +y
    (the camera sits on the -y axis), elevation is the angle above the floor."""
    a, e = math.radians(azimuth_deg - 90.0), math.radians(elevation_deg)
    return (distance * math.cos(e) * math.cos(a), distance * math.cos(e) * math.sin(a),
            distance * math.sin(e))


def fitted_camera(name: str, position: tuple[float, float, float],
                  margin: float = 1.05) -> Camera:
    """A camera at ``position`` looking at the origin whose field of view is the smallest that
    holds every :data:`PLACEMENT_CORNERS` point, widened by ``margin`` (so objects anywhere in
    the placement square stay in the frame)."""
    probe = Camera(name, tuple(float(c) for c in position), fov_deg=90.0)
    uv = project_to_image(PLACEMENT_CORNERS, probe)          # in units of tan(45 deg) = 1
    tan_half = float(np.abs(uv).max()) * margin
    return Camera(name, probe.position, fov_deg=math.degrees(2.0 * math.atan(tan_half)))


def floor_directions() -> dict[str, np.ndarray]:
    """CLEVR's cardinal directions on the floor (unit [2] vectors): ``behind`` is the view
    direction projected to the floor, ``left`` the camera's left projected to the floor. Always
    CLEVR's camera: the placement rule (and so the scene distribution) does not depend on the
    camera a dataset is rendered with."""
    right, _, forward = camera_frame(CLEVR_CAMERA)
    behind = forward[:2] / np.linalg.norm(forward[:2])
    left = -right[:2] / np.linalg.norm(right[:2])
    return {"behind": behind, "front": -behind, "left": left, "right": -left}


def project_to_image(points: np.ndarray, camera: Camera = CLEVR_CAMERA) -> np.ndarray:
    """Pinhole projection of world points ``[n, 3]`` to locations ``[n, 2]`` (u, v) in
    [-1, 1] for a square image: u = (p.right / p.forward) / tan(fov/2), v likewise with
    the down axis (square image, so both axes share the horizontal field of view)."""
    points = np.atleast_2d(np.asarray(points, dtype=np.float64))
    right, down, forward = camera_frame(camera)
    rel = points - np.asarray(camera.position, dtype=np.float64)
    depth = rel @ forward
    scale = math.tan(math.radians(camera.fov_deg) / 2.0)
    return np.stack([(rel @ right) / depth / scale, (rel @ down) / depth / scale], axis=-1)


#: axis-aligned view from 70 degrees above the floor at CLEVR's camera distance, framed on the
#: placement square (issue 11 item 2: at 48 px every object shows >= 6 px, docs/clevr-data.md)
FRAMED_CAMERA = fitted_camera("framed", orbit_position(0.0, 70.0, float(np.linalg.norm(CAMERA_POSITION))))

CAMERAS: dict[str, Camera] = {c.name: c for c in (CLEVR_CAMERA, FRAMED_CAMERA)}


def get_camera(name: str) -> Camera:
    """The camera called ``name``; a UserError listing the known names otherwise."""
    from localcomp.errors import UserError

    if name not in CAMERAS:
        raise UserError(f"--camera: unknown camera {name!r}; known: {', '.join(CAMERAS)}")
    return CAMERAS[name]


def object_centre_height(shape: str, radius: float) -> float:
    """Height of the centre above the floor: half the cube side r/sqrt(2) for cubes, else r."""
    return radius / math.sqrt(2.0) if shape == "cube" else radius


def placement_ok(xy: np.ndarray, r: float, placed: list[tuple[float, float, float]],
                 directions: dict[str, np.ndarray], min_dist: float = MIN_DIST,
                 margin: float = MARGIN) -> np.ndarray:
    """CLEVR's rule for candidate centres ``xy`` [m, 2] of a new object of radius r against
    ``placed`` (x, y, r): bool [m], True where for every placed object the distance minus
    both radii is >= min_dist and no offset along left/right/front/behind lies in
    (0, margin)."""
    xy = np.atleast_2d(xy)
    ok = np.ones(len(xy), dtype=bool)
    if not placed:
        return ok
    other = np.asarray(placed, dtype=np.float64)               # [p, 3]
    delta = xy[:, None, :] - other[None, :, :2]                 # [m, p, 2]
    ok &= np.all(np.hypot(delta[..., 0], delta[..., 1]) - r - other[None, :, 2] >= min_dist, axis=1)
    for name in ("left", "right", "front", "behind"):
        offset = delta @ directions[name]                       # [m, p]
        ok &= ~np.any((offset > 0) & (offset < margin), axis=1)
    return ok


def sample_scene(rng: np.random.Generator, num_objects: int,
                 max_retries: int = MAX_RETRIES) -> Scene:
    """Place ``num_objects`` objects as CLEVR does: per object a size, then up to
    ``max_retries`` uniform positions on [-3, 3]^2 checked by :func:`placement_ok`; if one
    object fails every try the whole scene is re-placed. Shape, colour, rotation, material
    are then drawn uniformly. Visibility is checked by the renderer (needs ray casting)."""
    if num_objects < 0:
        raise ValueError(f"num_objects must be >= 0, got {num_objects}")
    directions = floor_directions()
    while True:
        placed: list[tuple[float, float, float]] = []
        objects: list[SceneObject] = []
        for _ in range(num_objects):
            size = str(rng.choice(list(SIZES)))
            r = SIZES[size]
            # the max_retries sequential tries, drawn at once: the first valid one is kept
            tries = rng.uniform(-PLACEMENT_HALF_WIDTH, PLACEMENT_HALF_WIDTH, size=(max_retries, 2))
            valid = np.flatnonzero(placement_ok(tries, r, placed, directions))
            if len(valid) == 0:
                break
            x, y = tries[valid[0]]
            shape = str(rng.choice(SHAPES))
            color = str(rng.choice(COLOR_NAMES))
            rotation = float(360.0 * rng.random())
            material = str(rng.choice(MATERIALS))
            placed.append((float(x), float(y), r))
            objects.append(SceneObject(shape, size, material, color,
                                       (float(x), float(y), object_centre_height(shape, r)),
                                       rotation))
        if len(objects) == num_objects:
            return Scene(tuple(objects))
