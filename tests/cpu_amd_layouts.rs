//! The AMD matrix-core layout tables in tests/data/amd_layouts/ (made by tools/amd_layouts.py from
//! AMD's matrix instruction calculator; issue 13): each table is a consistent register/lane map of
//! its instruction, and the index has a table (or a stated reason why none) for every MFMA/WMMA (and
//! dot-product) builtin the templates use, on every emulation target that compiles it. No GPU.

use rocmforge::gpu::{MatrixCores, Target};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The AMD targets issue 13 emulates.
const EMULATED: [&str; 5] = ["gfx90a", "gfx942", "gfx950", "gfx1100", "gfx1200"];

/// Builtin families with a register/lane layout, i.e. a table here (matrix cores). The dot products
/// (sdot4, sudot4, …) are lane-local: no layout, their ISA semantics are checked by tests/cpu_emulate.rs
/// (dot4 reference) and tests/gpu_emulate.rs, and prelude_emu.h emulates them.
const FAMILIES: [&str; 4] = ["mfma", "smfmac", "wmma", "swmmac"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn data() -> PathBuf {
    root().join("tests/data/amd_layouts")
}

fn load(p: &Path) -> Value {
    let text = std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

fn index() -> Value {
    load(&data().join("index.json"))
}

fn u(v: &Value, key: &str) -> usize {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("missing integer {key} in {v:.200}")) as usize
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("missing string {key} in {v:.200}"))
}

