"""Writes icon.png (128x128), the extension's icon: "dsx" in a 5x7 pixel font on a rounded
dark square with a prompt caret. Standard library only: `python3 make_icon.py`."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

SIZE = 128
BG = (30, 41, 59, 255)
FG = (125, 211, 252, 255)
ACCENT = (250, 204, 21, 255)
GLYPHS = {
    "d": ["....#", "....#", ".####", "#...#", "#...#", "#...#", ".####"],
    "s": [".....", ".....", ".####", "#....", ".###.", "....#", "####."],
    "x": [".....", ".....", "#...#", ".#.#.", "..#..", ".#.#.", "#...#"],
}


def inside_rounded(x: int, y: int, r: int = 24) -> bool:
    cx = min(max(x, r), SIZE - 1 - r)
    cy = min(max(y, r), SIZE - 1 - r)
    return (x - cx) ** 2 + (y - cy) ** 2 <= r * r


def main() -> None:
    px = [[(0, 0, 0, 0) if not inside_rounded(x, y) else BG for x in range(SIZE)] for y in range(SIZE)]
    scale, left, top = 6, 14, 34
    for i, ch in enumerate("dsx"):
        for gy, row in enumerate(GLYPHS[ch]):
            for gx, cell in enumerate(row):
                if cell == "#":
                    for dy in range(scale):
                        for dx in range(scale):
                            px[top + gy * scale + dy][left + i * 36 + gx * scale + dx] = FG
    for y in range(92, 100):  # a prompt caret and cursor under the word
        for x in range(14, 50):
            px[y][x] = ACCENT
    raw = b"".join(b"\x00" + bytes(c for p in row for c in p) for row in px)

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", SIZE, SIZE, 8, 6, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b"")
    (Path(__file__).parent / "icon.png").write_bytes(png)


if __name__ == "__main__":
    main()
