//! What a code object declares about its kernels, read without a GPU: registers, shared memory (LDS),
//! scratch/local memory and spills. AMD: the `NT_AMDGPU_METADATA` note (msgpack) of the HSA code
//! object. NVIDIA: the `.nv.info` attributes and `.nv.shared.*` sections of the cubin.

use crate::error::{Error, Result};
use object::{Object, ObjectSection, ObjectSymbol};
use serde::Serialize;

/// Resources one kernel declares.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct KernelResources {
    pub name: String,
    /// Vector registers (AMD VGPRs, NVIDIA registers per thread).
    pub vgprs: u32,
    /// AMD scalar registers (0 on NVIDIA).
    pub sgprs: u32,
    /// AMD accumulation registers (CDNA; 0 elsewhere).
    pub agprs: u32,
    /// Static shared memory / LDS bytes.
    pub shared_bytes: u32,
    /// Scratch (AMD private segment) / local memory (NVIDIA frame) bytes per thread.
    pub scratch_bytes: u32,
    pub vgpr_spills: u32,
    pub sgpr_spills: u32,
    pub wave_size: u32,
    pub max_threads: u32,
}

impl KernelResources {
    /// True when the kernel spills registers or uses scratch/local memory.
    pub fn spills(&self) -> bool {
        self.vgpr_spills > 0 || self.sgpr_spills > 0 || self.scratch_bytes > 0
    }
}

const BUNDLE_MAGIC: &[u8] = b"__CLANG_OFFLOAD_BUNDLE__";

fn bad(msg: impl Into<String>) -> Error {
    Error::Cache(format!("code object: {}", msg.into()))
}

/// The amdgcn ELF inside a clang offload bundle, or the image itself when it is already an ELF.
pub fn amdgcn_elf(image: &[u8]) -> Result<&[u8]> {
    if !image.starts_with(BUNDLE_MAGIC) {
        return Ok(image);
    }
    let rd = |o: usize| -> Result<u64> {
        image
            .get(o..o + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
            .ok_or_else(|| bad("truncated offload bundle"))
    };
    let n = rd(24)?;
    let mut pos = 32usize;
    for _ in 0..n.min(64) {
        let (off, size, idlen) = (
            rd(pos)? as usize,
            rd(pos + 8)? as usize,
            rd(pos + 16)? as usize,
        );
        let id = image
            .get(pos + 24..pos + 24 + idlen)
            .ok_or_else(|| bad("truncated bundle id"))?;
        pos += 24 + idlen;
        if id.windows(6).any(|w| w == b"amdgcn") && size > 0 {
            return image
                .get(off..off.saturating_add(size))
                .ok_or_else(|| bad("bundle entry out of range"));
        }
    }
    Err(bad("no amdgcn entry in offload bundle"))
}

/// Resources of every kernel in an AMD code object.
pub fn amd_resources(image: &[u8]) -> Result<Vec<KernelResources>> {
    let elf = amdgcn_elf(image)?;
    let file = object::File::parse(elf).map_err(|e| bad(e.to_string()))?;
    for sec in file.sections() {
        if sec.kind() != object::SectionKind::Note && !sec.name().unwrap_or("").starts_with(".note")
        {
            continue;
        }
        let data = sec.data().map_err(|e| bad(e.to_string()))?;
        if let Some(desc) = find_note(data, b"AMDGPU", 32) {
            return parse_amd_metadata(desc);
        }
    }
    Err(bad("no NT_AMDGPU_METADATA note"))
}

/// Walk ELF notes (4-byte aligned name and descriptor) for one owner and type.
fn find_note<'a>(mut d: &'a [u8], owner: &[u8], ty: u32) -> Option<&'a [u8]> {
    let u = |b: &[u8], o: usize| {
        b.get(o..o + 4)
            .map(|x| u32::from_le_bytes([x[0], x[1], x[2], x[3]]) as usize)
    };
    while d.len() >= 12 {
        let (namesz, descsz, t) = (u(d, 0)?, u(d, 4)?, u(d, 8)?);
        let name_end = 12 + namesz.div_ceil(4) * 4;
        let desc = d.get(name_end..name_end.checked_add(descsz)?)?;
        let name = d.get(12..12 + namesz)?;
        if t == ty as usize && name.strip_suffix(&[0]).unwrap_or(name) == owner {
            return Some(desc);
        }
        d = d.get(name_end + descsz.div_ceil(4) * 4..)?;
    }
    None
}

fn parse_amd_metadata(desc: &[u8]) -> Result<Vec<KernelResources>> {
    let v = rmpv::decode::read_value(&mut &desc[..])
        .map_err(|e| bad(format!("metadata msgpack: {e}")))?;
    let get = |m: &rmpv::Value, k: &str| -> Option<rmpv::Value> {
        m.as_map()?
            .iter()
            .find(|(key, _)| key.as_str() == Some(k))
            .map(|(_, v)| v.clone())
    };
    let kernels = get(&v, "amdhsa.kernels")
        .and_then(|k| k.as_array().cloned())
        .ok_or_else(|| bad("metadata has no amdhsa.kernels"))?;
    Ok(kernels
        .iter()
        .map(|k| {
            let n = |key: &str| get(k, key).and_then(|x| x.as_u64()).unwrap_or(0) as u32;
            KernelResources {
                name: get(k, ".name")
                    .and_then(|x| x.as_str().map(String::from))
                    .unwrap_or_default(),
                vgprs: n(".vgpr_count"),
                sgprs: n(".sgpr_count"),
                agprs: n(".agpr_count"),
                shared_bytes: n(".group_segment_fixed_size"),
                scratch_bytes: n(".private_segment_fixed_size"),
                vgpr_spills: n(".vgpr_spill_count"),
                sgpr_spills: n(".sgpr_spill_count"),
                wave_size: n(".wavefront_size"),
                max_threads: n(".max_flat_workgroup_size"),
            }
        })
        .collect())
}

