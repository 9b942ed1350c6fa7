"""Mitsuba 3 renderer of CLEVR scenes (variant ``scalar_rgb``, path tracing).

A :class:`~empirical.clevr.scene.Scene` becomes a Mitsuba scene dictionary: a grey diffuse floor,
the camera (CLEVR's, or another :class:`~empirical.clevr.scene.Camera`), three lights (key,
fill, back) plus CLEVR's sun and a dim constant ambient term, and one primitive per object (``sphere``; ``cube``; ``cylinder``
with two ``disk`` caps). Rubber is a rough plastic, metal a rough conductor tinted by the
object's colour. The object-id mask is obtained by casting one ray through every pixel centre
(``scene.ray_intersect``), so it is exact, deterministic and independent of the sample count.

Determinism: CLEVR's lamps are small area lights; in Mitsuba 3.9.1 (scalar_rgb) a scene with
emitters attached to shapes renders different noise from load to load (the emitter order
varies), so the same seed did not give the same bytes. The three lamps are therefore point
lights of the same on-axis intensity (harder shadows), the image is one render block, and
scenes load serially; with that the output is a pure function of (scene, seed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from empirical.clevr import scene as clevr

VARIANT = "scalar_rgb"
FLOOR_REFLECTANCE = 0.4
AMBIENT_RADIANCE = 0.05
MAX_DEPTH = 5
#: one image block covers the whole image: Mitsuba seeds samplers per block in the order
#: threads take blocks, so several blocks make the noise (and bytes) vary between runs
BLOCK_SIZE = 256
RUBBER_ROUGHNESS = 0.7
RUBBER_SPECULAR = 0.3
METAL_ALPHA = 0.15
#: (position, width, rgb colour, Kubric/Blender intensity, emitter sampling weight) of the
#: three area lights; the weights (roughly the lights' share of the floor's brightness) make
#: next-event estimation pick the key light more often, which lowers the noise
AREA_LIGHTS = {
    "key": (clevr.KEY_LIGHT_POSITION, 0.5, (1.0, 0xED / 255, 0xD0 / 255), 100.0, 4.0),
    "fill": (clevr.FILL_LIGHT_POSITION, 0.5, (0xC2 / 255, 0xD0 / 255, 1.0), 30.0, 1.0),
    "back": (clevr.BACK_LIGHT_POSITION, 1.0, (1.0, 1.0, 1.0), 50.0, 1.0),
}
SUN_SAMPLING_WEIGHT = 2.0
AMBIENT_SAMPLING_WEIGHT = 0.3
SUN_IRRADIANCE = 0.45
#: one global exposure factor on all light sources, chosen by eye against CLEVR images
EXPOSURE = 1.0


def _mitsuba():
    import mitsuba as mi
    if mi.variant() != VARIANT:
        mi.set_variant(VARIANT)
    return mi


def _rgb(value) -> dict:
    return {"type": "rgb", "value": [float(c) for c in value]}


def object_bsdf(obj: clevr.SceneObject) -> dict:
    """Rubber: a rough dielectric (Mitsuba ``principled``, roughness 0.7, weak specular) with
    the CLEVR colour (0-255 / 255, used as linear reflectance as Blender does); metal: rough
    conductor with that colour as specular reflectance. (``roughplastic`` looks alike but
    costs ~60 ms per instance to load, more than the render itself.)"""
    colour = [c / 255.0 for c in clevr.COLORS[obj.color]]
    if obj.material == "rubber":
        return {"type": "principled", "base_color": _rgb(colour), "roughness": RUBBER_ROUGHNESS,
                "specular": RUBBER_SPECULAR}
    return {"type": "roughconductor", "alpha": METAL_ALPHA, "specular_reflectance": _rgb(colour)}


def object_shapes(index: int, obj: clevr.SceneObject) -> dict[str, dict]:
    """Mitsuba shapes for one object; every shape id starts with ``obj{index}_``."""
    mi = _mitsuba()
    T = mi.ScalarTransform4f
    x, y, z = obj.position
    r = obj.radius
    bsdf = object_bsdf(obj)
    prefix = f"obj{index}_"
    if obj.shape == "sphere":
        return {prefix + "body": {"type": "sphere", "center": [x, y, z], "radius": r,
                                  "bsdf": bsdf, "id": prefix + "body"}}
    if obj.shape == "cube":
        half = r / math.sqrt(2.0)
        to_world = T().translate([x, y, z]).rotate([0, 0, 1], obj.rotation).scale(half)
        return {prefix + "body": {"type": "cube", "to_world": to_world, "bsdf": bsdf,
                                  "id": prefix + "body"}}
    if obj.shape == "cylinder":
        top, bottom = z + r, z - r
        return {
            prefix + "body": {"type": "cylinder", "p0": [x, y, bottom], "p1": [x, y, top],
                              "radius": r, "bsdf": bsdf, "id": prefix + "body"},
            prefix + "top": {"type": "disk", "bsdf": bsdf, "id": prefix + "top",
                             "to_world": T().translate([x, y, top]).scale(r)},
            prefix + "bottom": {"type": "disk", "bsdf": bsdf, "id": prefix + "bottom",
                                "to_world": T().translate([x, y, bottom]).rotate([1, 0, 0], 180)
                                .scale(r)},
        }
    raise ValueError(f"unknown shape {obj.shape!r}")


def scene_dict(scene: clevr.Scene, resolution: int, spp: int, seed: int,
               camera: clevr.Camera = clevr.CLEVR_CAMERA) -> dict:
    """The full Mitsuba scene dictionary (camera, film, sampler seeded by ``seed``); the lights
    stay CLEVR's whatever the camera."""
    mi = _mitsuba()
    T = mi.ScalarTransform4f
    d: dict = {
        "type": "scene",
        "integrator": {"type": "path", "max_depth": MAX_DEPTH, "block_size": BLOCK_SIZE},
        "sensor": {
            "type": "perspective", "fov": float(camera.fov_deg), "fov_axis": "x",
            "to_world": T().look_at(origin=list(camera.position), target=list(camera.target),
                                    up=list(camera.up)),
            "film": {"type": "hdrfilm", "width": resolution, "height": resolution,
                     "rfilter": {"type": "box"}, "pixel_format": "rgb"},
            "sampler": {"type": "independent", "sample_count": int(spp), "seed": int(seed)},
        },
        "floor": {"type": "rectangle", "id": "floor", "to_world": T().scale([100, 100, 1]),
                  "bsdf": {"type": "diffuse", "reflectance": _rgb([FLOOR_REFLECTANCE] * 3)}},
        "ambient": {"type": "constant", "radiance": _rgb([AMBIENT_RADIANCE * EXPOSURE] * 3),
                    "sampling_weight": AMBIENT_SAMPLING_WEIGHT},
        "sun": {"type": "directional", "direction": [-c for c in clevr.SUN_POSITION],
                "irradiance": _rgb([SUN_IRRADIANCE * EXPOSURE] * 3),
                "sampling_weight": SUN_SAMPLING_WEIGHT},
    }
    for name, (position, width, colour, intensity, weight) in AREA_LIGHTS.items():
        # A Lambertian rectangle of power P has radiant intensity P/pi along its normal; we
        # place a point light of that intensity at the lamp's centre (see module docstring:
        # shape-attached area emitters make Mitsuba's output vary between loads).
        d[f"light_{name}"] = {
            "type": "point", "position": list(position),
            "intensity": _rgb([intensity * EXPOSURE / math.pi * c for c in colour]),
            "sampling_weight": weight,
        }
    for index, obj in enumerate(scene.objects):
        d.update(object_shapes(index, obj))
    return d


