"""Projected object footprints under candidate cameras (issue 11 item 2's design numbers, PLAN.md).

    python results/clevr/framing_estimate.py

Pinhole projection only (no rendering, no occlusion): the field of view is fitted so that the
placement square x, y in [-3, 3] (object tops up to z = 1.4) fits the square frame with a 5 %
margin (`empirical.clevr.scene.fitted_camera`); footprints are the area in pixels of a sphere's
image disc, pi (r f / depth)^2 with f = R / 2 / tan(fov / 2), over a 13 x 13 grid of floor
positions. The camera chosen, `scene.FRAMED_CAMERA` (azimuth 0, elevation 70, 48 px), is measured
on real renders in `framing/footprints.json`.
"""

import math

import numpy as np

from empirical.clevr import scene

GRID = np.array([[x, y, 0.35] for x in np.linspace(-3, 3, 13) for y in np.linspace(-3, 3, 13)])
DISTANCE = 11.3


def footprints(camera: scene.Camera, resolution: int) -> dict:
    _, _, forward = scene.camera_frame(camera)
    depth = (GRID - np.asarray(camera.position)) @ forward
    focal = resolution / 2 / math.tan(math.radians(camera.fov_deg) / 2)
    small = math.pi * (scene.SIZES["small"] * focal / depth) ** 2
    large_cube = math.pi * (scene.SIZES["large"] / math.sqrt(2) * focal / depth) ** 2 * 4 / math.pi
    return {"fov_deg": round(camera.fov_deg, 1),
            "small_sphere_min_px": round(float(small.min()), 1),
            "small_sphere_median_px": round(float(np.median(small)), 1),
            "large_cube_face_median_px": round(float(np.median(large_cube)), 1)}


if __name__ == "__main__":
    print("CLEVR camera, fitted, 32 px:", footprints(scene.fitted_camera("c", scene.CAMERA_POSITION), 32))
    for azimuth in (0, 45):
        for elevation in (35, 50, 60, 70):
            camera = scene.fitted_camera("c", scene.orbit_position(azimuth, elevation, DISTANCE))
            for resolution in (32, 48):
                print(f"azimuth {azimuth}, elevation {elevation}, {resolution} px:",
                      footprints(camera, resolution))
