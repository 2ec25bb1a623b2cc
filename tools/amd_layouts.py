#!/usr/bin/env python3
"""Generate the AMD matrix-core register/lane layout tables in tests/data/amd_layouts/ (issue 13).

Runs AMD's matrix instruction calculator (ROCm/amd_matrix_instruction_calculator, a separate Python
tool, by default ../shared/peers/amd_matrix_instruction_calculator relative to the repository root)
for every MFMA/WMMA builtin the templates use, on every emulation target it is compiled for, and
converts its output into one JSON table per (target, instruction), plus index.json. Nothing of the
calculator is copied here: it is run as a program and only its printed output is kept, as data.

For each table the calculator is asked for the instruction details (--detail-instruction) and, for
each of A, B, C and D, both directions of the mapping (--matrix-layout and --register-layout, CSV).
The two directions are parsed independently and must describe the same set of
(register, bits, lane) <-> (row, column, block) pairs, or the script stops.

Usage (from the repository root):
    pip install tabulate                      # the calculator's one requirement
    python3 tools/amd_layouts.py              # (re)write tests/data/amd_layouts/
    python3 tools/amd_layouts.py --check      # regenerate in memory, compare with the committed files
    python3 tools/amd_layouts.py --calculator /path/to/amd_matrix_instruction_calculator

The output is deterministic (no timestamps), so --check after a calculator update shows what moved.
"""

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEFAULT_CALC = os.path.normpath(os.path.join(ROOT, "..", "shared", "peers", "amd_matrix_instruction_calculator"))
OUT_DIR = os.path.join(ROOT, "tests", "data", "amd_layouts")
TEMPLATES = os.path.join(ROOT, "templates")

# Builtin families with a register/lane layout (matrix cores). The dot products (sdot4, sudot4, ...) are
# lane-local, have no layout table, and are checked against their ISA semantics by tests/cpu_emulate.rs.
BUILTIN_RE = re.compile(r"__builtin_amdgcn_(?:mfma|smfmac|wmma|swmmac)\w*")

# The emulation targets of issue 13 and the calculator's name for each architecture (None: the
# calculator does not know it; the reason is recorded from the calculator's own answer).
TARGETS = {
    "gfx90a": {"calc_arch": "CDNA2", "wave": 64},
    "gfx942": {"calc_arch": "CDNA3", "wave": 64},
    "gfx950": {"calc_arch": None, "wave": 64, "probe": "gfx950"},
    "gfx1100": {"calc_arch": "RDNA3", "wave": 32},
    "gfx1200": {"calc_arch": "RDNA4", "wave": 32},
}

# Which targets compile each builtin (the templates' #if structure: RF_MFMA on gfx90a/gfx942/gfx950,
# RF_WMMA with RF_GFX < 0x1200 on gfx11, the *_gfx12 builtins on gfx12), and the ISA mnemonic the
# builtin selects on each (LLVM's IntrinsicsAMDGPU.td / VOP3PInstructions.td; gfx940+ spells the
# same MFMA opcodes with an underscore before the type, and the *_1k bf16 form is the only bf16
# 16x16x16 on gfx940+). The calculator is asked for exactly these mnemonics.
BUILTINS = {
    "__builtin_amdgcn_mfma_f32_16x16x16f16": {
        "gfx90a": "v_mfma_f32_16x16x16f16",
        "gfx942": "v_mfma_f32_16x16x16_f16",
        "gfx950": "v_mfma_f32_16x16x16_f16",
    },
    "__builtin_amdgcn_mfma_f32_16x16x16bf16_1k": {
        "gfx90a": "v_mfma_f32_16x16x16bf16_1k",
        "gfx942": "v_mfma_f32_16x16x16_bf16",
        "gfx950": "v_mfma_f32_16x16x16_bf16",
    },
    "__builtin_amdgcn_wmma_f32_16x16x16_f16_w32": {"gfx1100": "v_wmma_f32_16x16x16_f16"},
    "__builtin_amdgcn_wmma_f32_16x16x16_bf16_w32": {"gfx1100": "v_wmma_f32_16x16x16_bf16"},
    "__builtin_amdgcn_wmma_f32_16x16x16_f16_w32_gfx12": {"gfx1200": "v_wmma_f32_16x16x16_f16"},
    "__builtin_amdgcn_wmma_f32_16x16x16_bf16_w32_gfx12": {"gfx1200": "v_wmma_f32_16x16x16_bf16"},
}

