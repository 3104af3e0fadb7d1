"""Procedural 3D shapes: a lit object in a room, on the 3dshapes factor grid.

Reference: Burgess & Kim, "3D Shapes dataset" (2018,
https://github.com/deepmind/3d-shapes), used in Kim & Mnih, "Disentangling by
Factorising" (ICML 2018); disentanglement_lib's ``data/ground_truth/shapes3d.py``.

Factor grid (3dshapes order and values, last factor varying fastest; 480,000 images):

================  ======  =====================================================
factor            values  meaning
================  ======  =====================================================
floor_hue         10      hue ``0, 0.1, ..., 0.9`` of the floor
wall_hue          10      hue of the back wall
object_hue        10      hue of the object
scale             8       ``linspace(0.75, 1.25, 8)`` times the object size
shape             4       cube, cylinder, sphere, capsule
orientation       15      ``linspace(-30, 30, 15)`` degrees: the camera turns
                          about the object (the whole scene is seen from another
                          side, so the wall/floor edge tilts even for a sphere)
================  ======  =====================================================

The pixels do not reproduce the original dataset (rendered with the MuJoCo scenes of
the GQN data sets); the scene has the same structure - a square room (floor, back wall
and two side walls whose corners show at the sides), sky above the walls, one object
standing on the floor in the middle, one directional light - and every factor visibly
and independently changes the image.  Calibrated against the published images (the
``3dshapes.gif`` and the sample grid of ``3dshapes_loading_example.ipynb`` in
github.com/deepmind/3d-shapes), in 64-pixel image units at orientation 0:

* colours: HSV with saturation 1 (every floor, wall and object colour measured there
  has saturation 1.00) and value 1, shaded; the lit floor reaches full brightness
  (real: 0.96-1.00), the back wall 0.84 and the side walls 0.45 and 0.77 (real walls:
  0.73-0.94);
* sky: the constant light blue RGB (153, 226, 249) measured there, down to row 17
  (real: 16-18, sloping with the orientation);
* floor-wall line at row 41 (real: 40-42), the object centred, standing in front of
  it with its base at rows 56-59 (real cube: 56);
* object size: the smallest cube is 17 pixels wide and 20 tall (a real cube of unknown
  scale: 19 x 19).

Residual differences: the real walls carry a faint texture and the real shading,
shadows and the objects' exact proportions differ; the scale of the real objects in
the gif is not known frame by frame, so the object size is calibrated to about 10%;
the camera's path over the orientations is the same in kind (a turn about the object
by -30 to 30 degrees) but not measured.

Rendering: a small ray caster, vectorised over rays in torch, intersects each camera
ray analytically with the floor plane, the wall plane and the object (sphere, box,
capped cylinder, capsule = union of a cylinder and two spheres), shades the hit
(ambient + Lambert, a specular highlight on the object, and the object's cast shadow
on floor and wall via a second, shadow ray) with 2x2 supersampling.  Because the
shading is linear in the surface colour, an image is
``sum_r weight_r(geometry) * colour_r + specular(geometry) + sky(geometry) * sky colour``
over the regions floor, wall and object; the per-pixel weights depend only on (scale, shape, orientation), so
the 480 geometries are ray cast once, on first use (each one the first time it is
needed), and images are composed from them and the three hue colours.  This gives the
same pixels as ray casting each image and renders well over 2,000 images per second
on one core.
"""

from __future__ import annotations

import colorsys
import math

import numpy as np
import torch

from untwine.data.base import GroundTruthDataset

HUES = np.linspace(0.0, 1.0, 10, endpoint=False)
SCALES = np.linspace(0.75, 1.25, 8)
SHAPES = ("cube", "cylinder", "sphere", "capsule")
ORIENTATIONS_DEG = np.linspace(-30.0, 30.0, 15)
IMAGE_SIZE = 64
SATURATION = 1.0

# scene constants (world units; y up, object at the origin standing on the floor y = 0)
_WALL_Z = -2.2  # back wall plane z = _WALL_Z
_SIDE_X = 2.2  # side walls x = -_SIDE_X and x = +_SIDE_X
_WALL_TOP = 1.45  # the walls end here; the sky is above
SKY_RGB = np.array([153, 226, 249], dtype=np.float32) / 255.0  # measured on the real images
_CAM_DIST = 4.2
_CAM_HEIGHT = 1.85
_LOOK_AT = (0.0, 0.95, -0.4)
_FOV_TAN = 0.3  # tan of half the field of view
_BASE_SIZE = 0.5  # sphere radius at scale 1
_LIGHT = np.array([-0.45, 0.8, 0.55]) / np.linalg.norm([-0.45, 0.8, 0.55])
_AMBIENT = 0.45
_DIFFUSE = 0.75
_SPECULAR = 0.35
_SHININESS = 24.0
_SUPERSAMPLE = 2
_INF = float("inf")


