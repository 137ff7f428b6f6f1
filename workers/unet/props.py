"""Roadside and on-road clutter for synthetic scenes: cars, trucks, trees, poles, buildings, rails, signs.

Props are flat sprites at a world position (lateral offset from the road centre, distance along the
road); they are projected with the scene's camera and painted far to near. Every prop pixel is not
road, so a car on the road cuts a hole in the road mask while its shadow does not.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

Color = tuple[float, float, float]
SHIFT = 4  # cv2 sub-pixel bits: coordinates are drawn in 1/16 pixel
ONE = 1 << SHIFT


@dataclass(frozen=True)
class Prop:
    """One object: kind, lateral offset d (m), position along the road as a fraction of the prop period,
    world speed (m/s, 0 = parked/static), size (m) and colours."""

    kind: str  # car | truck | tree | conifer | pole | building | rail | sign
    d: float
    phase: float
    speed: float
    width: float
    height: float
    depth: float
    color: Color
    color2: Color


@dataclass(frozen=True)
class View:
    """Camera state for projecting props: focal (px), principal column, horizon row, camera height (m),
    distance travelled s (m), time t (s) and the road centre's lateral position as a function of depth."""

    f: float
    cx: float
    horizon: float
    height: float
    s: float
    t: float
    centre: Callable[[float], float]

    def project(self, d: float, z: float, y: float = 0.0) -> tuple[float, float]:
        """Image (column, row) of the world point at lateral offset d, depth z, height y above ground."""
        x = float(self.centre(z)) + d
        return self.cx + self.f * x / z, self.horizon + self.f * (self.height - y) / z


def random_props(rng: np.random.Generator, road_width: float, lane_width: float, lanes: int) -> tuple[Prop, ...]:
    """Clutter for one scene: an urban or rural mix, with some traffic on the road."""
    u = rng.uniform
    half = road_width / 2
    urban = rng.random() < 0.45
    props: list[Prop] = []

    def side() -> int:
        """Left (-1) or right (+1) of the road."""
        return -1 if rng.random() < 0.5 else 1

    def add(kind, d, width, height, depth=0.0, speed=0.0, color=None, color2=None):
        """Append a prop at a random phase along the road (random colours unless given)."""
        color = tuple(u(20, 235, 3)) if color is None else color
        color2 = tuple(u(20, 235, 3)) if color2 is None else color2
        props.append(
            Prop(kind, float(d), float(u(0, 1)), float(speed), float(width), float(height), float(depth), color, color2)
        )

    for _ in range(int(rng.choice([0, 0, 1, 1, 2, 3, 4, 6]))):  # traffic
        lane = int(rng.integers(lanes))
        d = -half + (lane + 0.5) * lane_width + u(-0.3, 0.3)
        oncoming = lanes > 1 and lane < lanes // 2
        speed = -u(5, 25) if oncoming else u(0, 25)
        if rng.random() < 0.15:
            add("truck", d, u(2.3, 2.6), u(2.8, 3.9), speed=speed, color2=tuple(u(10, 60, 3)))
        else:
            add("car", d, u(1.6, 2.0), u(1.3, 1.8), speed=speed, color2=tuple(u(15, 70, 3)))
    for _ in range(int(rng.choice([0, 0, 1, 2, 3]))):  # parked, straddling the edge
        s = side()
        add("car", s * (half + u(-0.3, 1.2)), u(1.6, 2.0), u(1.3, 1.7), color2=tuple(u(15, 70, 3)))
    greens = lambda: (u(20, 90), u(60, 140), u(15, 70))
    for _ in range(int(rng.integers(0, 6 if urban else 16))):
        s = side()
        kind = "conifer" if rng.random() < 0.3 else "tree"
        add(
            kind,
            s * (half + u(1.5, 18)),
            u(2.0, 6.0),
            u(4.0, 12.0),
            color=greens(),
            color2=(u(50, 90), u(35, 60), u(20, 40)),
        )
    for _ in range(int(rng.integers(0, 8 if urban else 4))):
        s = side()
        g = u(70, 170)
        add("pole", s * (half + u(0.4, 2.5)), u(0.15, 0.3), u(5.0, 10.0), color=(g, g, g))
    if urban or rng.random() < 0.15:
        for _ in range(int(rng.integers(2, 12))):
            s = side()
            add("building", s * (half + u(2.5, 14)), u(6, 25), u(4, 22), depth=u(8, 25))
    for s in (-1, 1):
        if rng.random() < 0.25:
            g = u(120, 200)
            add("rail", s * (half + u(0.3, 1.5)), u(0.1, 0.3), u(0.5, 0.9), depth=u(30, 150), color=(g, g, g + 5))
    for _ in range(int(rng.integers(0, 3))):
        add("sign", side() * (half + u(0.5, 3)), u(0.5, 1.2), u(2.0, 3.5), color=tuple(u(0, 255, 3)))
    return tuple(props)


