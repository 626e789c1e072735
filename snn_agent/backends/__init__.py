"""Backends: one interface (base.Backend), one implementation per target hardware."""
from .base import Backend, BackendError, BackendResult, Capabilities

BACKENDS = ("cpu", "lava", "openvino")


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


__all__ = ["BACKENDS", "Backend", "BackendError", "BackendResult", "Capabilities", "create_backend"]
