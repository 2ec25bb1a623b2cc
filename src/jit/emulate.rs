//! AMD matrix-core layouts for the emulation of AMD targets on NVIDIA GPUs (issue 13; a test and
//! debug mode, see [`crate::gpu::Target::emulate`]).
//!
//! The register/lane layout of every MFMA/WMMA builtin the templates use is read from the tables in
//! tests/data/amd_layouts (output of AMD's matrix instruction calculator, embedded in the binary) and
//! rendered into the emulated instance as the constant tables that `rf_emu_mma` in
//! templates/prelude_emu.h indexes, plus one macro per builtin naming its emulation. The layouts exist
//! once, in those files: [`MmaLayout::emulate`] is the same gather/compute/scatter as the device code,
//! over the same tables, so CPU tests can check it against the calculator's tables directly.

use crate::error::{Error, Result};
use include_dir::{include_dir, Dir};
use serde_json::Value;

static TABLES: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/tests/data/amd_layouts");

/// The register/lane layout of one matrix instruction (one 16-bit-input, f32-accumulator block).
#[derive(Debug, Clone, PartialEq)]
pub struct MmaLayout {
    /// The clang builtin (`__builtin_amdgcn_mfma_f32_16x16x16f16`).
    pub builtin: String,
    /// The arch of the table (gfx950 renders gfx942's tables).
    pub arch: String,
    /// ISA mnemonic (`v_mfma_f32_16x16x16_f16`).
    pub instruction: String,
    /// The table file, relative to tests/data/amd_layouts.
    pub file: String,
    pub wave: usize,
    pub m: usize,
    pub n: usize,
    pub k: usize,
    /// A and B are bf16 (else f16).
    pub bf16: bool,
    /// Vector elements per lane of A, B and C/D.
    pub va: usize,
    pub vb: usize,
    pub vc: usize,
    /// `A[row][k]` (index `row * K + k`) → (lane, vector element) of its first holder.
    pub a_src: Vec<(u8, u8)>,
    /// `B[k][col]` (index `k * N + col`) → (lane, vector element) of its first holder.
    pub b_src: Vec<(u8, u8)>,
    /// C and D: `lane * vc + e` → (row, col).
    pub d_dst: Vec<(u8, u8)>,
}

fn bad(file: &str, msg: impl Into<String>) -> Error {
    Error::Template {
        template: format!("tests/data/amd_layouts/{file}"),
        message: msg.into(),
    }
}

fn json(file: &str) -> Result<Value> {
    let text = TABLES
        .get_file(file)
        .and_then(|f| f.contents_utf8())
        .ok_or_else(|| bad(file, "layout table missing from the build"))?;
    serde_json::from_str(text).map_err(|e| bad(file, e.to_string()))
}

fn num(v: &Value, key: &str, file: &str) -> Result<usize> {
    v[key]
        .as_u64()
        .map(|x| x as usize)
        .ok_or_else(|| bad(file, format!("missing integer `{key}`")))
}

/// The arch whose tables an emulated arch uses: gfx950 (CDNA4) keeps the CDNA3 encodings and
/// layouts of the 16x16x16 f16/bf16 MFMAs (the calculator has no CDNA4; see the tables' README).
pub fn table_arch(arch: &str) -> &str {
    match arch {
        "gfx950" => "gfx942",
        a => a,
    }
}

/// Every layout table for the emulated `arch`, in index order.
pub fn layouts(arch: &str) -> Result<Vec<MmaLayout>> {
    let ix = json("index.json")?;
    let want = table_arch(arch);
    let mut out = Vec::new();
    for t in ix["tables"]
        .as_array()
        .ok_or_else(|| bad("index.json", "no `tables`"))?
    {
        if t["arch"].as_str() != Some(want) {
            continue;
        }
        let file = t["file"]
            .as_str()
            .ok_or_else(|| bad("index.json", "a table without `file`"))?;
        out.push(parse(file)?);
    }
    Ok(out)
}