def draw_props(
    image: np.ndarray, mask: np.ndarray, props: tuple[Prop, ...], view: View, period: float, near: float
) -> None:
    """Paint the props visible from `view` onto image (float RGB) and clear the road mask under them."""
    placed = []
    for prop in props:
        z = (prop.phase * period + prop.speed * view.t - view.s) % period
        if z >= near and view.f * max(prop.height, prop.width) / z >= 1.0:  # skip sub-pixel props
            placed.append((z, prop))
    placed.sort(key=lambda item: -item[0])
    canvas = _Canvas()
    for z, prop in placed:
        PAINTERS[prop.kind](canvas, prop, view, z)
    canvas.flush(image, mask)


class _Canvas:
    """Collects convex polygons in painting order, then draws them all with one coordinate conversion."""

    def __init__(self) -> None:
        """An empty canvas."""
        self.points: list[np.ndarray] = []
        self.styles: list[tuple[Color, bool]] = []

    def poly(self, points, color: Color, occlude: bool = True) -> None:
        """A filled convex polygon from float (x, y) points; `occlude` clears the road mask under it."""
        self.points.append(np.asarray(points, np.float64).reshape(-1, 2))
        self.styles.append((color, occlude))

    def box(self, x0: float, y0: float, x1: float, y1: float, color: Color, occlude: bool = True) -> None:
        """A filled axis-aligned rectangle."""
        self.poly([x0, y0, x1, y0, x1, y1, x0, y1], color, occlude)

    def ellipse(self, cx: float, cy: float, ax: float, ay: float, color: Color, occlude: bool = True) -> None:
        """A filled ellipse (as a 24-gon)."""
        self.poly(np.stack([cx + ax * _COS, cy + ay * _SIN], axis=1), color, occlude)

    def flush(self, image: np.ndarray, mask: np.ndarray) -> None:
        """Draw everything collected, anti-aliased on the image and hard-edged (0 = not road) on the mask."""
        if not self.points:
            return
        fixed = np.round(np.clip(np.concatenate(self.points), -1e5, 1e5) * ONE).astype(np.int32)
        start = 0
        for points, (color, occlude) in zip(self.points, self.styles):
            poly = fixed[start : start + len(points)]
            start += len(points)
            cv2.fillConvexPoly(image, poly, color, cv2.LINE_AA, SHIFT)
            if occlude:
                cv2.fillConvexPoly(mask, poly, 0, cv2.LINE_8, SHIFT)


_ANGLES = np.linspace(0, 2 * np.pi, 24, endpoint=False)
_COS, _SIN = np.cos(_ANGLES), np.sin(_ANGLES)


def _scaled(color: Color, k: float) -> Color:
    """`color` with brightness × k."""
    return tuple(float(c) * k for c in color)


def _car(canvas: _Canvas, p: Prop, view: View, z: float) -> None:
    """Rear/front view of a car: body, cabin with glass, wheels, lights, and a dark shadow beneath."""
    u, v = view.project(p.d, z)
    k = view.f / z
    w, h = p.width * k, p.height * k
    canvas.ellipse(u, v - 0.02 * h, 0.6 * w, 0.07 * w, (18, 18, 20), occlude=False)
    canvas.box(u - w / 2, v - 0.62 * h, u + w / 2, v, _scaled(p.color, 0.35))  # underside
    canvas.box(u - 0.47 * w, v - 0.2 * h, u - 0.25 * w, v, (12, 12, 12))
    canvas.box(u + 0.25 * w, v - 0.2 * h, u + 0.47 * w, v, (12, 12, 12))
    canvas.box(u - w / 2, v - 0.62 * h, u + w / 2, v - 0.16 * h, p.color)
    canvas.box(u - 0.42 * w, v - h, u + 0.42 * w, v - 0.6 * h, _scaled(p.color, 0.9))
    canvas.box(u - 0.36 * w, v - 0.94 * h, u + 0.36 * w, v - 0.64 * h, p.color2)
    lamp = (200, 30, 25) if p.speed >= 0 else (235, 235, 210)
    canvas.box(u - 0.48 * w, v - 0.56 * h, u - 0.32 * w, v - 0.46 * h, lamp)
    canvas.box(u + 0.32 * w, v - 0.56 * h, u + 0.48 * w, v - 0.46 * h, lamp)


def _truck(canvas: _Canvas, p: Prop, view: View, z: float) -> None:
    """A box truck seen from behind: tall cargo box, bumper, twin wheels."""
    u, v = view.project(p.d, z)
    k = view.f / z
    w, h = p.width * k, p.height * k
    canvas.ellipse(u, v - 0.02 * h, 0.6 * w, 0.06 * w, (18, 18, 20), occlude=False)
    canvas.box(u - w / 2, v - h, u + w / 2, v, p.color2)
    canvas.box(u - w / 2, v - h, u + w / 2, v - 0.2 * h, p.color)
    canvas.box(u - 0.02 * w, v - 0.95 * h, u + 0.02 * w, v - 0.25 * h, _scaled(p.color, 0.7))
    canvas.box(u - 0.48 * w, v - 0.13 * h, u - 0.2 * w, v, (12, 12, 12))
    canvas.box(u + 0.2 * w, v - 0.13 * h, u + 0.48 * w, v, (12, 12, 12))


