//! Rendering a spec into kernel source.
//!
//! Templates declare, kernels compute: the kernel bodies under `templates/` are ordinary HIP C++
//! templates, included verbatim; tera renders only the small `*.inst` file that instantiates one of them
//! as an `extern "C"` kernel. A per-vendor prelude maps the few differences between hipRTC and NVRTC.
//! Templates are embedded in the binary; `ROCMFORGE_TEMPLATE_DIR` overrides any of them by file name.

use super::spec::KernelSpec;
use crate::error::{Error, Result};
use crate::gpu::{MatrixCores, Target, Vendor};
use include_dir::{include_dir, Dir};

static EMBEDDED: Dir<'static> = include_dir!("$CARGO_MANIFEST_DIR/templates");

/// The text of a template: from `ROCMFORGE_TEMPLATE_DIR` when it has the file, else embedded.
pub fn template_text(name: &str) -> Result<String> {
    if let Some(dir) = std::env::var_os("ROCMFORGE_TEMPLATE_DIR").filter(|d| !d.is_empty()) {
        let p = std::path::Path::new(&dir).join(name);
        if p.exists() {
            return std::fs::read_to_string(&p).map_err(|e| Error::io(p, e));
        }
    }
    EMBEDDED
        .get_file(name)
        .and_then(|f| f.contents_utf8())
        .map(String::from)
        .ok_or_else(|| Error::Template {
            template: name.into(),
            message: "no such template (embedded or in ROCMFORGE_TEMPLATE_DIR)".into(),
        })
}

/// Names of all embedded templates.
pub fn embedded_names() -> Vec<String> {
    EMBEDDED
        .files()
        .map(|f| f.path().to_string_lossy().into_owned())
        .collect()
}

/// Render the complete source for `spec` on `target`.
pub fn render(spec: &KernelSpec, target: &Target) -> Result<String> {
    let mut src = format!(
        "// rocmforge kernel {} for {}\n",
        spec.uri(),
        target.full_name()
    );
    src.push_str(&render_common(spec, target)?);
    src.push_str(&render_instance(spec)?);
    Ok(src)
}

/// One translation unit holding several instances of one family that share their preamble (see
/// `Jit::compile_many`): the common part once, then every instantiation.
pub fn render_group(specs: &[&KernelSpec], target: &Target) -> Result<String> {
    let first = specs.first().ok_or_else(|| Error::Template {
        template: "(group)".into(),
        message: "empty group".into(),
    })?;
    let mut src = format!(
        "// rocmforge kernel group of {} {} instances for {}\n",
        specs.len(),
        first.family().name,
        target.full_name()
    );
    src.push_str(&render_common(first, target)?);
    for s in specs {
        src.push_str(&render_instance(s)?);
    }
    Ok(src)
}

/// Everything before the instantiation: configuration defines, preludes, preamble and body.
fn render_common(spec: &KernelSpec, target: &Target) -> Result<String> {
    let fam = spec.family();
    let mut src = String::with_capacity(16 * 1024);
    src.push_str(&format!("#define RF_WAVE {}\n", spec.wave()));
    let mc = match target.matrix_cores() {
        MatrixCores::MmaSync => "RF_MMA_SYNC",
        MatrixCores::Mfma => "RF_MFMA",
        MatrixCores::Wmma => "RF_WMMA",
        MatrixCores::None => "RF_NO_MATRIX_CORES",
    };
    src.push_str(&format!("#define {mc} 1\n"));
    match target.vendor {
        Vendor::Nvidia => src.push_str(&format!("#define RF_SM {}\n", target.sm_version())),
        Vendor::Amd => src.push_str(&format!("#define RF_GFX 0x{:x}\n", target.gfx_number())),
    }
    if target.is_emulated() {
        // The AMD instance as is, on the NVIDIA prelude plus the emulation of AMD's lane semantics
        // and matrix-core builtins (a test/debug mode; templates/prelude_emu.h).
        src.push_str("#define RF_EMULATE 1\n");
        src.push_str(&template_text("prelude_cuda.h")?);
        src.push_str(&template_text("prelude_emu.h")?);
        src.push_str(&super::emulate::render_tables(&target.arch)?);
    } else {
        let prelude = match target.vendor {
            Vendor::Nvidia => "prelude_cuda.h",
            Vendor::Amd => "prelude_hip.h",
        };
        src.push_str(&template_text(prelude)?);
    }
    src.push_str(&template_text("prelude_common.h")?);
    src.push_str(&(fam.preamble)(spec));
    src.push_str(&format!("\n// ---- {} ----\n", fam.body));
    src.push_str(&template_text(fam.body)?);
    Ok(src)
}

/// The tera-rendered `extern "C"` instantiation of one spec.
fn render_instance(spec: &KernelSpec) -> Result<String> {
    let fam = spec.family();
    let mut ctx = tera::Context::new();
    ctx.insert("symbol", &spec.symbol());
    ctx.insert("wave", &spec.wave());
    ctx.insert("uri", spec.uri());
    for (k, v) in spec.params() {
        match v {
            super::spec::Value::Int(x) => ctx.insert(k, x),
            super::spec::Value::Str(s) => {
                ctx.insert(k, s);
                if let Some(c) = c_type(s) {
                    ctx.insert(format!("{k}_c"), c);
                }
            }
            super::spec::Value::Bool(b) => ctx.insert(k, b),
        }
    }
    let inst = template_text(fam.instance)?;
    let rendered = tera::Tera::one_off(&inst, &ctx, false).map_err(|e| {
        let mut msg = e.to_string();
        let mut s = std::error::Error::source(&e);
        while let Some(c) = s {
            msg.push_str(&format!(": {c}"));
            s = c.source();
        }
        Error::Template {
            template: fam.instance.into(),
            message: msg,
        }
    })?;
    Ok(format!(
        "\n// ---- {} ({}) ----\n{}\n",
        fam.instance,
        spec.uri(),
        rendered
    ))
}

/// The C type of a dtype name (`f32` → `float`), for `<param>_c` variables in instance templates.
pub fn c_type(dtype: &str) -> Option<&'static str> {
    Some(match dtype {
        "f32" => "float",
        "f16" => "rf_half",
        "bf16" => "rf_bf16",
        _ => return None,
    })
}

/// Lines around those a compiler log names (`file(LINE)` / `file:LINE:`), numbered, for error reports.
pub fn excerpt(source: &str, log: &str) -> String {
    let lines: Vec<&str> = source.lines().collect();
    let mut wanted: Vec<usize> = Vec::new();
    for l in log.lines() {
        // NVRTC: `name(123): error ...`; hipRTC/clang: `name:123:45: error: ...`
        let num = l
            .split_once('(')
            .and_then(|(_, r)| r.split_once(')'))
            .and_then(|(n, _)| n.parse::<usize>().ok())
            .or_else(|| {
                let mut it = l.split(':');
                it.next();
                it.next().and_then(|n| n.trim().parse::<usize>().ok())
            });
        if let Some(n) = num {
            if l.contains("error") && n >= 1 && n <= lines.len() && !wanted.contains(&n) {
                wanted.push(n);
            }
        }
    }
    let mut out = String::new();
    for n in wanted.iter().take(5) {
        for i in n.saturating_sub(3).max(1)..=(*n + 2).min(lines.len()) {
            out.push_str(&format!(
                "{}{:5} | {}\n",
                if i == *n { ">" } else { " " },
                i,
                lines[i - 1]
            ));
        }
        out.push_str("      ...\n");
    }
    if out.is_empty() {
        out.push_str("(the log names no line of the rendered source)\n");
    }
    out
}