/// One table file, checked against what `rf_emu_mma` assumes.
pub fn parse(file: &str) -> Result<MmaLayout> {
    let v = json(file)?;
    let s = |k: &str| -> Result<String> {
        v[k].as_str()
            .map(String::from)
            .ok_or_else(|| bad(file, format!("missing string `{k}`")))
    };
    let (wave, m, n, k) = (
        num(&v, "wave_size", file)?,
        num(&v, "M", file)?,
        num(&v, "N", file)?,
        num(&v, "K", file)?,
    );
    if num(&v, "blocks", file)? != 1 || m > 16 || n > 16 || k > 16 || wave > 64 {
        return Err(bad(
            file,
            "only single-block instructions up to 16x16x16 are emulated",
        ));
    }
    let ty = |op: &str| v["operands"][op]["type"].as_str().unwrap_or("").to_string();
    let bf16 = ty("A").starts_with("BF16");
    let f16 = ty("A").starts_with("FP16");
    if !(bf16 || f16) || ty("B") != ty("A") || !ty("C").starts_with("FP32") {
        return Err(bad(
            file,
            format!(
                "operand types {} / {} / {}: only f16 or bf16 inputs with f32 accumulators are emulated",
                ty("A"),
                ty("B"),
                ty("C")
            ),
        ));
    }
    let mat = |name: &str, bits: usize| -> Result<(usize, Vec<[usize; 7]>)> {
        let mm = &v["matrices"][name];
        if num(mm, "element_bits", file)? != bits {
            return Err(bad(file, format!("{name}: expected {bits}-bit elements")));
        }
        let vlen = num(mm, "vector_len", file)?;
        let mut slots = Vec::new();
        for sl in mm["slots"]
            .as_array()
            .ok_or_else(|| bad(file, format!("{name}: no slots")))?
        {
            let a: Vec<usize> = sl
                .as_array()
                .map(|x| {
                    x.iter()
                        .filter_map(|y| y.as_u64())
                        .map(|y| y as usize)
                        .collect()
                })
                .unwrap_or_default();
            let a: [usize; 7] = a
                .try_into()
                .map_err(|_| bad(file, format!("{name}: a slot is not 7 integers")))?;
            // [lane, elem, vgpr, bit_lo, row, col, block]
            let reg_ok = if bits == 16 {
                a[2] == a[1] / 2 && a[3] == 16 * (a[1] % 2)
            } else {
                a[2] == a[1] && a[3] == 0
            };
            if a[0] >= wave || a[1] >= vlen || !reg_ok || a[6] != 0 {
                return Err(bad(
                    file,
                    format!("{name}: slot {a:?} is not packed as the emulation reads it"),
                ));
            }
            slots.push(a);
        }
        Ok((vlen, slots))
    };
    let src = |name: &str, rows: usize, cols: usize| -> Result<(usize, Vec<(u8, u8)>)> {
        let (vlen, slots) = mat(name, 16)?;
        let mut map: Vec<Option<(u8, u8)>> = vec![None; rows * cols];
        for a in &slots {
            if a[4] >= rows || a[5] >= cols {
                return Err(bad(file, format!("{name}: element out of range in {a:?}")));
            }
            let e = &mut map[a[4] * cols + a[5]];
            // the first holder (lowest lane, then element): gfx11 WMMA's lanes 16-31 repeat 0-15
            let cand = (a[0] as u8, a[1] as u8);
            if e.map_or(true, |o| cand < o) {
                *e = Some(cand);
            }
        }
        let map: Option<Vec<(u8, u8)>> = map.into_iter().collect();
        Ok((
            vlen,
            map.ok_or_else(|| bad(file, format!("{name}: an element no lane holds")))?,
        ))
    };
    let (va, a_src) = src("A", m, k)?;
    let (vb, b_src) = src("B", k, n)?;
    let (vc, dslots) = mat("D", 32)?;
    let (_, cslots) = mat("C", 32)?;
    let mut d: Vec<Option<(u8, u8)>> = vec![None; wave * vc];
    for a in &dslots {
        if a[4] >= m || a[5] >= n {
            return Err(bad(file, format!("D: element out of range in {a:?}")));
        }
        d[a[0] * vc + a[1]] = Some((a[4] as u8, a[5] as u8));
    }
    let mut sorted_c = cslots.clone();
    let mut sorted_d = dslots.clone();
    sorted_c.sort();
    sorted_d.sort();
    if sorted_c != sorted_d {
        return Err(bad(file, "C and D layouts differ"));
    }
    let d_dst: Option<Vec<(u8, u8)>> = d.into_iter().collect();
    Ok(MmaLayout {
        builtin: s("builtin")?,
        arch: s("arch")?,
        instruction: s("instruction")?,
        file: file.to_string(),
        wave,
        m,
        n,
        k,
        bf16,
        va,
        vb,
        vc,
        a_src,
        b_src,
        d_dst: d_dst.ok_or_else(|| bad(file, "D: a lane/element holds no element"))?,
    })
}