def hue_to_rgb(hue) -> np.ndarray:
    """RGB colours ``[n, 3]`` in [0, 1] of hues in [0, 1) (HSV, saturation 1, value 1)."""
    return np.array([colorsys.hsv_to_rgb(float(h), SATURATION, 1.0) for h in np.atleast_1d(hue)], dtype=np.float32)


# -- analytic intersections; rays o, d: [R, 3]; return (t [R], normal [R, 3]) -------------
def _hit_sphere(o, d, c, r):
    oc = o - c
    b = (oc * d).sum(-1)
    cc = (oc * oc).sum(-1) - r * r
    disc = b * b - cc
    sq = torch.sqrt(torch.clamp(disc, min=0.0))
    t0 = -b - sq
    t1 = -b + sq
    t = torch.where(t0 > 1e-6, t0, t1)
    t = torch.where((disc >= 0) & (t > 1e-6), t, torch.full_like(t, _INF))
    n = (o + t[:, None].clamp(max=1e6) * d - c) / r
    return t, n


def _hit_box(o, d, lo, hi):
    inv = 1.0 / torch.where(d.abs() < 1e-12, torch.full_like(d, 1e-12), d)
    t1 = (lo - o) * inv
    t2 = (hi - o) * inv
    tmin = torch.minimum(t1, t2)
    tmax = torch.maximum(t1, t2)
    tnear, axis = tmin.max(-1)
    tfar = tmax.min(-1).values
    ok = (tnear <= tfar) & (tnear > 1e-6)
    t = torch.where(ok, tnear, torch.full_like(tnear, _INF))
    n = torch.zeros_like(o)
    n.scatter_(1, axis[:, None], -torch.sign(torch.gather(d, 1, axis[:, None])))
    return t, n


def _hit_cylinder(o, d, y0, y1, r):
    """Vertical capped cylinder around the y axis between heights y0 and y1."""
    a = d[:, 0] ** 2 + d[:, 2] ** 2
    b = o[:, 0] * d[:, 0] + o[:, 2] * d[:, 2]
    c = o[:, 0] ** 2 + o[:, 2] ** 2 - r * r
    disc = b * b - a * c
    sq = torch.sqrt(torch.clamp(disc, min=0.0))
    a_safe = torch.where(a < 1e-12, torch.full_like(a, 1e-12), a)
    ts = (-b - sq) / a_safe
    ys = o[:, 1] + ts * d[:, 1]
    side_ok = (disc >= 0) & (a > 1e-12) & (ts > 1e-6) & (ys >= y0) & (ys <= y1)
    t_side = torch.where(side_ok, ts, torch.full_like(ts, _INF))
    dy = torch.where(d[:, 1].abs() < 1e-12, torch.full_like(d[:, 1], 1e-12), d[:, 1])
    t_cap = []
    for yc in (y0, y1):
        tc = (yc - o[:, 1]) / dy
        px = o[:, 0] + tc * d[:, 0]
        pz = o[:, 2] + tc * d[:, 2]
        ok = (tc > 1e-6) & (px * px + pz * pz <= r * r)
        t_cap.append(torch.where(ok, tc, torch.full_like(tc, _INF)))
    t = torch.minimum(t_side, torch.minimum(t_cap[0], t_cap[1]))
    p = o + t[:, None].clamp(max=1e6) * d
    n_side = torch.stack([p[:, 0] / r, torch.zeros_like(t), p[:, 2] / r], -1)
    n_cap = torch.zeros_like(o)
    n_cap[:, 1] = torch.where(t == t_cap[1], 1.0, -1.0)
    n = torch.where((t == t_side)[:, None], n_side, n_cap)
    return t, n


