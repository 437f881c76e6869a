#!/usr/bin/env python3
"""Helpers of bench/compare.sh (standard library only).

  compare.py same CUR.json REF.json          -> "k/n": layers of CUR also in REF
  compare.py changed CUR.json PREV.json      -> "n changed": diffIDs not in PREV
  compare.py push REGISTRY REPO TAG LOG STATE -> "new_bytes uploaded_bytes"
  compare.py progress LOG CONTENDER          -> "context_bytes executed"
  compare.py report RESULTS_DIR              -> results.json, results.csv,
                                                tables.md, chart.png (gnuplot)
"""

import csv
import json
import re
import statistics
import subprocess
import sys
import urllib.request
from pathlib import Path

ACCEPT = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    ]
)


def get(url, method="GET"):
    req = urllib.request.Request(url, method=method, headers={"Accept": ACCEPT})
    with urllib.request.urlopen(req) as r:
        return r.read(), r.headers


def manifest(registry, repo, ref):
    body, _ = get(f"http://{registry}/v2/{repo}/manifests/{ref}")
    m = json.loads(body)
    if "manifests" in m:  # an index: the image manifest for linux/amd64
        return manifest(registry, repo, m["manifests"][0]["digest"])
    return m


def cmd_same(cur, ref):
    cur, ref = json.load(open(cur)), set(json.load(open(ref)))
    print(f"{sum(1 for d in cur if d in ref)}/{len(cur)}")


def cmd_changed(cur, prev):
    cur, prev = json.load(open(cur)), set(json.load(open(prev)))
    print(len(cur), sum(1 for d in cur if d not in prev))


def cmd_push(registry, repo, tag, log, state):
    m = manifest(registry, repo, tag)
    sizes = {l["digest"]: l["size"] for l in m["layers"]}
    sizes[m["config"]["digest"]] = m["config"]["size"]
    prev = set()
    if Path(state).exists():
        prev = {l["digest"] for l in json.load(open(state))["layers"]}
    new = sum(l["size"] for l in m["layers"] if l["digest"] not in prev)
    uploaded = 0
    pat = re.compile(
        r'"PUT /v2/' + re.escape(repo) + r'/blobs/uploads/\S*digest=sha256%3A([0-9a-f]{64}) HTTP/1.1" 201 '
    )
    for line in open(log, errors="replace"):
        hit = pat.search(line)
        if not hit:
            continue
        d = "sha256:" + hit.group(1)
        if d not in sizes:
            _, h = get(f"http://{registry}/v2/{repo}/blobs/{d}", "HEAD")
            sizes[d] = int(h["Content-Length"])
        uploaded += sizes[d]
    json.dump(m, open(state, "w"))
    print(new, uploaded)


UNITS = {"B": 1, "kB": 1e3, "KB": 1e3, "MB": 1e6, "GB": 1e9, "KiB": 1024, "MiB": 2**20, "GiB": 2**30}
INTERNAL = ("[internal]", "[auth]", "load ", "transferring", "exporting", "resolve ", "naming",
            "unpacking", "writing", "importing", "preparing", "sending", "pushing", "inferred")


def cmd_progress(log, contender):
    names, cached, pulled, printed, ctx = {}, set(), set(), set(), {}
    for line in open(log, errors="replace"):
        m = re.match(r"#(\d+) (.*)", line.rstrip("\n"))
        if not m:
            continue
        n, rest = m.group(1), m.group(2)
        if n not in names:
            names[n] = rest
        if rest == "CACHED":
            cached.add(n)
        elif re.match(r"(extracting )?sha256:[0-9a-f]+ ", rest):
            pulled.add(n)
        elif re.match(r"\d+\.\d+ ", rest):
            printed.add(n)
        c = re.match(r"transferring context: ([\d.]+)([kKMG]?i?B)", rest)
        if c:
            ctx[n] = float(c.group(1)) * UNITS[c.group(2)]
    ran = []
    for n, name in names.items():
        # A step ran if it printed output (`#N 0.412 …`), also after
        # BuildKit reported it `CACHED` (a later request can run it again),
        # or if it was neither reported `CACHED` nor loaded from an imported
        # cache (`#N sha256:… done`, `#N extracting …`, then `DONE`, with or
        # without `CACHED` first). A `COPY` prints nothing when it runs.
        if n not in printed and (n in cached or n in pulled):
            continue
        if re.match(r"\[[^\]]+\] (RUN|COPY) |\[strata\] (layer|stage) ", name):
            ran.append(name)
    runs = sum(1 for n in ran if re.search(r"\] RUN |\[strata\] (layer system|layer python-deps|stage )", n))
    print(int(sum(ctx.values())), f"{len(ran)}({runs}run)")


