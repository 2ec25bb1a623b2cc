//! Finding and opening vendor libraries at run time, and declaring their symbol tables.
//!
//! Candidates are tried in order; when none opens, the error names every one that was tried and why
//! the last failed, so a user can see what to install or which variable to set.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};

/// Declares a struct holding a loaded library and the C functions we use from it. Each field is
/// named after the C symbol. Loading fails with [`Error::MissingSymbol`] naming the symbol.
macro_rules! dyn_api {
    ($(#[$m:meta])* $name:ident { $( fn $f:ident ( $($t:ty),* ) -> $r:ty ; )* }) => {
        $(#[$m])*
        #[allow(non_snake_case)]
        pub struct $name {
            /// Where the library was loaded from.
            pub path: String,
            $( pub $f: unsafe extern "C" fn($($t),*) -> $r, )*
            _lib: libloading::Library,
        }
        impl $name {
            #[allow(non_snake_case)]
            pub(crate) fn from_library(lib: libloading::Library, path: String) -> $crate::error::Result<Self> {
                $(
                    // SAFETY: the signature is the one the vendor header declares for this symbol.
                    let $f = unsafe {
                        *lib.get::<unsafe extern "C" fn($($t),*) -> $r>(concat!(stringify!($f), "\0").as_bytes())
                            .map_err(|e| $crate::error::Error::MissingSymbol {
                                library: path.clone(), symbol: stringify!($f).into(), reason: e.to_string() })?
                    };
                )*
                Ok(Self { path, $($f,)* _lib: lib })
            }
        }
    };
}
pub(crate) use dyn_api;

/// Open the first library of `candidates` that loads. `what` names the library in the error.
pub fn open_first(what: &str, candidates: &[String]) -> Result<(libloading::Library, String)> {
    let mut tried = Vec::new();
    for c in candidates {
        if c.contains('/') && !Path::new(c).exists() {
            tried.push(format!("{c} (absent)"));
            continue;
        }
        // SAFETY: loading a vendor runtime runs its initialisers; these are the vendor's own libraries.
        match unsafe { libloading::Library::new(c) } {
            Ok(lib) => return Ok((lib, c.clone())),
            Err(e) => tried.push(format!("{c} ({})", short(&e.to_string()))),
        }
    }
    Err(Error::LibraryNotFound {
        what: what.into(),
        tried,
    })
}

fn short(s: &str) -> String {
    let s = s.rsplit(": ").next().unwrap_or(s);
    s.chars().take(80).collect()
}

/// Directories named by an environment variable (a single root such as `ROCM_PATH`), with `sub` appended.
pub fn env_dir(var: &str, sub: &str) -> Option<PathBuf> {
    std::env::var_os(var)
        .filter(|v| !v.is_empty())
        .map(|v| PathBuf::from(v).join(sub))
}

/// Python site-packages directories that may hold pip's `nvidia/*` wheels, found without running Python.
pub fn python_site_dirs() -> Vec<PathBuf> {
    let mut roots: Vec<PathBuf> = Vec::new();
    if let Some(v) = std::env::var_os("VIRTUAL_ENV") {
        roots.push(PathBuf::from(v).join("lib"));
    }
    if let Some(h) = dirs::home_dir() {
        roots.push(h.join(".local/lib"));
        if let Ok(rd) = std::fs::read_dir(h.join(".pyenv/versions")) {
            roots.extend(rd.flatten().map(|e| e.path().join("lib")));
        }
    }
    roots.extend(["/usr/local/lib", "/usr/lib", "/opt/conda/lib"].map(PathBuf::from));
    // the device machines keep their Python in a virtual environment under /opt
    if let Ok(rd) = std::fs::read_dir("/opt") {
        roots.extend(rd.flatten().map(|e| e.path().join(".venv/lib")));
    }
    let mut out = Vec::new();
    for r in roots {
        let Ok(rd) = std::fs::read_dir(&r) else {
            continue;
        };
        for e in rd.flatten() {
            let n = e.file_name();
            if n.to_string_lossy().starts_with("python3") {
                for sp in ["site-packages", "dist-packages"] {
                    let p = e.path().join(sp);
                    if p.is_dir() {
                        out.push(p);
                    }
                }
            }
        }
    }
    out
}

/// Read a NUL-terminated C string owned by a vendor library.
pub(crate) fn cstr(p: *const std::os::raw::c_char) -> String {
    if p.is_null() {
        return "(no message)".into();
    }
    // SAFETY: vendor libraries return static NUL-terminated strings for error names.
    unsafe { std::ffi::CStr::from_ptr(p) }
        .to_string_lossy()
        .into_owned()
}