def _hit_object(o, d, shape: int, scale: float):
    r = _BASE_SIZE * scale
    dev = o.device
    if shape == 0:  # cube with the sphere's height
        a = 0.85 * r
        return _hit_box(o, d, torch.tensor([-a, 0.0, -a], device=dev), torch.tensor([a, 2 * a, a], device=dev))
    if shape == 1:  # cylinder
        return _hit_cylinder(o, d, 0.0, 1.8 * r, 0.85 * r)
    if shape == 2:  # sphere
        return _hit_sphere(o, d, torch.tensor([0.0, r, 0.0], device=dev), r)
    # capsule: union of a cylinder and two spheres (first hit = the nearest entry)
    rc = 0.62 * r
    y0, y1 = rc, rc + 1.7 * r
    parts = [
        _hit_cylinder(o, d, y0, y1, rc),
        _hit_sphere(o, d, torch.tensor([0.0, y0, 0.0], device=dev), rc),
        _hit_sphere(o, d, torch.tensor([0.0, y1, 0.0], device=dev), rc),
    ]
    ts = torch.stack([p[0] for p in parts], 0)
    t, which = ts.min(0)
    ns = torch.stack([p[1] for p in parts], 0)
    n = ns.gather(0, which[None, :, None].expand(1, -1, 3))[0]
    return t, n


def _camera_rays(orientation_deg: float, size: int):
    phi = math.radians(orientation_deg)
    eye = torch.tensor([_CAM_DIST * math.sin(phi), _CAM_HEIGHT, _CAM_DIST * math.cos(phi)], dtype=torch.float64)
    target = torch.tensor(_LOOK_AT, dtype=torch.float64)
    fwd = target - eye
    fwd = fwd / fwd.norm()
    right = torch.linalg.cross(fwd, torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64))
    right = right / right.norm()
    up = torch.linalg.cross(right, fwd)
    n = size * _SUPERSAMPLE
    s = (torch.arange(n, dtype=torch.float64) + 0.5) / n * 2.0 - 1.0  # [-1, 1]
    v, u = torch.meshgrid(-s, s, indexing="ij")  # rows go down the image
    d = fwd[None] + _FOV_TAN * (u.reshape(-1, 1) * right[None] + v.reshape(-1, 1) * up[None])
    d = d / d.norm(dim=-1, keepdim=True)
    return eye.expand_as(d), d


class single_thread:
    """Run a block with one torch intra-op thread, restoring the setting afterwards.

    The ray caster works on tensors of ~16k rays, too small to gain from threads; on a
    busy machine the thread pool's oversubscription made it ~10x slower.
    """

    def __enter__(self):
        self._n = torch.get_num_threads()
        if self._n != 1:
            torch.set_num_threads(1)
        return self

    def __exit__(self, *exc):
        if self._n != 1:
            torch.set_num_threads(self._n)
        return False


def render_geometry(scale: float, shape: int, orientation_deg: float, size: int = IMAGE_SIZE) -> torch.Tensor:
    """Ray cast one geometry: ``[5, size*size]`` float32 maps (floor, wall, object
    weights = coverage x shading, the object's specular highlight, and sky coverage)."""
    with single_thread():
        return _render_geometry(scale, shape, orientation_deg, size)


