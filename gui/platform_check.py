"""Before Qt starts on Linux: are the system libraries its window needs installed?

Without this, a missing library shows up as Qt's 'could not load the Qt platform
plugin "xcb"' and an abort. Here it becomes a sentence naming the packages.
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Callable, Mapping

# Libraries Qt's xcb platform plugin loads, and the Debian/Ubuntu package of each.
XCB_LIBRARIES = {
    "libxcb.so.1": "libxcb1",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-render.so.0": "libxcb-render0",
    "libxcb-util.so.1": "libxcb-util1",
}

# Libraries every Qt GUI loads, whatever the platform plugin.
CORE_LIBRARIES = {
    "libGL.so.1": "libgl1",
    "libEGL.so.1": "libegl1",
    "libfontconfig.so.1": "libfontconfig1",
    "libfreetype.so.6": "libfreetype6",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libglib-2.0.so.0": "libglib2.0-0",
    "libgthread-2.0.so.0": "libglib2.0-0",
    "libdbus-1.so.3": "libdbus-1-3",
}


def _loads(name: str) -> bool:
    try:
        ctypes.CDLL(name)
    except OSError:
        return False
    return True


def missing_libraries(libraries: Mapping[str, str], loads: Callable[[str], bool] = _loads) -> list[tuple[str, str]]:
    return [(soname, package) for soname, package in libraries.items() if not loads(soname)]


def platform_problem(
    environ: Mapping[str, str] | None = None,
    loads: Callable[[str], bool] = _loads,
    system: str = sys.platform,
) -> str | None:
    """A plain-words reason Qt cannot open a window here, or None when it can."""
    if not system.startswith("linux"):
        return None
    env = os.environ if environ is None else environ
    platform = env.get("QT_QPA_PLATFORM", "").split(":")[0].strip()
    wanted = dict(CORE_LIBRARIES)
    if platform in ("", "xcb"):
        if platform == "" and env.get("WAYLAND_DISPLAY") and not env.get("DISPLAY"):
            platform = "wayland"
        elif not env.get("DISPLAY"):
            return (
                "Queuecraft cannot open a window: no display was found (DISPLAY is not set).\n"
                "To run a topology without a window:  queuecraft run FILE --duration 60\n"
                "To take a screenshot without a screen:\n"
                "  QT_QPA_PLATFORM=offscreen queuecraft FILE --screenshot out.png --run-for 5"
            )
        else:
            wanted.update(XCB_LIBRARIES)
    missing = missing_libraries(wanted, loads)
    if not missing:
        return None
    packages = sorted({package for _, package in missing})
    lines = ["Queuecraft cannot open its window: Qt needs system libraries that are not installed:"]
    lines += [f"  {soname}  (Debian/Ubuntu package {package})" for soname, package in missing]
    lines.append("Install them with:")
    lines.append("  sudo apt install " + " ".join(packages))
    lines.append("(Without a window, `queuecraft run FILE` runs a topology headless.)")
    return "\n".join(lines)