def load(scene: clevr.Scene, resolution: int, spp: int, seed: int,
         camera: clevr.Camera = clevr.CLEVR_CAMERA):
    """Load the Mitsuba scene (cheap: a few ms)."""
    return _mitsuba().load_dict(scene_dict(scene, resolution, spp, seed, camera), parallel=False)


def object_id_mask(mi_scene, resolution: int) -> np.ndarray:
    """uint8 [R, R] map: 0 where the pixel-centre ray hits the floor or nothing, j+1 where it
    first hits object j (a shape with id ``obj{j}_*``); row 0 is the top of the image."""
    mi = _mitsuba()
    sensor = mi_scene.sensors()[0]
    mask = np.zeros((resolution, resolution), dtype=np.uint8)
    aperture = mi.Point2f(0.5, 0.5)
    for row in range(resolution):
        for col in range(resolution):
            film_point = mi.Point2f((col + 0.5) / resolution, (row + 0.5) / resolution)
            ray, _ = sensor.sample_ray(0.0, 0.5, film_point, aperture)
            hit = mi_scene.ray_intersect(ray)
            if hit.is_valid():
                shape_id = hit.shape.id()
                if shape_id.startswith("obj"):
                    mask[row, col] = int(shape_id[3:].split("_", 1)[0]) + 1
    return mask


