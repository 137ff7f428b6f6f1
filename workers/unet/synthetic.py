"""Procedural dashcam road scenes with exact road masks, for training data and demo videos.

A pinhole camera rides over a flat ground plane along a curving road; every ground pixel is mapped
to road coordinates (lateral offset d, distance Z along the road), so textures, lane dashes, shadows
and roadside props stay glued to the world while the camera moves forward in time.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property

import cv2
import numpy as np

from workers.samples import Sample
from workers.unet.props import Prop, View, draw_props, random_props

Color = tuple[float, float, float]

NEAR = 2.5  # metres: nothing nearer than this is drawn
FAR = 3000.0  # metres: ground depth clamp just under the horizon


@dataclass(frozen=True)
class LaneLine:
    """One painted line at lateral offset `d` (m) from the road centre; dashed when `dash` > 0."""

    d: float
    width: float
    dash: float  # painted length (m); 0 = solid
    period: float  # dash + gap (m)
    color: Color
    opacity: float


@dataclass(frozen=True)
class Shadow:
    """A soft-edged band of shade on the ground (road stays road), periodic along the road."""

    z: float
    length: float
    d0: float
    d1: float
    darkness: float
    wobble: float


@dataclass(frozen=True)
class Shoulder:
    """A strip just outside one road edge that is not road: sidewalk or gravel."""

    width: float
    color: Color
    tiles: bool  # sidewalk slabs (joints every ~1.5 m)


@dataclass(frozen=True)
class RoadScene:
    """All parameters of one scene; `render(h, w, t)` is a pure function of them and of t."""

    seed: int
    # camera
    focal: float  # focal length as a fraction of image width
    horizon: float  # horizon row as a fraction of image height
    camera_height: float  # metres
    center_shift: float  # principal point shift, fraction of width
    speed: float  # m/s along the road
    sway: float  # lateral steering sway amplitude (m)
    sway_length: float  # distance (m) of one sway cycle
    lane_offset: float  # camera's mean lateral offset from the road centre (m)
    bob: float  # pitch bob amplitude, fraction of height
    # road geometry
    road_width: float
    curvature: float  # mean curvature (1/m)
    curve_drift: float  # curvature oscillation amplitude (1/m)
    curve_length: float  # distance (m) of one curvature cycle
    curve_phase: float
    # look
    road_color: Color
    road_texture: float
    lines: tuple[LaneLine, ...]
    shadows: tuple[Shadow, ...]
    shadow_period: float
    shoulders: tuple[Shoulder | None, Shoulder | None]  # left, right
    verge_colors: tuple[Color, Color]  # left, right
    verge_texture: float
    sky_top: Color
    sky_horizon: Color
    skyline_color: Color
    skyline_height: float  # fraction of height
    skyline_phase: float
    fog_distance: float
    gain: float
    contrast: float
    cast: Color
    gamma: float
    noise: float
    props: tuple[Prop, ...]
    prop_period: float

    @classmethod
    def random(cls, rng: np.random.Generator) -> RoadScene:
        """Draw a random scene: geometry, palette, lighting and roadside clutter."""
        u = rng.uniform
        mood = str(rng.choice(["sunny", "sunny", "overcast", "dusk", "hazy"]))
        sky_top, sky_horizon = _sky(rng, mood)
        road_color = _road_color(rng)
        lanes = int(rng.choice([1, 2, 2, 2, 3, 4]))
        lane_width = u(2.8, 3.8)
        road_width = lanes * lane_width + u(0.2, 1.2)
        sunny = mood == "sunny"
        lane_offset = (rng.integers(lanes) + 0.5) * lane_width - road_width / 2 + u(-0.4, 0.4)
        if rng.random() < 0.15:  # camera drifting onto the shoulder, or no lane discipline
            lane_offset = u(-road_width / 2, road_width / 2)
        return cls(
            seed=int(rng.integers(2**31)),
            focal=u(0.55, 0.95),
            horizon=u(0.36, 0.56),
            camera_height=u(1.2, 1.9),
            center_shift=u(-0.06, 0.06),
            speed=u(5.0, 25.0),
            sway=u(0.0, 0.6),
            sway_length=u(60.0, 250.0),
            lane_offset=float(lane_offset),
            bob=u(0.0, 0.006),
            road_width=road_width,
            curvature=float(rng.choice([0.0, 1.0])) * u(-1 / 150, 1 / 150),
            curve_drift=u(0.0, 1 / 200),
            curve_length=u(150.0, 600.0),
            curve_phase=u(0, 2 * np.pi),
            road_color=road_color,
            road_texture=u(0.03, 0.12),
            lines=_lines(rng, lanes, lane_width, road_width),
            shadows=_shadows(rng, road_width) if sunny or rng.random() < 0.2 else (),
            shadow_period=u(60.0, 160.0),
            shoulders=(_shoulder(rng, road_color), _shoulder(rng, road_color)),
            verge_colors=_verge_pair(rng, road_color),
            verge_texture=u(0.12, 0.35),
            sky_top=sky_top,
            sky_horizon=sky_horizon,
            skyline_color=tuple(u(30, 140, 3) * np.array([0.8, 1.0, 0.9])),
            skyline_height=u(0.0, 0.12),
            skyline_phase=u(0, 100),
            fog_distance=u(80.0, 1500.0) if mood == "hazy" else u(300.0, 3000.0),
            gain=u(0.55, 1.3) if mood != "dusk" else u(0.4, 0.9),
            contrast=u(0.7, 1.3),
            cast=tuple(u(0.88, 1.12, 3)),
            gamma=u(0.75, 1.35),
            noise=u(0.0, 9.0),
            props=random_props(rng, road_width, lane_width, lanes),
            prop_period=u(120.0, 260.0),
        )

    def render(self, height: int, width: int, t: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
        """The frame at time t (s): (RGB uint8 H×W×3, mask uint8 H×W with 1 = road)."""
        s = self.speed * t
        f = self.focal * width
        cx = width * (0.5 + self.center_shift)
        horizon = height * (self.horizon + self.bob * float(np.sin(2 * np.pi * 1.7 * t)))
        offset, yaw = self._camera_pose(s)
        image = np.empty((height, width, 3), np.float32)
        mask = np.zeros((height, width), np.uint8)
        first = min(height, max(0, int(np.floor(horizon + 0.5))))
        self._paint_sky(image[:first], horizon, width, cx, f, yaw)
        if first < height:
            rows = np.arange(first, height, dtype=np.float32) + 0.5
            z = np.minimum(f * self.camera_height / np.maximum(rows - horizon, 1e-3), FAR)[:, None]
            cols = (np.arange(width, dtype=np.float32) + 0.5 - cx)[None, :]
            d = cols * z / f - self._centre(z, s, offset, yaw)
            ground, road = self._paint_ground(z, d, s, f)
            image[first:] = ground
            mask[first:] = road
        view = View(
            f=f,
            cx=cx,
            horizon=horizon,
            height=self.camera_height,
            s=s,
            t=t,
            centre=lambda z: self._centre(z, s, offset, yaw),
        )
        draw_props(image, mask, self.props, view, self.prop_period, NEAR)
        return self._develop(image, t), mask

    @cached_property
    def _texture(self) -> np.ndarray:
        """This scene's ground texture (computed once per scene object)."""
        return _texture(self.seed)

    def _camera_pose(self, s: float) -> tuple[float, float]:
        """Camera lateral offset from the road centre (m) and yaw relative to the road (rad)."""
        phase = 2 * math.pi * s / self.sway_length
        offset = self.lane_offset + self.sway * math.sin(phase)
        yaw = self.sway * 2 * math.pi / self.sway_length * math.cos(phase)
        return offset, yaw

    def _centre(self, z: np.ndarray | float, s: float, offset: float, yaw: float):
        """Road centre's lateral position (m) in camera coordinates at depth z (curvature drifts along the road)."""
        w = 2 * math.pi / self.curve_length
        a = w * s + self.curve_phase
        bend = self.curvature * z * z / 2 - self.curve_drift / (w * w) * (
            np.sin(w * z + a) - math.sin(a) - w * z * math.cos(a)
        )
        return bend - offset - yaw * z

    def _paint_sky(self, sky: np.ndarray, horizon: float, width: int, cx: float, f: float, yaw: float) -> None:
        """Vertical sky gradient plus a distant skyline (hills / tree line) above the horizon."""
        rows = sky.shape[0]
        if rows == 0:
            return
        frac = (np.arange(rows, dtype=np.float32) + 0.5) / max(horizon, 1.0)
        top, bottom = np.array(self.sky_top, np.float32), np.array(self.sky_horizon, np.float32)
        sky[:] = (top + (bottom - top) * frac[:, None] ** 1.5)[:, None, :]
        if self.skyline_height <= 0:
            return
        angle = (np.arange(width, dtype=np.float32) + 0.5 - cx) / f + yaw + self.skyline_phase
        profile = sum(np.sin(angle * k + k * 1.3) / k for k in (1.0, 2.7, 6.1, 13.3, 29.0))
        peak = horizon - horizon * self.skyline_height * (0.6 + 0.4 * profile / 2.2)
        below = (np.arange(rows, dtype=np.float32) + 0.5)[:, None] > peak[None, :]
        sky[below] = np.array(self.skyline_color, np.float32) * 0.6 + bottom * 0.4

    def _paint_ground(self, z: np.ndarray, d: np.ndarray, s: float, f: float) -> tuple[np.ndarray, np.ndarray]:
        """Colour every ground pixel from its road coordinates; returns (colour G×W×3, road mask)."""
        along = z + s  # distance along the road, world-fixed
        pixel = z / f  # world size (m) of one pixel at this depth
        tex = self._texture
        half = np.float32(self.road_width / 2)
        dist = np.abs(d)
        road = dist < half
        fade = np.clip(0.08 / pixel, 0.0, 1.0)  # fine texture fades where a pixel covers > 8 cm
        grain = _lookup(tex, d * 3.0, along * 3.0) * fade
        coarse = _lookup(tex, d * 0.35 + 17.0, along * 0.25 + 31.0)

        # off-road: verge left/right (materials 0/1), shoulder left/right (2/3), each with its own texture
        material = (d > 0).astype(np.uint8)
        shade = 1.0 + self.verge_texture * (grain + coarse)
        palette = [self.verge_colors[0], self.verge_colors[1], (0, 0, 0), (0, 0, 0)]
        for k, shoulder in enumerate(self.shoulders):
            if shoulder is None:
                continue
            palette[2 + k] = shoulder.color
            inside = (material == k) & (dist < half + shoulder.width)
            material[inside] = 2 + k
            strip = 1.0 + 0.05 * grain
            if shoulder.tiles:  # slab joints, and a kerb in shade along the road edge
                joint = (along % 1.5) < 0.06
                strip = strip - np.float32(0.18) * joint * fade
                strip = np.where(dist - half < 0.2, strip * np.float32(0.72), strip)
            shade = np.where(inside, strip, shade)
        colour = np.asarray(palette, np.float32)[material] * shade[..., None]

        asphalt = np.array(self.road_color, np.float32) * (1.0 + self.road_texture * (grain + 0.6 * coarse))[..., None]
        paint = self._paint_lines(d, along, pixel, asphalt)
        cover = np.clip((half - dist) / pixel + 0.5, 0.0, 1.0)  # anti-aliased road edge
        colour += (paint - colour) * cover[..., None]

        light = self._shade(d, along)
        fog = 1.0 - np.exp(-z / np.float32(self.fog_distance))
        colour *= (light * (1.0 - fog))[..., None]
        colour += np.array(self.sky_horizon, np.float32) * fog[..., None]
        return colour, road.astype(np.uint8)

    def _paint_lines(self, d: np.ndarray, along: np.ndarray, pixel: np.ndarray, asphalt: np.ndarray) -> np.ndarray:
        """Blend the lane lines (anti-aliased, dashed in world distance) over the asphalt, one blend per colour."""
        phases: dict[float, np.ndarray] = {}
        alphas: dict[Color, np.ndarray] = {}
        inv = 1.0 / pixel
        for line in self.lines:
            alpha = np.clip((line.width / 2 - np.abs(d - line.d)) * inv + 0.5, 0.0, line.opacity)
            if line.dash > 0:
                if line.period not in phases:
                    phases[line.period] = along % np.float32(line.period)
                alpha *= phases[line.period] < line.dash
            alphas[line.color] = np.maximum(alphas[line.color], alpha) if line.color in alphas else alpha
        for color, alpha in alphas.items():
            asphalt += (np.array(color, np.float32) - asphalt) * alpha[..., None]
        return asphalt

    def _shade(self, d: np.ndarray, along: np.ndarray) -> np.ndarray:
        """Multiplicative light factor on the ground: 1 in sun, < 1 in the shadow bands."""
        light = np.ones(d.shape, np.float32)
        for band in self.shadows:
            u = (along - np.float32(band.z)) % np.float32(self.shadow_period)
            wob = band.wobble * np.sin(along * 0.9 + band.z)
            inside = (u < band.length) & (d > band.d0 + wob) & (d < band.d1 + wob)
            light[inside] = np.minimum(light[inside], 1.0 - band.darkness)
        return light

    def _develop(self, image: np.ndarray, t: float) -> np.ndarray:
        """Camera response: sensor noise, then exposure, contrast, colour cast and gamma via a lookup table."""
        if self.noise > 0:
            rng = np.random.default_rng([self.seed, int(round(t * 1000))])
            image += rng.standard_normal(image.shape[:2], dtype=np.float32)[..., None] * np.float32(self.noise)
        raw = np.clip(image, 0, 255, out=image).astype(np.uint8)
        level = np.arange(256, dtype=np.float32)[:, None] * (np.array(self.cast, np.float32) * self.gain / 255.0)
        level = np.clip((level - 0.5) * self.contrast + 0.5, 0.0, 1.0) ** self.gamma
        table = np.round(level * 255.0).astype(np.uint8).reshape(256, 1, 3)
        return cv2.LUT(raw, table)


