"""The arena both simulators are built from (worlds/arena.yaml): room, panels showing dataset images,
the robot, its camera and battery, the patrol's viewing distance and the mission's length.

Also the geometry both simulators and the patrol share: where the camera is, which panel fills its
view (the ground truth for scoring), and the pose from which each panel is seen.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Optional

import numpy as np
import yaml

from ..data import datasets
from .battery import LinearBattery

DEFAULT_ARENA = "worlds/arena.yaml"
# A panel fills the view when it covers this much of the image's width and this much of the panel is
# inside the image: then the view looks like the dataset image (dark room, dark floor around it).
FILL_VIEW = 0.8
FILL_PANEL = 0.8
# walls and floor: nearly black, as the background of a Fashion-MNIST image
DARK_RGBA = "0.04 0.04 0.04 1"
FACING_COS = math.cos(math.radians(30))  # seen within 30 degrees of straight on


class ArenaError(ValueError):
    """An arena file that cannot be used, with what is wrong in it."""


@dataclass(frozen=True)
class SceneObject:
    class_id: int
    class_name: str
    image: int  # index in the dataset's test split
    x: float
    y: float
    facing: float  # [rad] direction the image faces

    @property
    def normal(self) -> tuple:
        return math.cos(self.facing), math.sin(self.facing)


@dataclass(frozen=True)
class Camera:
    width: int
    height: int
    hfov: float  # [rad]
    rate_hz: float
    forward: float  # [m] ahead of the base's centre


@dataclass(frozen=True)
class Robot:
    start: tuple  # (x, y, yaw [rad])
    body: tuple  # (length, width, height)
    wheel_radius: float
    wheel_separation: float
    max_speed: float
    max_turn_rate: float


@dataclass(frozen=True)
class BatteryModel:
    """The linear battery plus the motion power model: P = base + a |v| + b |w|."""
    voltage: float
    capacity_ah: float
    base_load_w: float
    motion_w_per_mps: float
    turning_w_per_radps: float
    reserve: float

    def motion_power_w(self, speed: float, turn_rate: float) -> float:
        return self.motion_w_per_mps * abs(speed) + self.turning_w_per_radps * abs(turn_rate)

    def full(self) -> LinearBattery:
        return LinearBattery(self.voltage, self.capacity_ah, 1.0, self.base_load_w)


@dataclass(frozen=True)
class Arena:
    name: str
    dataset: str
    room: tuple  # (size x, size y)
    wall_height: float
    panel_size: float
    panel_height: float  # of the panel's centre, = the camera's height
    robot: Robot
    camera: Camera
    battery: BatteryModel
    dwell_s: float
    mission_s: float
    mission_margin: float
    objects: tuple
    class_names: tuple

    @property
    def agent_mission_s(self) -> float:
        """The mission time the agent is told: the mission's, with the planning margin."""
        return self.mission_s * (1 + self.mission_margin)

    # --- geometry ----------------------------------------------------------------------------------
    def camera_pose(self, x: float, y: float, yaw: float) -> tuple:
        return x + self.camera.forward * math.cos(yaw), y + self.camera.forward * math.sin(yaw), yaw

    def object_in_view(self, x: float, y: float, yaw: float) -> Optional[int]:
        """Index of the object that fills the camera's view from the base pose (x, y, yaw), or None."""
        cx, cy, _ = self.camera_pose(x, y, yaw)
        forward = np.array([math.cos(yaw), math.sin(yaw)])
        right = np.array([math.sin(yaw), -math.cos(yaw)])
        half_width = math.tan(self.camera.hfov / 2)
        for index, obj in enumerate(self.objects):
            nx, ny = obj.normal
            if -(nx * forward[0] + ny * forward[1]) < FACING_COS:
                continue
            edge = np.array([-ny, nx]) * self.panel_size / 2
            ends = [np.array([obj.x, obj.y]) + sign * edge - (cx, cy) for sign in (-1, 1)]
            depths = [float(e @ forward) for e in ends]
            if min(depths) <= 0.01:
                continue
            u = sorted(float(e @ right) / d / half_width for e, d in zip(ends, depths))  # -1..1 across the image
            inside = max(0.0, min(u[1], 1.0) - max(u[0], -1.0))
            if inside / 2 >= FILL_VIEW and inside / (u[1] - u[0]) >= FILL_PANEL:
                return index
        return None

    @property
    def view_distance(self) -> float:
        """Camera to panel when the panel just fills the view: there the camera sees the dataset image
        at its own scale (a CNN trained on centred, full-size objects loses accuracy on smaller ones:
        at 93 % of the size, 4 of the 40 panels more were misclassified)."""
        narrower = min(self.camera.width, self.camera.height) / max(self.camera.width, self.camera.height)
        return self.panel_size / 2 / (math.tan(self.camera.hfov / 2) * narrower)

    def view_pose(self, index: int) -> tuple:
        """The base pose (x, y, yaw) from which the camera sees object `index` straight on and filled."""
        obj = self.objects[index]
        nx, ny = obj.normal
        back = self.view_distance + self.camera.forward
        return obj.x + nx * back, obj.y + ny * back, math.atan2(-ny, -nx)

    # --- images --------------------------------------------------------------------------------------
    def object_images(self) -> list:
        """(H, W) uint8 image of each object, from the installed dataset's test split."""
        data = datasets.load(self.dataset, "test")
        images = []
        for obj in self.objects:
            if not 0 <= obj.image < len(data):
                raise ArenaError(f"object image {obj.image} is outside {self.dataset}'s test split ({len(data)})")
            if int(data.labels[obj.image]) != obj.class_id:
                raise ArenaError(f"{self.dataset} test image {obj.image} is a "
                                 f"{data.class_names[int(data.labels[obj.image])]!r}, not a {obj.class_name!r}")
            images.append(data.images[obj.image][..., 0])
        return images

    def texture_name(self, index: int) -> str:
        return f"{self.name}_object_{index:02d}.png"


