"""Articulated person geometry: a 3-D stick-and-volume body posed by a walking cycle and
projected orthographically into 2-D polygons, each tagged with what it is made of.

Body units: 1.0 is about the standing height. Axes: ``x`` is the person's left, ``y`` up,
``z`` forward. ``yaw`` 0 faces the camera, ``pi`` shows the back, ``+pi/2`` walks towards
the right of the image. The renderers (RGB, IR, sketch) only decide how each
:class:`Part` material looks; all shape, pose and visibility logic lives here.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .attributes import IdentityAttributes

_CIRCLE = np.stack(
    [
        np.sin(np.linspace(0, 2 * np.pi, 16, endpoint=False)),
        -np.cos(np.linspace(0, 2 * np.pi, 16, endpoint=False)),
    ],
    axis=1,
).astype(np.float32)
_HALF = np.linspace(-np.pi / 2, np.pi / 2, 7)
_HCOS, _HSIN = np.cos(_HALF), np.sin(_HALF)


@dataclass(frozen=True)
class Pose:
    """Walking-cycle ``phase`` (radians), ``yaw`` (radians), stride ``amplitude``
    (0 = standing), extra arm abduction ``arm_out`` (radians)."""

    phase: float
    yaw: float
    amplitude: float = 1.0
    arm_out: float = 0.0


@dataclass
class Part:
    """One drawable polygon: ``name`` (body role), ``material`` (what it is made of),
    ``poly`` (N×2 float pixel coordinates) and ``depth`` (larger = nearer the camera)."""

    name: str
    material: str
    poly: np.ndarray
    depth: float


@dataclass
class Figure:
    """A posed, projected person: parts sorted back to front plus reference geometry."""

    parts: list[Part]
    box: tuple[float, float, float, float]
    scale: float
    facing: float
    side: float
    anchors: dict[str, float] = field(default_factory=dict)


def capsule(p0: np.ndarray, p1: np.ndarray, r0: float, r1: float) -> np.ndarray:
    """Convex polygon of a tapered capsule between 2-D points ``p0`` and ``p1``."""
    ang = math.atan2(float(p1[1] - p0[1]), float(p1[0] - p0[0]))
    ca, sa = math.cos(ang), math.sin(ang)
    out = np.empty((14, 2), np.float32)
    # rotate the unit half-circle by ang: cos(ang+h), sin(ang+h)
    c = _HCOS * ca - _HSIN * sa
    s = _HSIN * ca + _HCOS * sa
    out[:7, 0] = p1[0] + r1 * c
    out[:7, 1] = p1[1] + r1 * s
    out[7:, 0] = p0[0] - r0 * c
    out[7:, 1] = p0[1] - r0 * s
    return out


def ellipse(center: np.ndarray, rx: float, ry: float) -> np.ndarray:
    """16-point polygon of an axis-aligned ellipse."""
    return (_CIRCLE * np.array([rx, ry], np.float32) + center).astype(np.float32)


def _hull(points: np.ndarray) -> np.ndarray:
    """2-D convex hull (monotone chain) of a small point set."""
    pts = sorted({(float(p[0]), float(p[1])) for p in points})
    if len(pts) < 3:
        return np.asarray(pts, np.float32)

    def cross(o: tuple[float, float], a: tuple[float, float], b: tuple[float, float]) -> float:
        return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])

    lower: list[tuple[float, float]] = []
    for p in pts:
        while len(lower) >= 2 and cross(lower[-2], lower[-1], p) <= 0:
            lower.pop()
        lower.append(p)
    upper: list[tuple[float, float]] = []
    for p in reversed(pts):
        while len(upper) >= 2 and cross(upper[-2], upper[-1], p) <= 0:
            upper.pop()
        upper.append(p)
    return np.asarray(lower[:-1] + upper[:-1], np.float32)


class _Projector:
    """Orthographic projection of body points into pixel coordinates."""

    def __init__(self, yaw: float, scale: float, foot_x: float, ground_y: float) -> None:
        self.c = math.cos(yaw)
        self.s = math.sin(yaw)
        self.scale = scale
        self.fx = foot_x
        self.gy = ground_y

    def xy(self, p: np.ndarray) -> np.ndarray:
        """Pixel position of body point(s) ``p`` (…×3)."""
        if p.ndim == 1:
            x, y, z = float(p[0]), float(p[1]), float(p[2])
            return np.array(
                [self.fx + self.scale * (x * self.c + z * self.s), self.gy - self.scale * y],
                np.float32,
            )
        out = np.empty((*p.shape[:-1], 2), np.float32)
        out[..., 0] = self.fx + self.scale * (p[..., 0] * self.c + p[..., 2] * self.s)
        out[..., 1] = self.gy - self.scale * p[..., 1]
        return out

    def depth(self, p: np.ndarray) -> float:
        """Depth of a body point towards the camera (body units)."""
        return float(p[2] * self.c - p[0] * self.s)

    def half_width(self, a: float, b: float) -> float:
        """Projected half-width (pixels) of a cross-section with half-axes ``a`` (x), ``b`` (z)."""
        return self.scale * math.hypot(a * self.c, b * self.s)

    def box(self, center: np.ndarray, half: tuple[float, float, float]) -> np.ndarray:
        """Convex polygon of a projected axis-aligned 3-D box."""
        hx, hy, hz = half
        corners = np.array(
            [
                [center[0] + sx * hx, center[1] + sy * hy, center[2] + sz * hz]
                for sx in (-1, 1)
                for sy in (-1, 1)
                for sz in (-1, 1)
            ],
            np.float32,
        )
        return _hull(self.xy(corners))


def _v(x: float, y: float, z: float) -> np.ndarray:
    return np.array([x, y, z], np.float32)


def build_figure(
    attrs: IdentityAttributes, pose: Pose, height_px: float, foot_x: float, ground_y: float
) -> Figure:
    """Pose and project ``attrs``'s body; the soles rest on ``ground_y`` at ``foot_x``.

    ``height_px`` is the pixel height of a standing person of average height; the identity's
    ``height_scale`` is applied on top.
    """
    female = attrs.gender == "female"
    ws = attrs.width_scale
    hs = attrs.head_scale
    amp = pose.amplitude * attrs.stride
    yaw = pose.yaw

    # --- body dimensions (units) ---
    leg_len = 0.47 * attrs.leg_ratio
    thigh, shin = leg_len * 0.51, leg_len * 0.49
    ankle_h = 0.045
    torso_len = 0.30
    sw = (0.102 if female else 0.118) * ws**0.6  # shoulder half-width
    ww = (0.072 if female else 0.088) * ws  # waist
    hw = (0.102 if female else 0.092) * ws  # hips
    td = 0.058 * ws**0.8  # torso half-depth
    r_thigh, r_knee, r_ankle = 0.052 * ws**0.8, 0.034 * ws**0.6, 0.022
    r_arm, r_elbow, r_wrist = 0.03 * ws**0.7, 0.025 * ws**0.6, 0.019
    head_rx, head_ry, head_rz = 0.054 * hs, 0.067 * hs, 0.062 * hs

    hip_y = ankle_h + leg_len
    sh_y = hip_y + torso_len
    neck_y = sh_y + 0.03
    head_y = neck_y + 0.012 + head_ry
    lean = 0.02 * amp

    # --- legs ---
    joints: dict[str, np.ndarray] = {}
    for side, ph in (("l", pose.phase), ("r", pose.phase + math.pi)):
        sx = 1.0 if side == "l" else -1.0
        alpha = amp * 0.42 * math.sin(ph)
        beta = amp * (0.06 + 0.62 * max(0.0, math.cos(ph + math.pi / 4)) ** 2)
        hip = _v(sx * hw * 0.55, hip_y, 0.0)
        knee = hip + _v(0.0, -thigh * math.cos(alpha), thigh * math.sin(alpha))
        sa = alpha - beta
        ankle = knee + _v(0.0, -shin * math.cos(sa), shin * math.sin(sa))
        tilt = 0.4 * sa
        toe = ankle + _v(0.0, -ankle_h * 0.75 - 0.1 * math.sin(tilt), 0.105 * math.cos(tilt))
        heel = ankle + _v(0.0, -ankle_h * 0.8, -0.025)
        joints.update(
            {
                f"{side}_hip": hip,
                f"{side}_knee": knee,
                f"{side}_ankle": ankle,
                f"{side}_toe": toe,
                f"{side}_heel": heel,
            }
        )
    lowest = min(float(joints[k][1]) for k in joints if k.endswith(("toe", "heel")))
    for k in list(joints):
        joints[k] = joints[k] - _v(0.0, lowest, 0.0)
    bob = -lowest
    hip_y, sh_y, neck_y, head_y = hip_y + bob, sh_y + bob, neck_y + bob, head_y + bob

    # --- arms ---
    for side, ph in (("l", pose.phase), ("r", pose.phase + math.pi)):
        sx = 1.0 if side == "l" else -1.0
        gamma = -amp * 0.38 * math.sin(ph)
        delta = 0.18 + 0.35 * amp * max(0.0, -math.sin(ph)) + pose.arm_out * 0.3
        eps = 0.07 + pose.arm_out + 0.1 * max(0.0, ws - 1.0)
        sh = _v(sx * sw * 0.9, sh_y - 0.015, lean)
        up_len, fo_len = 0.19, 0.165
        elbow = sh + _v(
            sx * up_len * math.sin(eps),
            -up_len * math.cos(gamma) * math.cos(eps),
            up_len * math.sin(gamma),
        )
        wrist = elbow + _v(
            sx * fo_len * math.sin(eps) * 0.5,
            -fo_len * math.cos(gamma + delta),
            fo_len * math.sin(gamma + delta),
        )
        hand = wrist + (wrist - elbow) * (0.045 / fo_len)
        joints.update(
            {f"{side}_sh": sh, f"{side}_elbow": elbow, f"{side}_wrist": wrist, f"{side}_hand": hand}
        )

    # --- projection scale: head top sits at height_px * height_scale above the ground ---
    total = head_y + head_ry
    scale = height_px * attrs.height_scale / total
    pr = _Projector(yaw, scale, foot_x, ground_y)
    S = scale
    parts: list[Part] = []

    def add(name: str, material: str, poly: np.ndarray, depth: float) -> None:
        parts.append(Part(name, material, poly, depth))

    def limb(
        name: str, material: str, a: np.ndarray, b: np.ndarray, ra: float, rb: float, depth: float
    ) -> None:
        add(name, material, capsule(pr.xy(a), pr.xy(b), ra * S, rb * S), depth)

    upper_t, lower_t = attrs.upper_type, attrs.lower_type
    bare_legs = lower_t in ("shorts", "skirt", "none")

    # legs (always behind the torso's garments; near leg over far leg)
    for side in ("l", "r"):
        hip, knee, ankle = joints[f"{side}_hip"], joints[f"{side}_knee"], joints[f"{side}_ankle"]
        toe, heel = joints[f"{side}_toe"], joints[f"{side}_heel"]
        d = -0.01 + 0.01 * pr.depth((hip + ankle) / 2)
        widen = 1.12 if lower_t == "trousers" else 1.04
        if bare_legs:
            limb(f"{side}_thigh", "skin", hip, knee, r_thigh * 0.9, r_knee * 0.9, d)
            limb(f"{side}_shin", "skin", knee, ankle, r_knee * 0.9, r_ankle, d + 1e-4)
            if lower_t == "shorts":
                mid = hip + (knee - hip) * 0.6
                limb(f"{side}_short", "lower", hip, mid, r_thigh * 1.12, r_thigh * 1.02, d + 2e-4)
        else:
            limb(f"{side}_thigh", "lower", hip, knee, r_thigh * widen, r_knee * widen, d)
            limb(
                f"{side}_shin",
                "lower",
                knee,
                ankle + _v(0, -0.01, 0),
                r_knee * widen,
                r_ankle * widen * 1.1,
                d + 1e-4,
            )
        foot = np.concatenate(
            [
                capsule(pr.xy(heel), pr.xy(toe), 0.028 * S, 0.02 * S),
                pr.xy(ankle + _v(0, 0.012, 0))[None, :],
            ]
        )
        add(f"{side}_foot", "shoes", _hull(foot), d + 3e-4)
        if attrs.shoes_type == "boots":
            limb(
                f"{side}_boot",
                "shoes",
                ankle - _v(0, 0.02, 0),
                ankle + (knee - ankle) * 0.42,
                r_ankle * 1.35,
                r_knee * 1.1,
                d + 4e-4,
            )

    # torso cross-sections: (y, half-width, half-depth)
    chest_a = sw * (0.9 if female else 0.95)
    belly = 1.0 + 0.25 * max(0.0, ws - 1.05)
    sections = [
        (sh_y + 0.012, sw * 0.62, td * 0.8),
        (sh_y - 0.02, sw * 1.0, td),
        (sh_y - 0.1, chest_a, td * 1.08),
        (hip_y + 0.12, ww * belly, td * belly),
        (hip_y + 0.05, hw, td * 1.02),
        (hip_y - 0.045, hw * 0.96, td),
    ]

    def torso_poly(y0: float, y1: float, extra: float = 0.0, flare: float = 0.0) -> np.ndarray:
        """Torso outline between heights y0 > y1, interpolating the cross-sections."""
        ys = [y0] + [y for y, _, _ in sections if y1 < y < y0] + [y1]
        sec_y = np.array([s[0] for s in sections][::-1])
        sec_a = np.array([s[1] for s in sections][::-1])
        sec_b = np.array([s[2] for s in sections][::-1])
        left, right = [], []
        for y in ys:
            a = float(np.interp(y, sec_y, sec_a)) + extra
            b = float(np.interp(y, sec_y, sec_b)) + extra
            if y < sections[-1][0]:  # below the crotch: flare (skirts, coats)
                a += flare * (sections[-1][0] - y)
                b += flare * 0.6 * (sections[-1][0] - y)
            cx = float(pr.xy(_v(0.0, y, lean * (y - hip_y) / torso_len))[0])
            hwp = pr.half_width(a, b)
            left.append((cx - hwp, ground_y - S * y))
            right.append((cx + hwp, ground_y - S * y))
        return np.asarray(left + right[::-1], np.float32)

    knee_y = float(max(joints["l_knee"][1], joints["r_knee"][1]))
    waist_y = hip_y + 0.1
    if upper_t == "dress":
        add(
            "dress_skirt",
            "upper",
            torso_poly(waist_y, knee_y + 0.02, extra=0.006, flare=0.55),
            -0.0008,
        )
    elif lower_t == "skirt":
        add("skirt", "lower", torso_poly(waist_y, knee_y + 0.06, extra=0.008, flare=0.5), -0.0008)
    elif lower_t != "none":
        add("pelvis", "lower", torso_poly(waist_y, hip_y - 0.045, extra=0.004), -0.0009)
        add(
            "belt",
            "detail_dark",
            torso_poly(waist_y + 0.006, waist_y - 0.008, extra=0.005),
            -0.00085,
        )

    hem = {
        "t-shirt": hip_y + 0.02,
        "shirt": hip_y + 0.03,
        "jacket": hip_y + 0.0,
        "coat": hip_y,
        "hoodie": hip_y - 0.01,
        "sweater": hip_y + 0.01,
        "dress": waist_y,
    }[upper_t]
    thick = {"coat": 0.014, "jacket": 0.01, "hoodie": 0.009, "sweater": 0.006}.get(upper_t, 0.003)
    if upper_t == "hoodie":
        add(
            "hood",
            "upper",
            pr.box(_v(0.0, sh_y + 0.03, -td * 0.9), (0.062, 0.045, 0.03)),
            -0.0006 - 0.03 * pr.c,
        )
    add("torso", "upper", torso_poly(sh_y + 0.012, hem, extra=thick), -0.0005)
    if upper_t == "coat":
        add(
            "coat_skirt",
            "upper",
            torso_poly(hip_y + 0.001, hip_y - 0.2, extra=thick + 0.004, flare=0.25),
            -0.0004,
        )

    front = pr.c  # >0 front visible
    if front > 0.25:
        cx = float(pr.xy(_v(0.0, sh_y, lean))[0])
        if upper_t in ("jacket", "coat", "shirt"):
            bottom = hip_y - 0.2 if upper_t == "coat" else hem
            w = 0.004 * S + 0.5
            add(
                "placket",
                "detail_dark",
                np.array(
                    [
                        [cx - w, ground_y - S * (sh_y - 0.02)],
                        [cx + w, ground_y - S * (sh_y - 0.02)],
                        [cx + w, ground_y - S * bottom],
                        [cx - w, ground_y - S * bottom],
                    ],
                    np.float32,
                ),
                -0.0003,
            )
        if upper_t in ("shirt", "coat", "jacket"):
            for sgn in (-1.0, 1.0):
                add(
                    "collar",
                    "upper_light",
                    np.array(
                        [
                            [cx, ground_y - S * (sh_y - 0.05)],
                            [cx + sgn * 0.035 * S * front, ground_y - S * (sh_y + 0.015)],
                            [cx + sgn * 0.05 * S * front, ground_y - S * (sh_y - 0.015)],
                        ],
                        np.float32,
                    ),
                    -0.0002,
                )
        if upper_t == "hoodie":
            add(
                "pocket",
                "detail_dark",
                torso_poly(hip_y + 0.09, hip_y + 0.03, extra=-0.03),
                -0.0003,
            )

    # arms with sleeves and hands
    for side in ("l", "r"):
        sh, el = joints[f"{side}_sh"], joints[f"{side}_elbow"]
        wr, hd = joints[f"{side}_wrist"], joints[f"{side}_hand"]
        d = pr.depth((sh + wr) / 2) * 0.5
        if attrs.sleeves == "long":
            limb(
                f"{side}_upper_arm", "upper", sh, el, r_arm * 1.15 + thick, r_elbow * 1.1 + thick, d
            )
            limb(
                f"{side}_forearm",
                "upper",
                el,
                wr,
                r_elbow * 1.1 + thick,
                r_wrist * 1.15 + thick,
                d + 1e-4,
            )
        else:
            limb(f"{side}_upper_arm", "skin", sh, el, r_arm, r_elbow, d)
            limb(f"{side}_forearm", "skin", el, wr, r_elbow, r_wrist, d + 1e-4)
            if attrs.sleeves == "short":
                mid = sh + (el - sh) * 0.5
                limb(
                    f"{side}_sleeve",
                    "upper",
                    sh,
                    mid,
                    r_arm * 1.3 + thick,
                    r_arm * 1.2 + thick,
                    d + 2e-4,
                )
        add(f"{side}_hand", "skin_hand", ellipse(pr.xy(hd), 0.024 * S, 0.03 * S), d + 3e-4)

    # bags
    bag = attrs.bag
    if bag == "backpack":
        c3 = _v(0.0, sh_y - 0.13, -(td + 0.045) + lean)
        add("backpack", "bag", pr.box(c3, (0.085, 0.11, 0.042)), pr.depth(c3))
        for sgn in (-1.0, 1.0):
            a = pr.xy(_v(sgn * sw * 0.5, sh_y + 0.01, td * 0.95 + lean))
            b = pr.xy(_v(sgn * sw * 0.62, sh_y - 0.17, td * 1.05 + lean))
            add(
                "strap",
                "bag",
                capsule(a, b, 0.009 * S, 0.009 * S),
                pr.depth(_v(sgn * sw * 0.55, 0, td * 1.05)) + 0.002,
            )
    elif bag == "shoulder bag":
        c3 = _v(sw * 1.05 + 0.03, hip_y + 0.03, 0.0)
        add("shoulder_bag", "bag", pr.box(c3, (0.028, 0.065, 0.075)), pr.depth(c3))
        for z in (td * 1.05, -td * 1.05):
            a = pr.xy(_v(-sw * 0.6, sh_y + 0.01, z + lean))
            b = pr.xy(_v(sw * 0.8, hip_y + 0.08, z))
            add(
                "strap",
                "bag",
                capsule(a, b, 0.008 * S, 0.008 * S),
                pr.depth(_v(0.0, 0.0, z)) + 0.002,
            )
    elif bag == "handbag":
        wr = joints["r_hand"]
        c3 = wr + _v(0.0, -0.07, 0.0)
        add("handbag", "bag", pr.box(c3, (0.03, 0.055, 0.07)), pr.depth(wr) * 0.5 + 0.0005)

    # neck, head, face, hair, hat
    head_c = _v(0.0, head_y, lean * 1.5)
    neck = capsule(
        pr.xy(_v(0.0, sh_y - 0.02, lean)),
        pr.xy(_v(0.0, head_y - 0.03, lean * 1.4)),
        0.027 * S,
        0.025 * S,
    )
    add("neck", "skin", neck, -0.0001)
    hc2 = pr.xy(head_c)
    rx = pr.half_width(head_rx, head_rz)
    ry = head_ry * S
    long_hair = attrs.hair_style == "long"
    if long_hair:
        top = hc2 + np.array([-0.25 * rx * pr.s, 0.0], np.float32)
        bottom_y = ground_y - S * (sh_y - (0.12 if female else 0.06))
        wtop = rx * (1.08 if front > -0.3 else 1.02)
        wbot = rx * (1.35 if front > -0.3 else 1.25) * (0.6 + 0.4 * abs(front))
        add(
            "long_hair",
            "hair",
            np.array(
                [
                    [top[0] - wtop, top[1]],
                    [top[0] + wtop, top[1]],
                    [top[0] + wbot, bottom_y],
                    [top[0] - wbot, bottom_y],
                ],
                np.float32,
            ),
            -0.035 * front + 0.0003,
        )
    if attrs.hair_style == "ponytail":
        a = head_c + _v(0.0, 0.012, -head_rz * 0.9)
        b = head_c + _v(0.0, -0.1, -head_rz * 1.25)
        limb("ponytail", "hair", a, b, 0.02, 0.014, pr.depth(a) * 0.3 + 0.0003)
    add("head", "skin_face", ellipse(hc2, rx, ry), 0.0003)
    _face(add, pr, head_c, head_rx, head_ry, head_rz, attrs, S)
    if attrs.hair_style != "bald":
        add(
            "hair_cap",
            "hair",
            _hair_cap(hc2, rx, ry, pr.c, pr.s, short=attrs.hair_style == "short"),
            0.0006,
        )
    if attrs.hat == "cap":
        add("hat", "hat", _dome(hc2, rx, ry, 0.25), 0.0008)
        visor = _v(0.0, head_y + head_ry * 0.3, head_rz * 1.0)
        add(
            "visor",
            "hat",
            pr.box(head_c * _v(1, 0, 1) + visor, (0.045, 0.006, 0.04)),
            0.0008 + 0.001 * max(0.0, front),
        )
    elif attrs.hat == "beanie":
        add("hat", "hat", _dome(hc2, rx * 1.04, ry * 1.05, 0.05), 0.0008)

    parts.sort(key=lambda p: p.depth)
    allp = np.concatenate([p.poly for p in parts])
    x0, y0 = allp.min(axis=0)
    x1, y1 = allp.max(axis=0)
    anchors = {
        "shoulder_y": float(ground_y - S * sh_y),
        "hem_y": float(ground_y - S * hem),
        "chest_x": float(pr.xy(_v(0.0, sh_y - 0.1, lean))[0]),
        "chest_y": float(ground_y - S * (sh_y - 0.09)),
        "head_x": float(hc2[0]),
        "head_y": float(hc2[1]),
        "half_chest": float(pr.half_width(chest_a, td)),
    }
    return Figure(parts, (float(x0), float(y0), float(x1), float(y1)), S, pr.c, pr.s, anchors)


def _face(
    add: Callable[[str, str, np.ndarray, float], None],
    pr: _Projector,
    head_c: np.ndarray,
    rx: float,
    ry: float,
    rz: float,
    attrs: IdentityAttributes,
    S: float,
) -> None:
    """Eyes, mouth and glasses on the visible side of the head."""
    if pr.c < -0.1:
        return
    for sx in (-1.0, 1.0):
        e = head_c + _v(sx * rx * 0.42, ry * 0.08, rz * 0.86)
        if pr.depth(e - head_c) < rz * 0.25:
            continue
        p = pr.xy(e)
        add("eye", "eye", ellipse(p, 0.0075 * S, 0.0055 * S), 0.0005)
        if attrs.glasses != "none":
            mat = "sunglasses" if attrs.glasses == "sunglasses" else "glasses"
            add("lens", mat, ellipse(p, 0.016 * S, 0.012 * S), 0.00055)
    m = head_c + _v(0.0, -ry * 0.5, rz * 0.85)
    if pr.depth(m - head_c) > rz * 0.3:
        p = pr.xy(m)
        add("mouth", "mouth", ellipse(p, 0.011 * S * max(0.3, pr.c), 0.003 * S + 0.3), 0.0005)


def _hair_cap(
    c: np.ndarray, rx: float, ry: float, cos_y: float, sin_y: float, short: bool
) -> np.ndarray:
    """Hair region over the head ellipse, depending on which side of the head is seen."""
    back = max(0.0, -cos_y)
    spans = []
    for sigma in (1.0, -1.0):
        faceward = max(0.0, sigma * sin_y)
        backward = max(0.0, -sigma * sin_y)
        t = 88.0 - 30.0 * faceward + 92.0 * backward + 92.0 * back - (6.0 if short else 0.0)
        spans.append(math.radians(min(180.0, t)))
    t_right, t_left = spans
    ts = np.linspace(-t_left, t_right, 14)
    outer = np.stack([c[0] + rx * 1.03 * np.sin(ts), c[1] - ry * 1.04 * np.cos(ts)], axis=1)
    end_r, end_l = outer[-1], outer[0]
    ctrl = np.array(
        [c[0] + 0.55 * rx * sin_y, min(c[1] + ry, c[1] - 0.5 * ry + 1.7 * ry * back)], np.float32
    )
    u = np.linspace(0.0, 1.0, 6)[1:-1, None]
    inner = (1 - u) ** 2 * end_r + 2 * (1 - u) * u * ctrl + u**2 * end_l
    return np.concatenate([outer, inner]).astype(np.float32)


def _dome(c: np.ndarray, rx: float, ry: float, low: float) -> np.ndarray:
    """Upper part of the head ellipse down to ``low`` (fraction of ry above the centre)."""
    t = math.acos(max(-1.0, min(1.0, low)))
    ts = np.linspace(-t, t, 12)
    return np.stack([c[0] + rx * 1.08 * np.sin(ts), c[1] - ry * 1.1 * np.cos(ts)], axis=1).astype(
        np.float32
    )