# Row/column index names per matrix, as the calculator prints them (A is M x K, B is K x N, C/D M x N).
DIMS = {"A": ("M", "K"), "B": ("K", "N"), "C": ("M", "N"), "D": ("M", "N")}


def scan_templates():
    """Every matching builtin in templates/, with the files that use it."""
    found = {}
    for name in sorted(os.listdir(TEMPLATES)):
        path = os.path.join(TEMPLATES, name)
        if not os.path.isfile(path):
            continue
        with open(path, encoding="utf-8") as f:
            for no, line in enumerate(f, 1):
                for m in BUILTIN_RE.finditer(line):
                    found.setdefault(m.group(0), set()).add(f"templates/{name}")
    return found


class Calc:
    def __init__(self, path):
        self.path = path
        self.script = os.path.join(path, "matrix_calculator.py")
        if not os.path.isfile(self.script):
            sys.exit(f"amd_layouts: no matrix_calculator.py in {path} (use --calculator)")
        self.commands = []

    def run(self, args, record=True, ok=True):
        cmd = ["python3", "matrix_calculator.py"] + args
        p = subprocess.run(cmd, cwd=self.path, capture_output=True, text=True)
        if ok and p.returncode != 0:
            sys.exit(f"amd_layouts: `{' '.join(cmd)}` failed ({p.returncode}):\n{p.stdout}{p.stderr}")
        if record:
            self.commands.append(" ".join(cmd))
        return p

    def version(self):
        out = self.run(["--version"], record=False).stdout.strip()
        commit = None
        sc = os.path.join(self.path, "SOURCE-COMMIT")
        if os.path.isfile(sc):
            commit = open(sc, encoding="utf-8").read().strip()
        with open(self.script, "rb") as f:
            sha = hashlib.sha256(f.read()).hexdigest()
        return {"version": out, "source_commit": commit, "matrix_calculator_py_sha256": sha}


def parse_detail(text, wave):
    """M, N, K, blocks, per-operand register counts, fields and types from --detail-instruction."""
    lines = text.splitlines()
    d = {"detail": [l.rstrip() for l in lines]}
    for key in ("M", "N", "K", "blocks"):
        m = re.search(rf"^\s+{key}: (\d+)$", text, re.M)
        d[key] = int(m.group(1)) if m else None
    if d["blocks"] is None:
        d["blocks"] = 1  # RDNA tables print no block count: single block
    m = re.search(r"^Instruction: (\S+)$", text, re.M)
    d["calculator_instruction"] = m.group(1)
    # Register usage: CDNA has one section, RDNA one per wave size.
    sect = None
    gprs = {}
    for l in lines:
        s = l.strip()
        if s.lower().endswith("register usage:"):
            sect = s
            continue
        m = re.match(r"GPRs required for ([ABCD]): (\d+)", s)
        if m and sect is not None and (sect == "Register usage:" or sect.startswith(f"Wave{wave} ")):
            gprs[m.group(1)] = int(m.group(2))
    fields = dict(re.findall(r"^\s+([ABCD]) matrix source field: (\w+)$", text, re.M))
    types = dict(re.findall(r"^\s+(Src0|Src1|Src2|Vdst): (.+)$", text, re.M))
    d["operands"] = {
        mat: {"gprs": gprs[mat], "field": fields[mat], "type": types[fields[mat]]} for mat in "ABCD"
    }
    return d


ELEM_RE = re.compile(r"^([ABCDK])\[(\d+)\]\[(\d+)\](?:\.B(\d+))?$")
REG_HDR_RE = re.compile(r"^v(\d+)(?:\.\[(\d+):(\d+)\])?$")


