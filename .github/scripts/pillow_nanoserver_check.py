"""What users of rewheel's Nano Server Pillow see, checked inside a Nano Server container (standard library +
the wheel under test only).

The recipe (recipes/pillow.toml) compiles Pillow's USER32/GDI32 code out for win_amd64-nanoserver. This
script checks the promised behaviour, not only the import: the image codecs work, and every compiled-out
entry point fails as a Python exception (never a crash of the process):
- ImageGrab.grab() / grabclipboard(), ImageWin.Dib: OSError naming PILLOW_NO_WIN32_DISPLAY;
- a WMF file opens (size known) but load() raises OSError, as on Linux; Image.core has no drawwmf;
- ImageCms.get_display_profile() returns None.
The Windows-only checks are reported as skipped elsewhere, so the portable ones can be run on Linux too.

    MOUNT\\python\\python.exe -I MOUNT\\pillow_nanoserver_check.py --site MOUNT\\site
Exit 0 when every check passed, 1 otherwise.
"""

from __future__ import annotations

import argparse
import io
import struct
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

MACRO = "PILLOW_NO_WIN32_DISPLAY"


def placeable_wmf() -> bytes:
    """The smallest file Pillow's WMF plugin accepts: a placeable header (bbox 0,0-100,100 at 1440 units
    per inch, i.e. 5x5 pixels at 72 dpi) and the start of a standard metafile header."""
    header = struct.pack("<IH4hHIH", 0x9AC6CDD7, 0, 0, 0, 100, 100, 1440, 0, 0)
    standard = struct.pack("<HHH", 1, 9, 0x0300)
    return (header + standard).ljust(80, b"\0")


def raises_oserror(call: Callable[[], object], *, naming: str = "") -> str:
    try:
        result = call()
    except OSError as exc:
        if naming and naming not in str(exc):
            raise AssertionError(f"OSError without {naming!r}: {exc}") from None
        return f"OSError: {exc}"
    raise AssertionError(f"no OSError (returned {result!r})")


def codecs() -> str:
    from PIL import Image, features

    wanted = ("jpg", "zlib", "littlecms2")
    absent = [name for name in wanted if not features.check(name)]
    assert not absent, f"features missing: {absent}"
    for format_name in ("JPEG", "PNG"):
        out = io.BytesIO()
        Image.new("RGB", (8, 8), (200, 10, 10)).save(out, format_name)
        pixel = Image.open(io.BytesIO(out.getvalue())).convert("RGB").getpixel((4, 4))
        assert isinstance(pixel, tuple) and pixel[0] > 150, (format_name, pixel)
    return "JPEG and PNG round trips"


def wmf_is_identify_only() -> str:
    from PIL import Image

    assert not hasattr(Image.core, "drawwmf"), "Image.core.drawwmf exists: WMF rendering was not compiled out"
    image = Image.open(io.BytesIO(placeable_wmf()))
    assert (image.format, image.size) == ("WMF", (5, 5)), (image.format, image.size)
    return raises_oserror(image.load)


def screen_grab() -> str:
    from PIL import ImageGrab

    return raises_oserror(ImageGrab.grab, naming=MACRO)


def clipboard() -> str:
    from PIL import ImageGrab

    return raises_oserror(ImageGrab.grabclipboard, naming=MACRO)


def dib() -> str:
    from PIL import ImageWin

    return raises_oserror(lambda: ImageWin.Dib("RGB", (4, 4)), naming=MACRO)


def display_profile() -> str:
    from PIL import ImageCms

    profile = ImageCms.get_display_profile()
    assert profile is None, f"expected None, got {profile!r}"
    return "None"


PORTABLE = [codecs, wmf_is_identify_only]
WINDOWS_ONLY = [screen_grab, clipboard, dib, display_profile]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--site", type=Path, required=True, help="where the wheel under test is installed")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(args.site))
    import PIL

    print(f"Pillow {PIL.__version__} from {Path(PIL.__file__).parent}, Python {sys.version.split()[0]}")
    failed = 0
    for check in [*PORTABLE, *WINDOWS_ONLY]:
        if check in WINDOWS_ONLY and sys.platform != "win32":
            print(f"skip {check.__name__}: Windows only")
            continue
        try:
            detail = check()
        except Exception as exc:
            failed += 1
            print(f"FAIL {check.__name__}: {type(exc).__name__}: {exc}")
            traceback.print_exc(file=sys.stderr)
        else:
            print(f"ok   {check.__name__}: {detail}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
