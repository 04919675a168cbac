"""Small PNG thumbnails of rendered figures for the README (``paper_figures/thumbs/``).

``python -m paper_figures.thumbs [--src DIR] [--dest DIR] [--width PX]`` reads
``DIR/figNN_*.png`` (as written by ``scdsim figures``) and writes palette PNGs ``width`` pixels
wide, atomically.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

from paper_figures.common import write_atomic

DEST = Path(__file__).resolve().parent / "thumbs"


def make_thumbs(src="figures", dest=DEST, width=300) -> list[Path]:
    """Write a ``width``-pixel-wide thumbnail of every ``src/fig*.png``; return their paths."""
    from PIL import Image

    out = []
    for png in sorted(Path(src).glob("fig[0-9][0-9]_*.png")):
        with Image.open(png) as im:
            im = im.convert("RGB")
            h = max(1, round(im.height * width / im.width))
            small = im.resize((width, h), Image.LANCZOS).quantize(colors=64)
            buf = io.BytesIO()
            small.save(buf, format="PNG", optimize=True)
        path = Path(dest) / png.name
        write_atomic(path, buf.getvalue())
        out.append(path)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m paper_figures.thumbs", description=__doc__)
    ap.add_argument("--src", default="figures")
    ap.add_argument("--dest", default=str(DEST))
    ap.add_argument("--width", type=int, default=300)
    args = ap.parse_args(argv)
    for p in make_thumbs(args.src, args.dest, args.width):
        print(p)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