def parse_matrix_layout(text, mat):
    """--matrix-layout --csv: rows are lanes, columns registers(.bits), cells the element held."""
    rows = [l for l in text.splitlines() if l and not l.startswith(("Architecture:", "Instruction:"))]
    hdr = rows[0].split(",")
    assert hdr[0] == "lane", hdr
    regs = []
    for h in hdr[1:]:
        m = REG_HDR_RE.match(h)
        assert m, h
        lo, hi = (int(m.group(3)), int(m.group(2))) if m.group(2) else (0, 31)
        regs.append((int(m.group(1)), lo, hi - lo + 1))
    out = set()
    for r in rows[1:]:
        cells = r.split(",")
        lane = int(cells[0])
        for (vgpr, lo, bits), cell in zip(regs, cells[1:]):
            m = ELEM_RE.match(cell.strip())
            assert m and m.group(1) == mat, (mat, cell)
            out.add((vgpr, lo, bits, lane, int(m.group(2)), int(m.group(3)), int(m.group(4) or 0)))
    return out


LOC_RE = re.compile(r"v(\d+)\{(\d+)\}(?:\.\[(\d+):(\d+)\])?")


def parse_register_layout(text, mat):
    """--register-layout --csv: per block a grid, rows the first index, columns the second."""
    out = set()
    block = 0
    for l in text.splitlines():
        if not l or l.startswith(("Architecture:", "Instruction:")):
            continue
        m = re.match(r"^Block (\d+)$", l)
        if m:
            block = int(m.group(1))
            continue
        cells = l.split(",")
        if cells[0].startswith(f"{mat}["):
            cols = [int(c) for c in cells[1:]]
            continue
        row = int(cells[0])
        for col, cell in zip(cols, cells[1:]):
            locs = LOC_RE.findall(cell)
            assert locs, (mat, cell)
            for vgpr, lane, hi, lo in locs:
                lo, hi = (int(lo), int(hi)) if hi else (0, 31)
                out.add((int(vgpr), lo, hi - lo + 1, int(lane), row, col, block))
    return out


