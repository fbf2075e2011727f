"""ctypes binding of libmedprep_maps, medprep's distance-map kernel as a C library.

`slice_maps` computes the SDF and RRW maps of label planes exactly as `medprep convert` stores
them (the same Swift code path, so the floats are bit-identical), in a few milliseconds per
slice. The trainer uses it for shards converted with ``maps.storage: online``: maps are made
per sample *after* augmentation, so every augmentation, affine included, gets exact maps.

The library is found, in order, at ``$MEDPREP_MAPS_LIB``; next to ``$MEDPREP_BIN`` or the
``medprep`` on ``PATH``; in a medprep checkout's ``.build/release`` (this package inside
``tools/trainer``). No compiler is needed at install time: it is built with medprep itself
(``swift build -c release``). See docs/maps-library.md.
"""
from __future__ import annotations

import ctypes
import os
import shutil
from typing import List, Optional, Sequence, Tuple

import numpy as np

#: The ABI version this binding speaks (``medprep_maps_abi_version``).
ABI_VERSION = 1
LIBRARY_NAME = "libmedprep_maps.so"
CONVENTIONS = ("boundary", "plain", "itk")
UNITS = ("px", "mm")


class MapsLibraryError(RuntimeError):
    """The library is missing, of another ABI version, or refused the arguments."""


def candidate_paths() -> List[str]:
    """Where the library is looked for, in order."""
    out = []
    env = os.environ.get("MEDPREP_MAPS_LIB")
    if env:
        out.append(env)
    for exe in (os.environ.get("MEDPREP_BIN"), shutil.which("medprep")):
        if exe:
            out.append(os.path.join(os.path.dirname(os.path.realpath(exe)), LIBRARY_NAME))
    here = os.path.dirname(os.path.abspath(__file__))
    for up in range(1, 6):
        root = os.path.abspath(os.path.join(here, *[".."] * up))
        if os.path.exists(os.path.join(root, "Package.swift")):
            out.append(os.path.join(root, ".build", "release", LIBRARY_NAME))
            break
    return out


_LIB = None


def load() -> ctypes.CDLL:
    """The loaded library (once per process; a forked DataLoader worker inherits it)."""
    global _LIB
    if _LIB is not None:
        return _LIB
    tried = candidate_paths()
    path = next((p for p in tried if os.path.isfile(p)), None)
    if path is None:
        raise MapsLibraryError(
            f"{LIBRARY_NAME} was not found (tried: {', '.join(tried) or 'nothing'}); online maps need it: build medprep "
            "with 'swift build -c release' or set MEDPREP_MAPS_LIB to the library's path.")
    try:
        lib = ctypes.CDLL(path)
    except OSError as e:
        raise MapsLibraryError(f"{path} could not be loaded: {e}.") from None
    lib.medprep_maps_abi_version.restype = ctypes.c_int32
    version = lib.medprep_maps_abi_version()
    if version != ABI_VERSION:
        raise MapsLibraryError(f"{path} has ABI version {version}; this binding speaks version {ABI_VERSION}.")
    # Each sample gets fresh output arrays; without this glibc maps and zeroes new pages for
    # every one of them (more than half the time of a 256² slice). MEDPREP_MAPS_MALLOC=default
    # leaves the allocator alone.
    lib.medprep_maps_keep_freed_memory.restype = ctypes.c_int32
    if os.environ.get("MEDPREP_MAPS_MALLOC", "keep") != "default":
        lib.medprep_maps_keep_freed_memory()
    f = lib.medprep_slice_maps
    f.restype = ctypes.c_int32
    f.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64, ctypes.c_int32,
                  ctypes.c_void_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_int32, ctypes.c_int32,
                  ctypes.c_void_p, ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int64]
    lib.path = path
    _LIB = lib
    return lib