// EIATTR codes of the cubin `.nv.info` sections (as cuobjdump -elf names them).
const EIATTR_FRAME_SIZE: u8 = 0x11;
const EIATTR_MAX_THREADS: u8 = 0x05;
const EIATTR_REGCOUNT: u8 = 0x2f;
const EIFMT_SVAL: u8 = 0x04;
const EIFMT_HVAL: u8 = 0x03;
const EIFMT_BVAL: u8 = 0x02;

/// Resources of every kernel in an NVIDIA cubin.
pub fn cubin_resources(image: &[u8]) -> Result<Vec<KernelResources>> {
    let file = object::File::parse(image).map_err(|e| bad(e.to_string()))?;
    let syms: Vec<(usize, String)> = file
        .symbols()
        .map(|s| (s.index().0, s.name().unwrap_or("").to_string()))
        .collect();
    let sym_name = |i: u32| {
        syms.iter()
            .find(|(j, _)| *j == i as usize)
            .map(|(_, n)| n.clone())
    };
    let mut out: Vec<KernelResources> = Vec::new();
    for sec in file.sections() {
        let name = sec.name().unwrap_or("");
        if let Some(k) = name.strip_prefix(".text.") {
            out.push(KernelResources {
                name: k.to_string(),
                wave_size: 32,
                ..Default::default()
            });
        }
    }
    let find = |out: &mut Vec<KernelResources>, n: &str| -> Option<usize> {
        out.iter().position(|k| k.name == n)
    };
    for sec in file.sections() {
        let name = sec.name().unwrap_or("").to_string();
        let data = sec.data().map_err(|e| bad(e.to_string()))?;
        if let Some(k) = name.strip_prefix(".nv.shared.") {
            if let Some(i) = find(&mut out, k) {
                out[i].shared_bytes = sec.size() as u32;
            }
            continue;
        }
        if !name.starts_with(".nv.info") {
            continue;
        }
        let own = name.strip_prefix(".nv.info.").map(String::from);
        let mut p = 0usize;
        while p + 2 <= data.len() {
            let (fmt, attr) = (data[p], data[p + 1]);
            p += 2;
            let payload: &[u8] = match fmt {
                EIFMT_SVAL => {
                    let Some(sz) = data
                        .get(p..p + 2)
                        .map(|b| u16::from_le_bytes([b[0], b[1]]) as usize)
                    else {
                        break;
                    };
                    let Some(pl) = data.get(p + 2..p + 2 + sz) else {
                        break;
                    };
                    p += 2 + sz;
                    pl
                }
                EIFMT_HVAL => {
                    let Some(pl) = data.get(p..p + 2) else { break };
                    p += 2;
                    pl
                }
                EIFMT_BVAL => {
                    p += 1;
                    &[]
                }
                _ => &[],
            };
            let u32at = |o: usize| {
                payload
                    .get(o..o + 4)
                    .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            };
            let target = |out: &mut Vec<KernelResources>| -> Option<usize> {
                match &own {
                    Some(k) if attr != EIATTR_REGCOUNT && attr != EIATTR_FRAME_SIZE => find(out, k),
                    _ => u32at(0).and_then(sym_name).and_then(|n| find(out, &n)),
                }
            };
            match attr {
                EIATTR_REGCOUNT => {
                    if let (Some(i), Some(v)) = (target(&mut out), u32at(4)) {
                        out[i].vgprs = v;
                    }
                }
                EIATTR_FRAME_SIZE => {
                    if let (Some(i), Some(v)) = (target(&mut out), u32at(4)) {
                        out[i].scratch_bytes = v;
                    }
                }
                EIATTR_MAX_THREADS => {
                    if let (Some(i), Some(x)) = (target(&mut out), u32at(0)) {
                        out[i].max_threads =
                            x * u32at(4).unwrap_or(1).max(1) * u32at(8).unwrap_or(1).max(1);
                    }
                }
                _ => {}
            }
        }
    }
    Ok(out)
}

/// Resources of the kernels in a code object of either vendor (told apart by content).
pub fn resources(image: &[u8]) -> Result<Vec<KernelResources>> {
    if image.starts_with(BUNDLE_MAGIC) {
        return amd_resources(image);
    }
    let file = object::File::parse(image).map_err(|e| bad(e.to_string()))?;
    // e_machine: EM_AMDGPU = 224, EM_CUDA = 190
    match file.architecture() {
        object::Architecture::Unknown if image.get(18) == Some(&190) => cubin_resources(image),
        _ if image.get(18) == Some(&224) => amd_resources(image),
        _ if image.get(18) == Some(&190) => cubin_resources(image),
        a => Err(bad(format!(
            "not an AMD code object or cubin (machine {a:?})"
        ))),
    }
}
