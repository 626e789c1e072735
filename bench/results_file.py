"""The benches' one way to write their JSON: bench/results/NAME.json unless --out says otherwise."""
from __future__ import annotations

import json
import os


def write_json(path: str, data: dict) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w") as f:
        json.dump(data, f, indent=1)
