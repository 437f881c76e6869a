#!/usr/bin/env python3
"""The vertex timeline of one build, from buildx's `--progress=rawjson`.

    docker buildx build --progress=rawjson ... 2> build.json
    python3 bench/timeline.py build.json [--all]

Prints, per vertex, its start and end in seconds from the first vertex's
start, `C` when BuildKit reported it cached, and its name; cached vertices
that took no time are left out unless `--all` is given. Standard library
only.
"""
import json
import re
import sys
from datetime import datetime


def stamp(text):
    """An RFC 3339 time with nanoseconds as POSIX seconds."""
    text = text.replace("Z", "+00:00")
    m = re.match(r"(.*\.\d{6})\d*(.*)", text)
    if m:
        text = m.group(1) + m.group(2)
    return datetime.fromisoformat(text).timestamp()


def vertices(data):
    """Merges the status updates of every vertex, by digest."""
    decoder = json.JSONDecoder()
    out, i = {}, 0
    while i < len(data):
        while i < len(data) and data[i].isspace():
            i += 1
        if i >= len(data):
            break
        update, i = decoder.raw_decode(data, i)
        for v in update.get("vertexes") or []:
            d = out.setdefault(v["digest"], {"name": v.get("name", "")})
            if v.get("started"):
                d["start"] = stamp(v["started"])
            if v.get("completed"):
                d["end"] = stamp(v["completed"])
            if v.get("cached"):
                d["cached"] = True
    return out


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    if len(args) != 1:
        sys.exit("usage: bench/timeline.py BUILD.json [--all]")
    with open(args[0]) as f:
        vs = [v for v in vertices(f.read()).values() if "start" in v]
    t0 = min(v["start"] for v in vs)
    for v in sorted(vs, key=lambda v: v["start"]):
        end = v.get("end", v["start"])
        if v.get("cached") and end - v["start"] < 0.001 and "--all" not in sys.argv:
            continue
        mark = "C" if v.get("cached") else " "
        print(f"{v['start'] - t0:7.3f} {end - t0:7.3f} {mark} {v['name'][:110]}")
    print(f"{'':7} {max(v.get('end', v['start']) for v in vs) - t0:7.3f}   (last vertex done)")


if __name__ == "__main__":
    main()