/// Every `__builtin_amdgcn_<family>...` identifier in templates/ (plain text search, so a builtin
/// added to any template or prelude is seen whatever #if guards it).
fn template_builtins() -> BTreeSet<String> {
    const PREFIX: &str = "__builtin_amdgcn_";
    let mut found = BTreeSet::new();
    let mut entries: Vec<_> = std::fs::read_dir(root().join("templates"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries.into_iter().filter(|p| p.is_file()) {
        let text = std::fs::read_to_string(&p).unwrap();
        let mut rest = text.as_str();
        while let Some(at) = rest.find(PREFIX) {
            let tail = &rest[at + PREFIX.len()..];
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(tail.len());
            let name = &tail[..end];
            if FAMILIES.iter().any(|f| name.starts_with(f)) {
                found.insert(format!("{PREFIX}{name}"));
            }
            rest = &tail[end..];
        }
    }
    found
}

/// The emulation targets whose rendering compiles a builtin, read from its name the way the
/// templates guard it: MFMA under RF_MFMA, WMMA under RF_WMMA with `_gfx12` for RF_GFX >= 0x1200
/// and without it below. Dot products: every emulated target (the templates must say otherwise in
/// the index, with a reason, if that is wrong).
fn targets_of(builtin: &str) -> Vec<&'static str> {
    let name = builtin.trim_start_matches("__builtin_amdgcn_");
    EMULATED
        .into_iter()
        .filter(|arch| {
            let t = Target::named(arch).unwrap();
            let gfx12 = t.gfx_number() >= 0x1200;
            if name.starts_with("mfma") || name.starts_with("smfmac") {
                t.matrix_cores() == MatrixCores::Mfma
            } else if name.starts_with("wmma") || name.starts_with("swmmac") {
                t.matrix_cores() == MatrixCores::Wmma && name.ends_with("_gfx12") == gfx12
            } else {
                true
            }
        })
        .collect()
}

#[test]
fn index_covers_every_builtin_the_templates_use() {
    let used = template_builtins();
    assert!(
        used.len() >= 6,
        "the templates' MFMA/WMMA builtins were not found: {used:?}"
    );
    let ix = index();
    let mut covered: BTreeMap<(String, String), &str> = BTreeMap::new();
    for t in ix["tables"].as_array().unwrap() {
        let prev = covered.insert((s(t, "builtin").into(), s(t, "arch").into()), "table");
        assert!(prev.is_none(), "two index entries for {t}");
    }
    for t in ix["uncovered"].as_array().unwrap() {
        assert!(
            s(t, "reason").len() > 20,
            "an uncovered entry needs its reason: {t}"
        );
        let prev = covered.insert((s(t, "builtin").into(), s(t, "arch").into()), "uncovered");
        assert!(prev.is_none(), "two index entries for {t}");
    }
    let mut missing = Vec::new();
    let mut needed = BTreeSet::new();
    for b in &used {
        let archs = targets_of(b);
        assert!(!archs.is_empty(), "{b}: no emulated target compiles it?");
        for arch in archs {
            needed.insert((b.clone(), arch.to_string()));
            if !covered.contains_key(&(b.clone(), arch.to_string())) {
                missing.push(format!("{b} on {arch}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "builtins used by templates/ without a layout table (run python3 tools/amd_layouts.py, or add an \
         'uncovered' entry with the reason): {missing:#?}"
    );
    let stale: Vec<_> = covered.keys().filter(|k| !needed.contains(*k)).collect();
    assert!(
        stale.is_empty(),
        "index entries for builtins/targets the templates no longer use (regenerate): {stale:?}"
    );
    // The index's list of template builtins is the same set (it is regenerated with the tables).
    let listed: BTreeSet<String> = ix["builtins"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    assert_eq!(
        listed, used,
        "index.json builtins differ from templates/ (regenerate)"
    );
    // Only gfx950 may lack tables: the calculator knows CDNA1-3 and RDNA3-4.
    for t in ix["uncovered"].as_array().unwrap() {
        assert_eq!(s(t, "arch"), "gfx950", "unexpected uncovered entry {t}");
    }
    for arch in ["gfx90a", "gfx942", "gfx1100", "gfx1200"] {
        assert!(
            covered.iter().any(|((_, a), k)| a == arch && *k == "table"),
            "no table at all for {arch}"
        );
    }
}

#[test]
fn index_records_the_calculator_and_commands() {
    let ix = index();
    let c = &ix["calculator"];
    assert!(s(c, "version").contains("Matrix Instruction Calculator Version"));
    assert_eq!(s(c, "matrix_calculator_py_sha256").len(), 64);
    assert!(s(c, "source_commit").len() >= 40);
    for t in ix["tables"].as_array().unwrap() {
        let cmds: Vec<&str> = t["commands"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect();
        let instr = s(t, "instruction");
        assert!(cmds
            .iter()
            .any(|c| c.contains(instr) && c.contains("--detail-instruction")));
        for m in ["A", "B", "C", "D"] {
            for q in ["--matrix-layout", "--register-layout"] {
                assert!(
                    cmds.iter().any(|c| c.contains(&format!(" -{m} {q} --csv"))),
                    "{}: no {q} command for {m}",
                    s(t, "file")
                );
            }
        }
        let table = load(&data().join(s(t, "file")));
        assert_eq!(table["commands"], t["commands"]);
        for k in ["builtin", "arch", "instruction"] {
            assert_eq!(table[k], t[k], "{}: {k}", s(t, "file"));
        }
        for k in ["wave_size", "M", "N", "K", "blocks"] {
            assert_eq!(table[k], t[k], "{}: {k}", s(t, "file"));
        }
    }
}

/// One slot: (lane, elem, vgpr, bit_lo, row, col, block).
type Slot = [usize; 7];

fn slots(m: &Value) -> Vec<Slot> {
    let fields: Vec<&str> = m["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert_eq!(
        fields,
        ["lane", "elem", "vgpr", "bit_lo", "row", "col", "block"]
    );
    m["slots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let r = r.as_array().unwrap();
            assert_eq!(r.len(), 7);
            let mut o = [0usize; 7];
            for (d, v) in o.iter_mut().zip(r) {
                *d = v.as_u64().unwrap() as usize;
            }
            o
        })
        .collect()
}

fn check_table(file: &str, t: &Value) {
    let arch = s(t, "arch");
    let target = Target::named(arch).unwrap();
    let wave = u(t, "wave_size");
    assert_eq!(wave as u32, target.wave_size, "{file}: wave size of {arch}");
    assert_eq!(
        wave,
        if arch.starts_with("gfx9") { 64 } else { 32 },
        "{file}: CDNA is wave64, RDNA wave32"
    );
    if s(t, "builtin").contains("_w32") {
        assert_eq!(wave, 32, "{file}: a _w32 builtin");
    }
    let (mm, nn, kk, blocks) = (u(t, "M"), u(t, "N"), u(t, "K"), u(t, "blocks"));
    assert!(mm > 0 && nn > 0 && kk > 0 && blocks > 0, "{file}: shape");
    let name = s(t, "instruction");
    assert!(
        name.contains(&format!("{mm}x{nn}x{kk}")),
        "{file}: M/N/K {mm}x{nn}x{kk} not in the mnemonic {name}"
    );
    let mut layouts = BTreeMap::new();
    for (mat, rd, cd) in [
        ("A", "M", "K"),
        ("B", "K", "N"),
        ("C", "M", "N"),
        ("D", "M", "N"),
    ] {
        let m = &t["matrices"][mat];
        let ctx = format!("{file} {mat}");
        let (rows, cols) = (u(m, "rows"), u(m, "cols"));
        assert_eq!((s(m, "row_dim"), s(m, "col_dim")), (rd, cd), "{ctx}");
        assert_eq!((rows, cols), (u(t, rd), u(t, cd)), "{ctx}: shape vs M/N/K");
        let bits = u(m, "element_bits");
        assert!(bits == 16 || bits == 32, "{ctx}: element bits {bits}");
        let gprs = u(m, "gprs");
        assert_eq!(gprs, u(&t["operands"][mat], "gprs"), "{ctx}: gprs");
        let per_lane = gprs * 32 / bits;
        assert_eq!(u(m, "vector_len"), per_lane, "{ctx}: vector length");
        let copies = u(m, "copies");
        let sl = slots(m);
        // Register side: every (lane, vgpr, bits) slot of the operand holds exactly one element.
        assert_eq!(sl.len(), per_lane * wave, "{ctx}: slot count");
        let mut by_slot = BTreeSet::new();
        for &[lane, elem, vgpr, lo, row, col, block] in &sl {
            assert!(lane < wave, "{ctx}: lane {lane} >= wave {wave}");
            assert!(vgpr < gprs, "{ctx}: vgpr {vgpr} >= {gprs}");
            assert!(lo + bits <= 32 && lo % bits == 0, "{ctx}: bits {lo}+{bits}");
            assert_eq!(elem, (vgpr * 32 + lo) / bits, "{ctx}: vector element index");
            assert!(
                row < rows && col < cols && block < blocks,
                "{ctx}: element out of shape"
            );
            assert!(
                by_slot.insert((lane, elem)),
                "{ctx}: slot lane {lane} elem {elem} twice"
            );
        }
        // Matrix side: every element of every block is held, each exactly `copies` times; copies
        // > 1 (RDNA3's replicated A/B) means lane groups of wave/copies hold the same elements in
        // the same registers.
        assert!(copies >= 1 && wave % copies == 0, "{ctx}: copies {copies}");
        assert_eq!(
            sl.len(),
            rows * cols * blocks * copies,
            "{ctx}: elements x copies"
        );
        let mut holders: BTreeMap<(usize, usize, usize), Vec<(usize, usize)>> = BTreeMap::new();
        for &[lane, elem, _, _, row, col, block] in &sl {
            holders
                .entry((row, col, block))
                .or_default()
                .push((lane, elem));
        }
        assert_eq!(
            holders.len(),
            rows * cols * blocks,
            "{ctx}: elements not covered"
        );
        let group = wave / copies;
        for (e, h) in &holders {
            assert_eq!(
                h.len(),
                copies,
                "{ctx}: element {e:?} held {} times",
                h.len()
            );
            let (l0, e0) = h[0];
            for (i, &(l, el)) in h.iter().enumerate() {
                assert_eq!(
                    (l, el),
                    (l0 % group + i * group, e0),
                    "{ctx}: copies of {e:?}"
                );
            }
        }
        if copies > 1 {
            assert!(
                arch.starts_with("gfx11") && (mat == "A" || mat == "B"),
                "{ctx}: unexpected replication"
            );
        }
        layouts.insert(mat, sl);
    }
    // The accumulator is updated in place: C and D share their layout.
    assert_eq!(layouts["C"], layouts["D"], "{file}: C and D layouts differ");
}

#[test]
fn every_table_is_a_bijection_of_elements_and_register_slots() {
    let ix = index();
    let tables = ix["tables"].as_array().unwrap();
    assert!(!tables.is_empty());
    let mut on_disk = BTreeSet::new();
    for d in std::fs::read_dir(data()).unwrap() {
        let d = d.unwrap().path();
        if d.is_dir() {
            for f in std::fs::read_dir(&d).unwrap() {
                let f = f.unwrap().path();
                let rel = f
                    .strip_prefix(data())
                    .unwrap()
                    .to_string_lossy()
                    .replace('\\', "/");
                on_disk.insert(rel);
            }
        }
    }
    let listed: BTreeSet<String> = tables.iter().map(|t| s(t, "file").to_string()).collect();
    assert_eq!(on_disk, listed, "table files on disk vs index.json");
    for e in tables {
        let file = s(e, "file");
        check_table(file, &load(&data().join(file)));
    }
}

/// Spot checks against the closed-form mappings the calculator prints with --detail-instruction
/// (kept in each table's `detail`), a separate path from the CSV layouts the slots were parsed
/// from: catches a parser that transposes or mislabels.
#[test]
fn known_layout_points() {
    let find = |file: &str, mat: &str, lane: usize, elem: usize| -> (usize, usize) {
        let t = load(&data().join(file));
        let sl = slots(&t["matrices"][mat]);
        let s = sl
            .iter()
            .find(|s| s[0] == lane && s[1] == elem)
            .unwrap_or_else(|| panic!("{file} {mat}: no lane {lane} elem {elem}"));
        (s[4], s[5])
    };
    // v_mfma_f32_16x16x16_f16: A[i][k] at lane 16*(k/4)+i, element k%4; D[i][j] at lane
    // 16*(i/4)+j, element i%4.
    let f = "gfx942/v_mfma_f32_16x16x16_f16.json";
    assert_eq!(find(f, "A", 17, 2), (1, 6));
    assert_eq!(find(f, "B", 35, 1), (9, 3));
    assert_eq!(find(f, "D", 50, 3), (15, 2));
    // gfx11 WMMA wave32: A row lane%16, all 16 k in order; D row 2*elem + lane/16.
    let f = "gfx1100/v_wmma_f32_16x16x16_f16.json";
    assert_eq!(find(f, "A", 20, 11), (4, 11));
    assert_eq!(find(f, "D", 20, 3), (7, 4));
    // gfx12 WMMA wave32: D row 8*(lane/16) + elem.
    let f = "gfx1200/v_wmma_f32_16x16x16_f16.json";
    assert_eq!(find(f, "D", 17, 5), (13, 1));
}