def texture_png(image: np.ndarray) -> bytes:
    import cv2

    ok, png = cv2.imencode(".png", image)
    if not ok:
        raise ArenaError("could not encode a texture as PNG")
    return png.tobytes()


def write_textures(arena: Arena, folder: str) -> list:
    """Write each object's image as a PNG under `folder` (at set-up time, from the installed dataset)."""
    os.makedirs(folder, exist_ok=True)
    paths = []
    for index, image in enumerate(arena.object_images()):
        path = os.path.join(folder, arena.texture_name(index))
        with open(path, "wb") as f:
            f.write(texture_png(image))
        paths.append(path)
    return paths


def load_arena(path: str = "") -> Arena:
    from ..graph import resolve_path

    path = resolve_path(path or DEFAULT_ARENA)
    try:
        with open(path) as f:
            doc = yaml.safe_load(f)
    except OSError as exc:
        raise ArenaError(f"cannot read arena file {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ArenaError(f"{path} is not valid YAML: {exc}") from exc
    try:
        return _arena(doc)
    except (KeyError, TypeError, ValueError) as exc:
        raise ArenaError(f"{path}: {exc.__class__.__name__} {exc}") from exc


def _arena(doc: dict) -> Arena:
    names = _class_names(doc["dataset"])
    objects = []
    for entry in doc["objects"]:
        if entry["class"] not in names:
            raise ValueError(f"object class {entry['class']!r} is not one of {doc['dataset']}'s {names}")
        objects.append(SceneObject(names.index(entry["class"]), entry["class"], int(entry["image"]),
                                   float(entry["x"]), float(entry["y"]), math.radians(entry["facing_deg"])))
    r, c, b, room = doc["robot"], doc["camera"], doc["battery"], doc["room"]
    start = r["start"]
    arena = Arena(
        name=str(doc["name"]), dataset=str(doc["dataset"]),
        room=(float(room["size"][0]), float(room["size"][1])), wall_height=float(room["wall_height"]),
        panel_size=float(doc["panel"]["size"]), panel_height=float(doc["panel"]["centre_height"]),
        robot=Robot((float(start["x"]), float(start["y"]), math.radians(start["yaw_deg"])),
                    tuple(float(v) for v in r["body"]), float(r["wheel_radius"]), float(r["wheel_separation"]),
                    float(r["max_speed"]), float(r["max_turn_rate"])),
        camera=Camera(int(c["width"]), int(c["height"]), math.radians(c["hfov_deg"]), float(c["rate_hz"]),
                      float(c["forward"])),
        battery=BatteryModel(float(b["voltage"]), float(b["capacity_ah"]), float(b["base_load_w"]),
                             float(b["motion_w_per_mps"]), float(b["turning_w_per_radps"]), float(b["reserve"])),
        dwell_s=float(doc["patrol"]["dwell_s"]),
        mission_s=float(doc["mission_s"]), mission_margin=float(doc["mission_margin"]), objects=tuple(objects),
        class_names=tuple(names))
    if not objects:
        raise ValueError("the arena has no objects")
    if arena.camera.width < 8 or arena.camera.height < 8 or not 0 < arena.camera.hfov < math.pi:
        raise ValueError("camera: width and height >= 8 px, 0 < hfov_deg < 180")
    arena.battery.full()  # validates voltage and capacity
    return arena


def _class_names(dataset: str) -> list:
    if dataset == "fashion-mnist":
        return list(datasets.FASHION_MNIST_CLASSES)
    return list(datasets.load(dataset, "test").class_names)
