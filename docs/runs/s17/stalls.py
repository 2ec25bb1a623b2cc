# Stall samples and executed instructions by opcode, from `ncu --page source --print-source sass --csv` exports.
import csv, sys, collections
for f in sys.argv[1:]:
    rows = list(csv.reader(open(f)))
    # find header row
    hi = next(i for i, r in enumerate(rows) if "Address" in r and "Source" in r)
    h = rows[hi]; data = rows[hi+1:]
    cols = [c for c in h if c.startswith("stall_") and "Not Issued" not in c]
    tot = collections.Counter(); ops = collections.Counter(); opstall = collections.defaultdict(collections.Counter)
    ninst = collections.Counter()
    for r in data:
        if len(r) < len(h): continue
        d = dict(zip(h, r))
        src = d["Source"].strip().split()
        op = src[0] if src else "?"
        if op.startswith("@"): op = src[1] if len(src) > 1 else op
        op = op.split(".")[0]
        try: ex = int(d["Instructions Executed"] or 0)
        except: ex = 0
        ninst[op] += ex
        for c in cols:
            try: v = int(d[c] or 0)
            except: v = 0
            tot[c] += v; opstall[op][c] += v
    s = sum(tot.values())
    print("==", f, "samples", s)
    for c, v in tot.most_common(10): print(f"  {c:28s} {v:8d} {100*v/s:5.1f}%")
    print("  instructions by op (executed, warp-level):")
    for op, v in ninst.most_common(14): 
        st = opstall[op]; top = ", ".join(f"{k[6:]} {x}" for k, x in st.most_common(3))
        print(f"    {op:10s} {v:10d}  stalls: {top}")