impl MmaLayout {
    /// Packed `ta`/`tb` entries as the device code reads them: `lane << 8 | element`.
    pub fn packed_src(src: &[(u8, u8)]) -> Vec<u16> {
        src.iter()
            .map(|&(l, e)| ((l as u16) << 8) | e as u16)
            .collect()
    }

    /// Packed `td` entries: `row * N + col`.
    pub fn packed_dst(&self) -> Vec<u8> {
        self.d_dst
            .iter()
            .map(|&(r, c)| r * self.n as u8 + c)
            .collect()
    }

    /// What `rf_emu_mma` computes, on the CPU from the same packed tables: per lane, D's `vc` values
    /// from the lanes' A (`va` each), B (`vb`) and C (`vc`) vectors, inputs already as f32.
    pub fn emulate(&self, a: &[Vec<f32>], b: &[Vec<f32>], c: &[Vec<f32>]) -> Vec<Vec<f32>> {
        let (ta, tb, td) = (
            Self::packed_src(&self.a_src),
            Self::packed_src(&self.b_src),
            self.packed_dst(),
        );
        (0..self.wave)
            .map(|lane| {
                (0..self.vc)
                    .map(|e| {
                        let rc = td[lane * self.vc + e] as usize;
                        let (row, col) = (rc / self.n, rc % self.n);
                        let mut acc = c[lane][e];
                        for k in 0..self.k {
                            let sa = ta[row * self.k + k] as usize;
                            let sb = tb[k * self.n + col] as usize;
                            acc = a[sa >> 8][sa & 255].mul_add(b[sb >> 8][sb & 255], acc);
                        }
                        acc
                    })
                    .collect()
            })
            .collect()
    }

    /// The device tables and the builtin's macro, for prelude_emu.h's `rf_emu_mma`.
    pub fn render(&self, id: usize) -> String {
        let list = |v: Vec<String>| v.join(",");
        let ta = Self::packed_src(&self.a_src);
        let tb = Self::packed_src(&self.b_src);
        let mut s = format!(
            "// {} on {} = {} ({}; {} lanes, {}x{}x{}, {})\n",
            self.builtin,
            self.arch,
            self.instruction,
            self.file,
            self.wave,
            self.m,
            self.n,
            self.k,
            if self.bf16 { "bf16" } else { "f16" }
        );
        s.push_str(&format!(
            "__device__ const unsigned short rf_emu_t{id}_a[{}] = {{{}}};\n",
            ta.len(),
            list(ta.iter().map(|x| x.to_string()).collect())
        ));
        s.push_str(&format!(
            "__device__ const unsigned short rf_emu_t{id}_b[{}] = {{{}}};\n",
            tb.len(),
            list(tb.iter().map(|x| x.to_string()).collect())
        ));
        let td = self.packed_dst();
        s.push_str(&format!(
            "__device__ const unsigned char rf_emu_t{id}_d[{}] = {{{}}};\n",
            td.len(),
            list(td.iter().map(|x| x.to_string()).collect())
        ));
        let targs = format!(
            "{}, {}, {}, {}, {}, {}, {}, {}",
            self.wave, self.m, self.n, self.k, self.va, self.vb, self.vc, self.bf16
        );
        let tabs = format!("rf_emu_t{id}_a, rf_emu_t{id}_b, rf_emu_t{id}_d");
        if self.builtin.contains("_mfma_") {
            // MFMA: (a, b, c, cbsz, abid, blgp)
            s.push_str(&format!(
                "#define {}(a, b, c, cbsz, abid, blgp) rf_emu_mma<{targs}, (cbsz) | (abid) | (blgp)>((a), (b), (c), {tabs})\n",
                self.builtin
            ));
        } else {
            // WMMA f32 <- f16/bf16: (a, b, c)
            s.push_str(&format!(
                "#define {}(a, b, c) rf_emu_mma<{targs}, 0>((a), (b), (c), {tabs})\n",
                self.builtin
            ));
        }
        s
    }
}

/// The matrix-core part of an emulated instance's prelude for `arch` (after prelude_emu.h).
pub fn render_tables(arch: &str) -> Result<String> {
    let mut s = format!(
        "// ---- emulated matrix instructions of {arch} (layouts from tests/data/amd_layouts/{}) ----\n",
        table_arch(arch)
    );
    for (i, l) in layouts(arch)?.iter().enumerate() {
        s.push_str(&l.render(i));
    }
    Ok(s)
}
