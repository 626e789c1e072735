"""Backends: one interface (base.Backend), one implementation per target hardware."""
from .base import Backend, BackendError, BackendResult, Capabilities

BACKENDS = ("cpu", "lava", "openvino")
# what `device` may name for each backend (openvino also takes an index, "GPU.1"); the cpu backend ignores it
DEVICES = {"lava": ("CPU", "LOIHI2", "AUTO"), "openvino": ("CPU", "GPU", "NPU", "MYRIAD", "AUTO")}
_DISPLAY_NAMES = {"lava": "Lava", "openvino": "OpenVINO"}


def device_problem(backend: str, device: str):
    """Why `device` cannot be asked of `backend`, or None (whether the device is present is known
    only when the backend loads)."""
    choices = DEVICES.get(backend)
    if choices is None:
        return None
    name = device.upper().split(".")[0] if backend == "openvino" else device.upper()
    if name not in choices:
        return f"unknown {_DISPLAY_NAMES[backend]} device {device!r}; choose one of {', '.join(choices)}"
    return None


def create_backend(name: str, **options) -> Backend:
    """Instantiate a backend by name; heavy imports (Lava, OpenVINO) happen only when chosen."""
    if name == "cpu":
        from .cpu import CpuBackend
        return CpuBackend(**options)
    if name == "lava":
        from .lava import LavaBackend
        return LavaBackend(**options)
    if name == "openvino":
        from .openvino import OpenVinoBackend
        return OpenVinoBackend(**options)
    raise BackendError(f"unknown backend {name!r}; choose one of {', '.join(BACKENDS)}")


__all__ = ["BACKENDS", "DEVICES", "device_problem", "Backend", "BackendError", "BackendResult", "Capabilities", "create_backend"]
