#!/usr/bin/env python3
"""Compact table of an `ncu --csv --page raw --metrics ...` run (scripts/device-w4k.sh NCU=1): one row per profiled
kernel, the metric columns named in COLS (missing ones print '-'). Lines that are not CSV (the program's own output,
==PROF== lines) are skipped.   python3 ncu_table.py ncu_raw.csv [shape label]"""
import csv
import re
import sys

# (header, metric, scale, format): scale divides the value as ncu printed it in the unit ncu printed (kept in the header)
COLS = [
    ("us", "gpu__time_duration.sum", None, "{:.1f}"),
    ("DRAM %pk", "dram__throughput.avg.pct_of_peak_sustained_elapsed", None, "{:.0f}"),
    ("DRAM rd", "dram__bytes_read.sum.per_second", None, "{:.0f}"),
    ("IPC iss", "sm__inst_issued.avg.per_cycle_active", None, "{:.2f}"),
    ("issue %", "smsp__issue_active.avg.pct_of_peak_sustained_active", None, "{:.0f}"),
    ("elig/cyc", "smsp__warps_eligible.avg.per_cycle_active", None, "{:.2f}"),
    ("occ %", "sm__warps_active.avg.pct_of_peak_sustained_active", None, "{:.0f}"),
    ("regs", "launch__registers_per_thread", None, "{:.0f}"),
    ("grid", "launch__grid_size", None, "{:.0f}"),
    ("LDS inst", "smsp__sass_inst_executed_op_shared_ld.sum", None, "{:.3g}"),
    ("LDS wavefr", "l1tex__data_pipe_lsu_wavefronts_mem_shared_op_ld.sum", None, "{:.3g}"),
    ("LDS bank confl", "l1tex__data_bank_conflicts_pipe_lsu_mem_shared_op_ld.sum", None, "{:.3g}"),
    ("LDG req", "l1tex__t_requests_pipe_lsu_mem_global_op_ld.sum", None, "{:.3g}"),
    ("LDG sect", "l1tex__t_sectors_pipe_lsu_mem_global_op_ld.sum", None, "{:.3g}"),
    ("tensor %", "sm__pipe_tensor_op_hmma_cycles_active.avg.pct_of_peak_sustained_active", None, "{:.0f}"),
]
STALLS = ["long_scoreboard", "short_scoreboard", "mio_throttle", "lg_throttle", "math_pipe_throttle", "barrier",
          "not_selected", "selected", "wait", "no_instruction", "dispatch_stall"]
SHORT = {"long_scoreboard": "long sb", "short_scoreboard": "short sb", "mio_throttle": "mio thr", "lg_throttle": "lg thr",
         "math_pipe_throttle": "math thr", "barrier": "barrier", "not_selected": "not sel", "selected": "selected",
         "wait": "wait", "no_instruction": "no inst", "dispatch_stall": "dispatch"}
for s in STALLS:
    COLS.append((SHORT[s], f"smsp__average_warps_issue_stalled_{s}_per_issue_active.ratio", None, "{:.2f}"))


def label(name):
    m = re.search(r"w4a16_gemv_x_kernel<(\d+), (\d+), (\d+)>", name)
    if m:
        return f"gemv(mma_x) T{m.group(2)}"
    m = re.search(r"w4a16_gemv_kernel<(\d+), (\d+), (\d+), (\w+)>", name)
    if m:
        d = {"1": "fma", "2": "mma", "3": "read", "6": "mma_qz"}.get(m.group(2), "D" + m.group(2))
        return f"gemv({d}) u{m.group(3)}"
    m = re.search(r"w4a16_gemv_async_kernel<(\d+), (\d+), (\d+)>", name)
    if m:
        return "gemv(read async)" if m.group(2) == "5" else "gemv(mma) async"
    m = re.search(r"w4a16_wide_kernel<(\d+), (\d+), (\d+)>", name)
    if m:
        return f"wide (MI {m.group(1)}, NT {m.group(2)}, WK {m.group(3)})"
    m = re.search(r"w4a16_mma_kernel<(\d+), (\d+)>", name)
    if m:
        return f"fused (MI {m.group(1)}, {m.group(2)} warps)"
    if "stream_read_kernel" in name:
        return "stream read (codes)"
    return re.sub(r"\(.*", "", name)[-40:]


def main():
    rows = [r for r in csv.reader(l for l in open(sys.argv[1], errors="replace") if l.startswith('"'))]
    if len(rows) < 3:
        print("ncu_table: no CSV rows in", sys.argv[1])
        return 1
    head, units, data = rows[0], rows[1], rows[2:]
    idx = {h: i for i, h in enumerate(head)}
    kn = idx.get("Kernel Name")
    cols = [c for c in COLS if c[1] in idx]
    missing = [c[1] for c in COLS if c[1] not in idx]
    hdr = ["kernel"] + [f"{c[0]} ({units[idx[c[1]]]})" if units[idx[c[1]]] not in ("", "inst", "register/thread") else c[0] for c in cols]
    shape = sys.argv[2] if len(sys.argv) > 2 else ""
    print(f"ncu, m = 1 {shape} (--clock-control none; stalls: warps stalled per issued instruction)")
    print("| " + " | ".join(hdr) + " |")
    print("|" + "---|" * len(hdr))
    for r in data:
        out = [label(r[kn]) if kn is not None else "?"]
        for c in cols:
            v = r[idx[c[1]]].replace(",", "")
            try:
                out.append(c[3].format(float(v)))
            except ValueError:
                out.append(v or "-")
        print("| " + " | ".join(out) + " |")
    if missing:
        print("(not in the CSV: " + ", ".join(missing) + ")")
    return 0


if __name__ == "__main__":
    sys.exit(main())