def steps(s):
    m = re.match(r"(\d+)\((\d+)run\)", s or "")
    return f"{m.group(1)} ({m.group(2)} RUN)" if m else "-"


def human(n):
    if n in ("-", "", None):
        return "-"
    n = float(n)
    for unit, f in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 1024)):
        if n >= f:
            return f"{n / f:.1f} {unit}"
    return f"{int(n)} B"


SCEN = {
    "warmup": "warm-up (first build on the shared engine)",
    "fresh": "fresh build, empty cache (pruned second engine)",
    "cold": "cold CI runner: pruned second engine, --cache-from registry",
    "noop": "no-op rebuild",
    "app": "app code change (one file)",
    "req": "requirements change",
    "shard": "one model shard changed (1 MiB of it)",
    "touch": "every file touched (mtimes only)",
    "base": "base image changed",
}
# The contenders built by an engine, in table and chart order.
ENGINE_CONT = ("plain", "link", "files", "strata")
CONT = {
    "plain": "Dockerfile",
    "link": "Dockerfile + COPY --link",
    "files": "Dockerfile + one COPY --link per shard file",
    "strata": "strata (frontend)",
    "embedded": "strata build (embedded)",
    "plan": "strata plan",
    "targz": "`tar -c \\| gzip -6`",
}