def _render_geometry(scale: float, shape: int, orientation_deg: float, size: int) -> torch.Tensor:
    o, d = _camera_rays(orientation_deg, size)
    light = torch.as_tensor(_LIGHT, dtype=torch.float64)
    t_obj, n_obj = _hit_object(o, d, shape, scale)
    dy = d[:, 1]
    t_floor = torch.where(dy < -1e-9, -o[:, 1] / torch.where(dy < -1e-9, dy, -1.0), torch.full_like(dy, _INF))
    # the walls: back wall z = _WALL_Z and side walls x = -+_SIDE_X, up to _WALL_TOP
    walls = []
    for axis, plane, normal in ((2, _WALL_Z, (0.0, 0.0, 1.0)), (0, -_SIDE_X, (1.0, 0.0, 0.0)), (0, _SIDE_X, (-1.0, 0.0, 0.0))):
        da = d[:, axis]
        toward = da * (plane - o[:, axis]) > 1e-12
        tw = torch.where(toward, (plane - o[:, axis]) / torch.where(toward, da, 1.0), torch.full_like(da, _INF))
        walls.append((tw, normal))
    t_wall, wall_idx = torch.stack([w[0] for w in walls], 0).min(0)
    n_wall = torch.tensor([w[1] for w in walls], dtype=torch.float64)[wall_idx]
    hit_y = o[:, 1] + t_wall.clamp(max=1e6) * d[:, 1]
    t_floor = torch.where(t_floor < t_wall, t_floor, torch.full_like(t_floor, _INF))  # the room's floor only
    t_wall = torch.where(hit_y <= _WALL_TOP, t_wall, torch.full_like(t_wall, _INF))  # above: sky
    ts = torch.stack([t_floor, t_wall, t_obj], 0)
    t, region = ts.min(0)
    sky = ~torch.isfinite(t)
    p = o + t[:, None].clamp(max=1e6) * d
    normals = torch.stack([torch.tensor([0.0, 1.0, 0.0], dtype=torch.float64).expand_as(d), n_wall, n_obj], 0)
    nrm = normals.gather(0, region[None, :, None].expand(1, -1, 3))[0]
    lambert = (nrm * light).sum(-1).clamp(min=0.0)
    # cast shadow of the object on floor and wall
    lit = torch.ones_like(t)
    bg = (region < 2) & ~sky
    if bg.any():
        ps = p[bg] + 1e-4 * nrm[bg]
        t_sh, _ = _hit_object(ps, light.expand_as(ps), shape, scale)
        lit[bg] = torch.where(torch.isfinite(t_sh), 0.0, 1.0).to(lit.dtype)
    shade = _AMBIENT + _DIFFUSE * lambert * lit
    refl = 2.0 * (nrm * light).sum(-1, keepdim=True) * nrm - light
    spec = _SPECULAR * ((refl * -d).sum(-1).clamp(min=0.0) ** _SHININESS) * (region == 2)
    maps = torch.stack([shade * ((region == k) & ~sky) for k in range(3)] + [spec, sky.to(shade.dtype)], 0)
    maps = maps.reshape(5, size, _SUPERSAMPLE, size, _SUPERSAMPLE).mean((2, 4))
    return maps.reshape(5, size * size).float()


class Shapes3D(GroundTruthDataset):
    """3D shapes rendered on the fly: 480,000 RGB 64x64 images (see module docstring)."""

    name = "shapes3d"
    factor_names = ("floor_hue", "wall_hue", "object_hue", "scale", "shape", "orientation")
    factor_sizes = (10, 10, 10, 8, 4, 15)
    observation_shape = (3, IMAGE_SIZE, IMAGE_SIZE)
    binary = False
    factor_values = (HUES, HUES, HUES, SCALES, np.arange(4), ORIENTATIONS_DEG)

    def __init__(self) -> None:
        n_geo = 8 * 4 * 15
        self._maps = torch.zeros(n_geo, 5, IMAGE_SIZE * IMAGE_SIZE)
        self._done = np.zeros(n_geo, dtype=bool)
        self._palette = torch.as_tensor(hue_to_rgb(HUES))  # [10, 3]
        self._sky = torch.as_tensor(SKY_RGB)

    def _geometry(self, geo: np.ndarray) -> torch.Tensor:
        missing = np.unique(geo[~self._done[geo]])
        for g in missing.tolist():
            sc, rest = divmod(g, 4 * 15)
            sh, ori = divmod(rest, 15)
            self._maps[g] = render_geometry(float(SCALES[sc]), sh, float(ORIENTATIONS_DEG[ori]))
            self._done[g] = True
        return self._maps[torch.as_tensor(geo)]


    def region_weights(self, factors) -> torch.Tensor:
        """Per-pixel ``[n, 5, 64, 64]`` maps: floor, wall and object weights, specular and sky coverage."""
        f = self.check_factors(factors)
        geo = (f[:, 3] * 4 + f[:, 4]) * 15 + f[:, 5]
        return self._geometry(geo).view(-1, 5, IMAGE_SIZE, IMAGE_SIZE)

    def observations(self, factors) -> torch.Tensor:
        """Float32 ``[n, 3, 64, 64]`` RGB images in [0, 1] for factor rows ``[n, 6]``."""
        f = self.check_factors(factors)
        geo = (f[:, 3] * 4 + f[:, 4]) * 15 + f[:, 5]
        maps = self._geometry(geo)  # [n, 4, HW]
        colors = self._palette[torch.as_tensor(f[:, :3])]  # [n, 3 regions, 3 rgb]
        # [n, rgb, HW] = sum over regions of colour x weight, plus the white highlight
        img = torch.bmm(colors.transpose(1, 2), maps[:, :3]) + maps[:, 3:4] + self._sky[None, :, None] * maps[:, 4:5]
        return img.clamp_(0.0, 1.0).view(-1, 3, IMAGE_SIZE, IMAGE_SIZE)
