"""Projected object footprints under candidate cameras (issue 11 item 2's design numbers, PLAN.md).

    python results/clevr/framing_estimate.py

Pinhole projection only (no rendering, no occlusion): the field of view is fitted so that the
placement square x, y in [-3, 3] (object tops up to z = 1.4) fits the square frame with a 5 %
margin; footprints are the area in pixels of a sphere's image disc, pi (r f / depth)^2 with
f = R / 2 / tan(fov / 2), over a 13 x 13 grid of floor positions.
"""

import math

import numpy as np

from empirical.clevr import scene

CORNERS = np.array([[x, y, z] for x in (-3, 3) for y in (-3, 3) for z in (0, 1.4)])
GRID = np.array([[x, y, 0.35] for x in np.linspace(-3, 3, 13) for y in np.linspace(-3, 3, 13)])


def frame(eye, target=(0.0, 0.0, 0.0), up=(0.0, 0.0, 1.0)):
    eye = np.asarray(eye, float)
    forward = np.asarray(target) - eye
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, up)
    right /= np.linalg.norm(right)
    return eye, right, np.cross(forward, right), forward


def project(points, camera, tan_half):
    eye, right, down, forward = camera
    rel = points - eye
    depth = rel @ forward
    return np.stack([(rel @ right) / depth / tan_half, (rel @ down) / depth / tan_half], -1), depth


def footprints(eye, resolution: int, margin: float = 1.05) -> dict:
    camera = frame(eye)
    uv, _ = project(CORNERS, camera, 1.0)
    tan_half = float(np.abs(uv).max()) * margin
    _, depth = project(GRID, camera, tan_half)
    focal = resolution / 2 / tan_half
    small = math.pi * (scene.SIZES["small"] * focal / depth) ** 2
    large_cube = math.pi * (scene.SIZES["large"] / math.sqrt(2) * focal / depth) ** 2 * 4 / math.pi
    return {"fov_deg": round(2 * math.degrees(math.atan(tan_half)), 1),
            "small_sphere_min_px": round(float(small.min()), 1),
            "small_sphere_median_px": round(float(np.median(small)), 1),
            "large_cube_face_median_px": round(float(np.median(large_cube)), 1)}


def orbit(azimuth_deg: float, elevation_deg: float, distance: float = 11.3):
    a, e = math.radians(azimuth_deg - 90), math.radians(elevation_deg)
    return (distance * math.cos(e) * math.cos(a), distance * math.cos(e) * math.sin(a), distance * math.sin(e))


if __name__ == "__main__":
    print("CLEVR camera, 32 px:", footprints(scene.CAMERA_POSITION, 32))
    for azimuth in (0, 45):
        for elevation in (35, 50, 60, 70):
            for resolution in (32, 48):
                print(f"azimuth {azimuth}, elevation {elevation}, {resolution} px:",
                      footprints(orbit(azimuth, elevation), resolution))