def make_table(calc, builtin, target, instr):
    t = TARGETS[target]
    wave = t["wave"]
    base = ["-a", t["calc_arch"], "-i", instr]
    if t["calc_arch"].startswith("RDNA"):
        base += ["--wavefront", str(wave)]
    first = len(calc.commands)
    det = parse_detail(calc.run(base + ["--detail-instruction"]).stdout, wave)
    table = {
        "builtin": builtin,
        "arch": target,
        "calculator_arch": t["calc_arch"],
        "instruction": instr,
        "calculator_instruction": det["calculator_instruction"],
        "wave_size": wave,
        "M": det["M"],
        "N": det["N"],
        "K": det["K"],
        "blocks": det["blocks"],
        "modifiers": "none (CBSZ=ABID=BLGP=0, OPSEL=NEG=0: what the templates pass)",
        "operands": det["operands"],
        "matrices": {},
    }
    for mat in "ABCD":
        ml = parse_matrix_layout(calc.run(base + [f"-{mat}", "--matrix-layout", "--csv"]).stdout, mat)
        rl = parse_register_layout(calc.run(base + [f"-{mat}", "--register-layout", "--csv"]).stdout, mat)
        if ml != rl:
            sys.exit(f"amd_layouts: {target} {instr} {mat}: --matrix-layout and --register-layout disagree "
                     f"({len(ml - rl)} only in the first, {len(rl - ml)} only in the second)")
        bits = {s[2] for s in ml}
        assert len(bits) == 1, (target, instr, mat, bits)
        bits = bits.pop()
        rdim, cdim = DIMS[mat]
        nel = det[rdim] * det[cdim] * det["blocks"]
        slots = sorted(
            (lane, (vgpr * 32 + lo) // bits, vgpr, lo, row, col, blk) for (vgpr, lo, _, lane, row, col, blk) in ml
        )
        table["matrices"][mat] = {
            "rows": det[rdim],
            "cols": det[cdim],
            "row_dim": rdim,
            "col_dim": cdim,
            "element_bits": bits,
            "gprs": det["operands"][mat]["gprs"],
            "vector_len": det["operands"][mat]["gprs"] * 32 // bits,
            "copies": len(slots) // nel,
            "fields": ["lane", "elem", "vgpr", "bit_lo", "row", "col", "block"],
            "slots": [list(s) for s in slots],
        }
    table["detail"] = det["detail"]
    table["commands"] = calc.commands[first:]
    return table


def dumps(obj):
    """JSON with one slot per line (readable diffs), everything else indented."""
    marks = {}

    def mark(o):
        if isinstance(o, dict):
            return {k: mark(v) for k, v in o.items()}
        if isinstance(o, list) and o and (all(isinstance(x, int) for x in o)
                                          or all(isinstance(x, str) and len(x) < 10 for x in o)):
            key = f"@@{len(marks)}@@"
            marks[key] = json.dumps(o, separators=(",", ":"))
            return key
        if isinstance(o, list):
            return [mark(x) for x in o]
        return o

    s = json.dumps(mark(obj), indent=1)
    return re.sub(r'"(@@\d+@@)"', lambda m: marks[m.group(1)], s) + "\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calculator", default=DEFAULT_CALC)
    ap.add_argument("--check", action="store_true", help="compare with the committed files, write nothing")
    args = ap.parse_args()
    calc = Calc(os.path.abspath(args.calculator))

    used = scan_templates()
    unknown = sorted(set(used) - set(BUILTINS))
    if unknown:
        sys.exit("amd_layouts: builtins used by templates/ but not mapped in tools/amd_layouts.py BUILTINS "
                 "(add their targets and mnemonics): " + ", ".join(unknown))

    files = {}
    index = {
        "what": "AMD matrix-core register/lane layouts per (target, instruction), from AMD's matrix "
        "instruction calculator; see README.md",
        "generator": "python3 tools/amd_layouts.py",
        "calculator": dict(calc.version(), path="../shared/peers/amd_matrix_instruction_calculator",
                           upstream="https://github.com/ROCm/amd_matrix_instruction_calculator"),
        "builtins": {b: sorted(used[b]) for b in sorted(used)},
        "tables": [],
        "uncovered": [],
    }
    for builtin in sorted(used):
        for target, instr in BUILTINS[builtin].items():
            t = TARGETS[target]
            if t["calc_arch"] is None:
                p = calc.run(["-a", t["probe"], "-L"], ok=False)
                answer = " ".join((p.stdout + p.stderr).split())
                index["uncovered"].append({
                    "builtin": builtin,
                    "arch": target,
                    "instruction": instr,
                    "reason": f"the calculator has no {target} architecture; `{calc.commands[-1]}` answers: {answer}",
                })
                continue
            table = make_table(calc, builtin, target, instr)
            rel = f"{target}/{instr}.json"
            files[rel] = dumps(table)
            index["tables"].append({
                "builtin": builtin,
                "arch": target,
                "instruction": instr,
                "file": rel,
                "wave_size": table["wave_size"],
                "M": table["M"], "N": table["N"], "K": table["K"], "blocks": table["blocks"],
                "commands": table["commands"],
            })
    files["index.json"] = dumps(index)

    if args.check:
        bad = []
        for rel, text in sorted(files.items()):
            p = os.path.join(OUT_DIR, rel)
            if not os.path.isfile(p) or open(p, encoding="utf-8").read() != text:
                bad.append(rel)
        if bad:
            sys.exit("amd_layouts: differs from the committed tables: " + ", ".join(bad))
        print(f"amd_layouts: {len(files)} files match")
        return
    for rel, text in sorted(files.items()):
        p = os.path.join(OUT_DIR, rel)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        with open(p, "w", encoding="utf-8") as f:
            f.write(text)
        print(f"wrote tests/data/amd_layouts/{rel}")


if __name__ == "__main__":
    main()
