"""Where a process publisher's latency goes: one line per segment, from ``bench.run --probe``.

It joins three records of each publication of a phase, all ``time.time()``
on one machine: the publisher process's (bench/publisher_proc.py: called,
committed, returned), the server's (bench/probe.py: doorbell ring or layer
message received, store read submitted / started / done, taken by the deliver
loop, fan-out start and end) and the load generator's (first and last receipt
by a client). Each segment is reported as p50 / p99 / max over the phase's
publications, and as its mean over the slowest 1% of them (by last receipt),
which is what says where the p99 goes.
"""

from __future__ import annotations

import json
from pathlib import Path

SEGMENTS = (
    # name, from, to
    ("publish (store + commit)", "called", "committed"),
    ("commit -> server hears (ring / layer)", "committed", "heard"),
    ("heard -> read submitted", "heard", "read_submitted"),
    ("read waits for the hub's db thread", "read_submitted", "read_started"),
    ("store read", "read_started", "read_done"),
    ("read done / layer -> deliver loop", "read_done", "dequeued"),
    ("deliver loop -> fan-out start", "dequeued", "fan_start"),
    ("fan-out to the sockets", "fan_start", "fan_end"),
    ("  of which the loop's CPU time", "fan_start", "fan_cpu_end"),
    ("fan-out start -> first receipt", "fan_start", "first_receipt"),
    ("fan-out end -> last receipt", "fan_end", "last_receipt"),
    ("server: heard -> fan-out end", "heard", "fan_end"),
    ("total: called -> last receipt", "called", "last_receipt"),
)


def _first_by_seq(records: list, seq_index: int = 1, time_index: int = 2) -> dict[int, float]:
    out: dict[int, float] = {}
    for rec in records:
        out.setdefault(rec[seq_index], rec[time_index])
    return out


def join(server: dict, publisher: list[list], receipts: dict, phase: int, channel: str = "global") -> list[dict]:
    """One dict of timestamps per publication of ``phase`` (missing ones left out)."""
    rings = _first_by_seq([r for r in server["ring"] if r[0] == channel])
    layer = _first_by_seq([r for r in server["layer"] if r[0] == channel])
    dequeued = _first_by_seq([r for r in server["deq"] if r[0] == channel])
    fans: dict[int, list] = {}
    for r in server["fan"]:
        if r[0] == channel and r[4]:  # the first fan-out of it to subscribers
            fans.setdefault(r[1], r)
    reads: dict[int, list] = {}
    for submitted, started, done, rows in server["read"]:
        for ch, seq in rows:
            if ch == channel:
                reads.setdefault(seq, [submitted, started, done])
    out = []
    for ph, i, seq, called, committed, _returned in publisher:
        if ph != phase or seq not in fans or (phase, i) not in receipts:
            continue
        first, last, _count = receipts[(phase, i)]
        heard_ring, heard_layer = rings.get(seq), layer.get(seq)
        heard = min(t for t in (heard_ring, heard_layer) if t is not None) if (heard_ring or heard_layer) else None
        read = reads.get(seq)
        row = {
            "seq": seq,
            "called": called,
            "committed": committed,
            "heard": heard,
            "path": "layer" if heard_layer and heard == heard_layer else ("ring" if heard_ring else "poller"),
            "read_submitted": read[0] if read else None,
            "read_started": read[1] if read else None,
            "read_done": read[2] if read else None,
            "dequeued": dequeued.get(seq),
            "fan_start": fans[seq][2],
            "fan_end": fans[seq][3],
            "fan_cpu_end": fans[seq][2] + (fans[seq][5] if len(fans[seq]) > 5 else 0.0),
            "first_receipt": first,
            "last_receipt": last,
        }
        if row["path"] == "layer":  # the layer message is delivered, not a read
            row["read_done"] = heard
            row["read_submitted"] = row["read_started"] = None
        out.append(row)
    return out


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def summarise(rows: list[dict], gcs: list | None = None) -> dict:
    if not rows:
        return {"publications": 0}
    worst = sorted(rows, key=lambda r: r["last_receipt"] - r["called"])[-max(1, len(rows) // 100) :]
    segments = {}
    for name, a, b in SEGMENTS:
        values = [(r[b] - r[a]) * 1000 for r in rows if r[a] is not None and r[b] is not None]
        tail = [(r[b] - r[a]) * 1000 for r in worst if r[a] is not None and r[b] is not None]
        if values:
            segments[name] = {
                "p50": round(_pct(values, 0.5), 2),
                "p99": round(_pct(values, 0.99), 2),
                "max": round(max(values), 2),
                "slowest_1pct_mean": round(sum(tail) / len(tail), 2) if tail else None,
            }
    paths: dict[str, int] = {}
    for r in rows:
        paths[r["path"]] = paths.get(r["path"], 0) + 1
    start, end = rows[0]["called"], rows[-1]["last_receipt"]
    in_phase = [g for g in gcs or [] if start <= g[0] <= end]
    return {
        "publications": len(rows),
        "paths": paths,
        "segments_ms": segments,
        "server_gc_gen1_2": len(in_phase),
        "server_gc_max_ms": round(max(((g[1] - g[0]) * 1000 for g in in_phase), default=0.0), 2),
    }


def from_files(server_probe: Path, publisher_probe: Path, receipts: dict, phase: int = 1) -> dict:
    try:
        server = json.loads(server_probe.read_text())
        publisher = [json.loads(line) for line in publisher_probe.read_text().splitlines() if line]
    except (OSError, ValueError) as exc:
        return {"error": repr(exc)}
    rows = join(server, publisher, receipts, phase)
    summary = summarise(rows, server.get("gc"))
    if rows:
        # The store reads of the phase: more rows read (and queued) than publications
        # means the same ones were read again while the deliver loop was behind.
        start, end = rows[0]["called"], rows[-1]["last_receipt"]
        reads = [r for r in server["read"] if start <= r[0] <= end]
        summary["store_reads"] = len(reads)
        summary["rows_read_per_publication"] = round(sum(len(r[3]) for r in reads) / len(rows), 2)
        summary["dequeued_per_publication"] = round(sum(start <= d[2] <= end for d in server["deq"]) / len(rows), 2)
    return summary


def table(name: str, summary: dict) -> str:
    if "segments_ms" not in summary:
        return f"{name}: no breakdown ({summary})"
    lines = [
        f"{name}: {summary['publications']} publications, paths {summary['paths']}, "
        f"server GCs (gen 1-2) {summary['server_gc_gen1_2']}, longest {summary['server_gc_max_ms']} ms"
    ]
    lines.append(f"  {'segment':40} {'p50':>8} {'p99':>8} {'max':>8} {'slowest 1%':>11}")
    for seg, v in summary["segments_ms"].items():
        tail = "-" if v["slowest_1pct_mean"] is None else f"{v['slowest_1pct_mean']:.2f}"
        lines.append(f"  {seg:40} {v['p50']:8.2f} {v['p99']:8.2f} {v['max']:8.2f} {tail:>11}")
    return "\n".join(lines)