def plane_size(h: int, w: int, scale: int) -> Tuple[int, int]:
    """ceil(H/s) x ceil(W/s): the map plane at scale s."""
    return (h + scale - 1) // scale, (w + scale - 1) // scale


def slice_maps(labels: np.ndarray, classes: int, *, sdf: bool = True, rrw: bool = True,
               convention: str = "boundary", units: str = "px", spacing: Optional[Sequence] = None,
               scale: int = 1, threads: int = 1, out_sdf: Optional[np.ndarray] = None,
               out_rrw: Optional[np.ndarray] = None) -> Tuple[Optional[np.ndarray], Optional[np.ndarray]]:
    """(sdf, rrw) of one label plane [H, W] or a stack [N, H, W] of class indices 0 ..< classes.

    Each map is float32 [K, h, w] (or [N, K, h, w]), h, w = ceil(H/s), ceil(W/s): the maps of
    ``labels[..., ::s, ::s]``. ``spacing``: (row mm, column mm), one pair or one per plane (only
    used with ``units='mm'``). A map not asked for is None. ``out_sdf`` / ``out_rrw``: arrays of
    that shape (C-contiguous float32) to write into instead of new ones (a batch, in shared memory).
    """
    if not (sdf or rrw):
        raise ValueError("ask for sdf, rrw or both.")
    if convention not in CONVENTIONS:
        raise ValueError(f"convention '{convention}' is unknown; expected one of {', '.join(CONVENTIONS)}.")
    if units not in UNITS:
        raise ValueError(f"units '{units}' is unknown; expected 'px' or 'mm'.")
    if int(scale) < 1:
        raise ValueError(f"scale '{scale}' must be at least 1.")
    lab = np.asarray(labels)
    single = lab.ndim == 2
    if single:
        lab = lab[None]
    if lab.ndim != 3:
        raise ValueError(f"labels must be [H, W] or [N, H, W], got shape {list(np.asarray(labels).shape)}.")
    if lab.size and (lab.min() < 0 or lab.max() >= classes):
        raise ValueError(f"label values must be class indices 0 ..< {classes}, got {int(lab.min())} ... {int(lab.max())}.")
    lab = np.ascontiguousarray(lab, dtype=np.uint16)
    n, h, w = lab.shape
    sp = None
    if spacing is not None:
        sp = np.ascontiguousarray(np.broadcast_to(np.asarray(spacing, dtype=np.float64), (n, 2)))
    ch, cw = plane_size(h, w, scale)
    out_s = _output(out_sdf, (n, classes, ch, cw), "out_sdf", single) if sdf else None
    out_r = _output(out_rrw, (n, classes, ch, cw), "out_rrw", single) if rrw else None
    msg = ctypes.create_string_buffer(512)
    lib = load()
    status = lib.medprep_slice_maps(
        lab.ctypes.data, n, h, w, classes, None if sp is None else sp.ctypes.data,
        convention.encode(), units.encode(), int(scale), int(threads),
        None if out_s is None else out_s.ctypes.data, None if out_r is None else out_r.ctypes.data, msg, len(msg))
    if status != 0:
        raise MapsLibraryError(f"{lib.path}: {msg.value.decode('utf-8', 'replace')}")
    if single:
        out_s = None if out_s is None else out_s[0]
        out_r = None if out_r is None else out_r[0]
    return out_s, out_r


def _output(given: Optional[np.ndarray], shape: Tuple[int, ...], name: str, single: bool) -> np.ndarray:
    """A new float32 array of `shape`, or `given` checked to be one the library can fill."""
    if given is None:
        return np.empty(shape, dtype=np.float32)
    want = shape[1:] if single else shape
    if (given.shape != want or given.dtype != np.float32 or not given.flags.c_contiguous
            or not given.flags.writeable):
        raise ValueError(f"{name} must be a writeable C-contiguous float32 array of shape {list(want)}, "
                         f"got {given.dtype} {list(given.shape)}.")
    return given.reshape(shape)