# Video frames taller than this are drawn at this height and scaled up (bilinear; the mask by nearest pixel):
# a 1280×720 drive renders over 4× faster; its detail is the scene's, which 288 lines already resolve.
VIDEO_RENDER_HEIGHT = 288


def road_frames(seed: int, width: int, height: int, fps: float, count: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """A driving video along one random scene: yields (RGB uint8 image, road mask) per frame."""
    scene = RoadScene.random(np.random.default_rng(seed))
    scale = min(1.0, VIDEO_RENDER_HEIGHT / height)
    drawn = (max(16, round(height * scale)), max(16, round(width * scale)))
    for i in range(count):
        image, mask = scene.render(*drawn, t=i / fps)
        if drawn != (height, width):
            image = cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
            mask = cv2.resize(mask, (width, height), interpolation=cv2.INTER_NEAREST)
        yield image, mask


def annotated_road_frames(seed: int, width: int, height: int, fps: float, count: int) -> Iterator[tuple]:
    """road_frames with the ground truth a sample video records: (image, road mask H×W×1, class ids [1],
    instance ids [1])."""
    for image, mask in road_frames(seed, width, height, fps, count):
        yield image, mask[:, :, None] > 0, [1], [1]


ROAD_SAMPLE = Sample("road", annotated_road_frames, ("road",))


def _texture(seed: int, size: int = 64) -> np.ndarray:
    """A tileable, zero-mean noise texture (blurred white noise, wrapped at the borders), flattened."""
    rng = np.random.default_rng([seed, 7])
    pad = 6
    noise = np.pad(rng.standard_normal((size, size)).astype(np.float32), pad, mode="wrap")
    field = cv2.GaussianBlur(noise, (0, 0), 1.6)[pad:-pad, pad:-pad]
    return (field / (field.std() * 3 + 1e-6)).ravel()


def _lookup(tex: np.ndarray, x: np.ndarray, y: np.ndarray, size: int = 64) -> np.ndarray:
    """Nearest-neighbour tiled texture lookup at world coordinates (in texture cells; size a power of 2)."""
    n = size - 1
    return np.take(tex, (y.astype(np.int32) & n) * size + (x.astype(np.int32) & n))


def _road_color(rng: np.random.Generator) -> Color:
    """Asphalt (mostly), concrete, or packed dirt."""
    kind = rng.random()
    if kind < 0.75:  # asphalt
        g = rng.uniform(45, 140)
        return tuple(g + rng.uniform(-8, 8, 3))
    if kind < 0.9:  # concrete
        g = rng.uniform(135, 190)
        return tuple(g + rng.uniform(-6, 10, 3))
    return tuple(rng.uniform(95, 150) * np.array([1.0, 0.88, 0.72]))  # packed dirt / tar-and-chip


def _lines(rng: np.random.Generator, lanes: int, lane_width: float, road_width: float) -> tuple[LaneLine, ...]:
    """Lane dividers (dashed or solid, white or yellow) and optional edge lines."""
    if rng.random() < 0.12:
        return ()
    white = tuple(rng.uniform(205, 250, 3))
    yellow = (rng.uniform(215, 245), rng.uniform(170, 205), rng.uniform(30, 80))
    opacity = rng.uniform(0.45, 1.0)
    dash, period = rng.uniform(2.0, 4.5), rng.uniform(7.0, 13.0)
    lines = []
    left = -lanes * lane_width / 2
    for k in range(1, lanes):
        d = left + k * lane_width
        centre = abs(d) < 0.1 and rng.random() < 0.4
        color = yellow if centre and rng.random() < 0.6 else white
        lines.append(LaneLine(d, rng.uniform(0.1, 0.18), 0.0 if centre else dash, period, color, opacity))
    if rng.random() < 0.7:
        edge = road_width / 2 - rng.uniform(0.15, 0.4)
        w = rng.uniform(0.1, 0.2)
        lines += [LaneLine(-edge, w, 0.0, 1.0, white, opacity), LaneLine(edge, w, 0.0, 1.0, white, opacity)]
    return tuple(lines)


def _shadows(rng: np.random.Generator, road_width: float) -> tuple[Shadow, ...]:
    """Tree / building shadows crossing part or all of the road."""
    out = []
    for _ in range(int(rng.integers(1, 6))):
        a = rng.uniform(-road_width, road_width * 0.6)
        out.append(
            Shadow(
                z=rng.uniform(0, 160),
                length=rng.uniform(1.5, 18.0),
                d0=a,
                d1=a + rng.uniform(1.0, road_width * 1.5),
                darkness=rng.uniform(0.25, 0.65),
                wobble=rng.uniform(0.0, 0.8),
            )
        )
    return tuple(out)


def _shoulder(rng: np.random.Generator, road: Color) -> Shoulder | None:
    """A sidewalk (light slabs behind a kerb) or a gravel strip, told apart from the road by colour."""
    r = rng.random()
    if r < 0.3:
        return Shoulder(rng.uniform(1.2, 3.5), _distinct(rng, _slab, road, 30.0), tiles=True)
    if r < 0.5:
        return Shoulder(rng.uniform(0.3, 1.5), _distinct(rng, _gravel, road, 30.0), tiles=False)
    return None


def _slab(rng: np.random.Generator) -> Color:
    """Light sidewalk slabs."""
    return tuple(rng.uniform(140, 200) + rng.uniform(-6, 6, 3))


def _gravel(rng: np.random.Generator) -> Color:
    """Brownish-grey gravel."""
    return tuple(rng.uniform(90, 150) * np.array([1.0, 0.93, 0.82]))


def _verge(rng: np.random.Generator) -> Color:
    """Ground beside the road: grass, dry grass, sand, dirt or gravel."""
    kind = rng.choice(["grass", "grass", "dry", "sand", "dirt", "gravel"])
    lo, hi = {
        "grass": ((35, 75, 25), (110, 160, 75)),
        "dry": ((130, 120, 65), (185, 165, 105)),
        "sand": ((165, 145, 105), (220, 200, 155)),
        "dirt": ((90, 65, 40), (150, 110, 75)),
        "gravel": ((100, 90, 75), (150, 135, 115)),
    }[kind]
    return tuple(rng.uniform(lo, hi))


def _verge_pair(rng: np.random.Generator, road: Color) -> tuple[Color, Color]:
    """Left and right verges (often the same), each distinct from the road."""
    left = _distinct(rng, _verge, road, 40.0)
    return (left, left) if rng.random() < 0.6 else (left, _distinct(rng, _verge, road, 40.0))


def _distinct(rng: np.random.Generator, draw, road: Color, distance: float, tries: int = 8) -> Color:
    """A colour from `draw(rng)` at least `distance` (RGB units) from the road's, or the farthest of `tries`:
    surfaces beside the road must be tellable from it, or the label is a coin toss."""
    best, gap = None, -1.0
    for _ in range(tries):
        color = draw(rng)
        d = float(np.linalg.norm(np.subtract(color, road)))
        if d >= distance:
            return color
        if d > gap:
            best, gap = color, d
    return best


def _sky(rng: np.random.Generator, mood: str) -> tuple[Color, Color]:
    """(zenith, horizon) sky colours for the lighting mood."""
    if mood == "sunny":
        return tuple(rng.uniform((40, 90, 165), (95, 150, 235))), tuple(rng.uniform((165, 195, 220), (225, 235, 250)))
    if mood == "overcast":
        g = rng.uniform(140, 215)
        return tuple(g + rng.uniform(-10, 5, 3)), tuple(min(g + 25, 250) + rng.uniform(-5, 5, 3))
    if mood == "dusk":
        return tuple(rng.uniform((40, 45, 80), (90, 90, 150))), tuple(rng.uniform((200, 120, 70), (250, 180, 120)))
    g = rng.uniform(170, 225)
    return tuple(g + rng.uniform(-8, 8, 3)), tuple(np.minimum(g + 20 + rng.uniform(-5, 5, 3), 250))