def linear_to_srgb_uint8(linear: np.ndarray) -> np.ndarray:
    """Clip linear RGB to [0, 1], apply the sRGB transfer curve, round to uint8."""
    x = np.clip(np.asarray(linear, dtype=np.float64), 0.0, 1.0)
    srgb = np.where(x <= 0.0031308, 12.92 * x, 1.055 * np.power(x, 1.0 / 2.4) - 0.055)
    return np.round(srgb * 255.0).astype(np.uint8)


def render_image(mi_scene, seed: int) -> np.ndarray:
    """Path-traced uint8 [R, R, 3] sRGB image."""
    mi = _mitsuba()
    return linear_to_srgb_uint8(np.array(mi.render(mi_scene, seed=int(seed))))


@dataclass
class RenderedScene:
    """A rendered scene: ``image`` uint8 [R, R, 3], ``mask`` uint8 [R, R] object ids,
    ``locations`` float [n, 2] (u, v) of object centres, ``pixels`` int [n] visible pixels."""

    scene: clevr.Scene
    image: np.ndarray
    mask: np.ndarray
    locations: np.ndarray
    pixels: np.ndarray
    attempts: int

    def object_records(self) -> list[dict]:
        return [{"location": [float(u), float(v)], "position": list(obj.position),
                 "shape": obj.shape, "size": obj.size, "material": obj.material,
                 "color": obj.color, "rotation": obj.rotation, "pixels": int(px)}
                for obj, (u, v), px in zip(self.scene.objects, self.locations, self.pixels)]


def visible_pixels(mask: np.ndarray, num_objects: int) -> np.ndarray:
    """int [n]: number of pixels of each object id 1..n in ``mask``."""
    return np.bincount(mask.ravel(), minlength=num_objects + 1)[1:num_objects + 1]


def render_visible_scene(rng: np.random.Generator, num_objects: int, resolution: int,
                         spp: int, render_seed: int, max_attempts: int = 1000,
                         camera: clevr.Camera = clevr.CLEVR_CAMERA) -> RenderedScene:
    """Sample scenes with :func:`empirical.clevr.scene.sample_scene` until every object covers at
    least :func:`empirical.clevr.scene.min_visible_pixels` pixels (CLEVR's rule, scaled) as
    seen by ``camera``, then path-trace that scene with sampler seed ``render_seed``."""
    threshold = clevr.min_visible_pixels(resolution)
    for attempt in range(1, max_attempts + 1):
        sampled = clevr.sample_scene(rng, num_objects)
        mi_scene = load(sampled, resolution, spp, render_seed, camera)
        mask = object_id_mask(mi_scene, resolution)
        pixels = visible_pixels(mask, num_objects)
        if np.all(pixels >= threshold):
            image = render_image(mi_scene, render_seed)
            locations = clevr.project_to_image(
                np.array([o.position for o in sampled.objects]).reshape(-1, 3), camera)
            return RenderedScene(sampled, image, mask, locations.reshape(-1, 2), pixels, attempt)
    raise RuntimeError(f"no scene with {num_objects} visible objects in {max_attempts} attempts "
                       f"at resolution {resolution}")