def _tree(canvas: _Canvas, p: Prop, view: View, z: float) -> None:
    """Trunk and a two-tone leafy crown."""
    u, v = view.project(p.d, z)
    k = view.f / z
    r, h = p.width / 2 * k, p.height * k
    canvas.box(u - 0.06 * r - 1, v - h * 0.6, u + 0.06 * r + 1, v, p.color2)
    canvas.ellipse(u, v - h + r * 0.9, r, r * 0.9, p.color)
    canvas.ellipse(u + 0.25 * r, v - h + r * 1.1, r * 0.6, r * 0.55, _scaled(p.color, 0.75))


def _conifer(canvas: _Canvas, p: Prop, view: View, z: float) -> None:
    """Trunk and a dark triangular crown."""
    u, v = view.project(p.d, z)
    k = view.f / z
    r, h = p.width / 2 * k, p.height * k
    canvas.box(u - 0.05 * r - 1, v - 0.3 * h, u + 0.05 * r + 1, v, p.color2)
    canvas.poly([[u, v - h], [u + r, v - 0.2 * h], [u - r, v - 0.2 * h]], _scaled(p.color, 0.7))


def _pole(canvas: _Canvas, p: Prop, view: View, z: float) -> None:
    """A lamp post with an arm reaching over the road."""
    u, v = view.project(p.d, z)
    k = view.f / z
    w, h = max(p.width * k, 1.0), p.height * k
    canvas.box(u - w / 2, v - h, u + w / 2, v, p.color)
    reach = -np.sign(p.d) * 1.8 * k
    canvas.box(min(u, u + reach), v - h, max(u, u + reach), v - h + w, p.color)


def _sign(canvas: _Canvas, p: Prop, view: View, z: float) -> None:
    """A post with a round or square plate."""
    u, v = view.project(p.d, z)
    k = view.f / z
    w, h = p.width * k, p.height * k
    canvas.box(u - 0.04 * w - 0.5, v - h, u + 0.04 * w + 0.5, v, (120, 120, 125))
    if p.color2[0] > 128:
        canvas.ellipse(u, v - h, w / 2, w / 2, p.color)
    else:
        canvas.box(u - w / 2, v - h - w / 2, u + w / 2, v - h + w / 2, p.color)


def _building(canvas: _Canvas, p: Prop, view: View, z: float) -> None:
    """A block beside the road: a shaded side wall receding along the road, then the facade with windows."""
    s = 1.0 if p.d > 0 else -1.0
    far = z + p.depth
    near_top, near_bot = view.project(p.d, z, p.height), view.project(p.d, z)
    far_top, far_bot = view.project(p.d, far, p.height), view.project(p.d, far)
    canvas.poly([near_top, far_top, far_bot, near_bot], _scaled(p.color, 0.7))
    u0, v0 = near_top
    u1, v1 = view.project(p.d + s * p.width, z)
    x0, x1 = min(u0, u1), max(u0, u1)
    canvas.box(x0, v0, x1, v1, p.color)
    k = view.f / z
    if k * 1.4 < 2:  # windows smaller than 2 px: skip the detail
        return
    for y in np.arange(v0 + 0.8 * k, v1 - 1.9 * k, 3.2 * k)[:12]:
        for x in np.arange(x0 + 0.8 * k, x1 - 1.4 * k, 3.0 * k)[:12]:
            canvas.box(x, y, x + 1.4 * k, y + 1.4 * k, p.color2, occlude=False)


def _rail(canvas: _Canvas, p: Prop, view: View, z: float) -> None:
    """A guard rail along the road edge, drawn as short straight segments that follow the curve."""
    cuts = np.arange(z, z + p.depth + 4.0, 4.0)
    top = [view.project(p.d, a, p.height) for a in cuts]
    bottom = [view.project(p.d, a, p.height - 0.35) for a in cuts]
    post = _scaled(p.color, 0.6)
    for i in range(len(cuts) - 1, 0, -1):  # far to near
        g = view.project(p.d, cuts[i])
        w = 0.06 * view.f / cuts[i]
        canvas.box(g[0] - w, top[i][1], g[0] + w, g[1], post)
        canvas.poly([top[i - 1], top[i], bottom[i], bottom[i - 1]], p.color)


PAINTERS = {
    "car": _car,
    "truck": _truck,
    "tree": _tree,
    "conifer": _conifer,
    "pole": _pole,
    "sign": _sign,
    "building": _building,
    "rail": _rail,
}