def cmd_report(d):
    d = Path(d)
    rows = list(csv.DictReader(open(d / "raw.tsv"), delimiter="\t"))
    meta = (d / "meta.txt").read_text() if (d / "meta.txt").exists() else ""
    loads = (d / "load.tsv").read_text() if (d / "load.tsv").exists() else ""
    groups = {}
    for r in rows:
        groups.setdefault((r["scenario"], r["contender"]), []).append(r)
    summary = []
    for (s, c), rs in groups.items():
        t = [float(r["secs"]) for r in rs]
        first = rs[0]
        rss = [int(r["rss_kib"]) for r in rs if r["rss_kib"] not in ("-", "")]
        summary.append(
            {
                "scenario": s,
                "contender": c,
                "engine": first["engine"],
                "runs": len(t),
                "median_s": round(statistics.median(t), 2),
                "min_s": round(min(t), 2),
                "max_s": round(max(t), 2),
                "layers": first["layers"],
                "changed_layers": first["changed"],
                "new_blob_bytes": first["new_bytes"],
                "uploaded_bytes": first["uploaded_bytes"],
                "push_s": first["push_secs"],
                "context_bytes": first["context_bytes"],
                "steps_executed": first["executed"],
                "layers_same_as_main_engine": first["same_layers"],
                "peak_rss_kib": max(rss) if rss else None,
            }
        )
    json.dump({"meta": meta, "load": loads, "summary": summary, "raw": rows}, open(d / "results.json", "w"), indent=1)
    with open(d / "results.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(summary[0].keys()))
        w.writeheader()
        w.writerows(summary)
    by = {(x["scenario"], x["contender"]): x for x in summary}
    out = []
    eng = [x for x in summary if x["contender"] in ENGINE_CONT]
    if eng:
        out.append("| scenario | contender | time s, median (min–max) | layers changed | new layer blobs | uploaded by push | context sent | steps run (of them RUN) | layers = main engine's |")
        out.append("|---|---|---:|---:|---:|---:|---:|---:|---:|")
        for s in SCEN:
            for c in ENGINE_CONT:
                x = by.get((s, c))
                if not x:
                    continue
                out.append(
                    f"| {SCEN[s]} | {CONT[c]} | {x['median_s']:.2f} ({x['min_s']:.2f}–{x['max_s']:.2f}) | "
                    f"{x['changed_layers']}/{x['layers']} | {human(x['new_blob_bytes'])} | {human(x['uploaded_bytes'])} | "
                    f"{human(x['context_bytes'])} | {steps(x['steps_executed'])} | {x['layers_same_as_main_engine']} |"
                )
    emb = [x for x in summary if x["contender"] in ("embedded", "plan", "targz")]
    if emb:
        out.append("")
        out.append("| scenario | contender | time s, median (min–max) | peak RSS |")
        out.append("|---|---|---:|---:|")
        for s in ("fresh", "noop", "app", "shard", "touch"):
            for c in ("targz", "embedded", "plan"):
                x = by.get((s, c))
                if x:
                    rss = f"{x['peak_rss_kib'] / 1024:.1f} MiB" if x["peak_rss_kib"] else "-"
                    out.append(f"| {SCEN[s].split(',')[0].replace(' (pruned second engine)', '')} | {CONT[c]} | {x['median_s']:.2f} ({x['min_s']:.2f}–{x['max_s']:.2f}) | {rss} |")
    (d / "tables.md").write_text("\n".join(out) + "\n")
    chart(d, by, meta)


def chart(d, by, meta):
    scen = [s for s in SCEN if s != "warmup" and any((s, c) in by for c in ENGINE_CONT)]
    if not scen:
        return
    lines = []
    for s in scen:
        label = {"fresh": "fresh", "cold": "cold runner", "noop": "no-op", "app": "app change",
                 "req": "requirements", "shard": "one shard", "touch": "touch all", "base": "base image"}[s]
        vals = [str(by[(s, c)]["median_s"]) if (s, c) in by else "0" for c in ENGINE_CONT]
        lines.append(f'"{label}" ' + " ".join(vals))
    (d / "chart.dat").write_text("\n".join(lines) + "\n")
    title = next((l for l in meta.splitlines() if l.startswith("scale:")), "")
    engine = next((l for l in meta.splitlines() if l.startswith("engine:")), "")
    gp = f"""
set terminal pngcairo size 1100,560 font "DejaVu Sans,12"
set output "{d}/chart.png"
set title "Build time, median of runs (lower is better) — {title.replace('scale: ', '')}\\n{engine.split(',')[0].replace('engine: ', '')}"
set style data histograms
set style histogram clustered gap 1.5
set style fill solid 0.9 border -1
set boxwidth 0.9
set ylabel "seconds"
set yrange [0:*]
set grid ytics
set key top right
set xtics nomirror
plot "{d}/chart.dat" using 2:xtic(1) title "Dockerfile" lc rgb "#9e9e9e", \\
     "" using 3 title "Dockerfile + COPY --link" lc rgb "#5b8fd1", \\
     "" using 4 title "Dockerfile + COPY --link per shard file" lc rgb "#2e7d32", \\
     "" using 5 title "strata (frontend)" lc rgb "#e07b24", \\
     "" using ($0-0.34):($2):(sprintf("%.1f",$2)) with labels offset 0,0.6 font ",9" notitle, \\
     "" using ($0-0.11):($3):(sprintf("%.1f",$3)) with labels offset 0,0.6 font ",9" notitle, \\
     "" using ($0+0.11):($4):(sprintf("%.1f",$4)) with labels offset 0,0.6 font ",9" notitle, \\
     "" using ($0+0.34):($5):(sprintf("%.1f",$5)) with labels offset 0,0.6 font ",9" notitle
"""
    (d / "chart.gp").write_text(gp)
    subprocess.run(["gnuplot", str(d / "chart.gp")], check=True)


if __name__ == "__main__":
    cmd, args = sys.argv[1], sys.argv[2:]
    globals()["cmd_" + cmd](*args)
