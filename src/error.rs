//! One error type for the crate. Every failure names what failed and why; nothing panics.

use std::path::PathBuf;

/// Result alias used across the crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Every error ROCmForge returns.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A vendor library (libcuda, libnvrtc, libamdhip64, libhiprtc) could not be loaded.
    #[error("{what} not found; tried: {}", tried.join(", "))]
    LibraryNotFound { what: String, tried: Vec<String> },

    /// A symbol is missing from a library that did load.
    #[error("symbol `{symbol}` missing from {library}: {reason}")]
    MissingSymbol {
        library: String,
        symbol: String,
        reason: String,
    },

    /// A vendor API call returned an error status.
    #[error("{api} failed: {message} (code {code})")]
    Vendor {
        api: &'static str,
        code: i64,
        message: String,
    },

    /// No usable device.
    #[error("no GPU device: {0}")]
    NoDevice(String),

    /// A kernel failed to compile. Carries the compiler log and the offending source lines.
    #[error("compiling `{uri}` for {target} failed (options: {options})\n--- compiler log ---\n{log}\n--- source near the error ---\n{excerpt}")]
    Compile {
        uri: String,
        target: String,
        options: String,
        log: String,
        excerpt: String,
    },

    /// The loaded compiler does not know this target (refused before compiling).
    #[error("target `{target}` is not supported by {compiler}; supported: {}", supported.join(", "))]
    UnsupportedTarget {
        target: String,
        compiler: String,
        supported: Vec<String>,
    },

    /// A target string could not be understood.
    #[error("unknown target `{0}`: expected gfxNNN[:feature±...] (AMD) or sm_NN (NVIDIA)")]
    BadTarget(String),

    /// An AMD target cannot be emulated as asked (`gfx942@sm_90`, `ROCMFORGE_EMULATE`).
    #[error("cannot emulate `{target}`: {reason}")]
    BadEmulation { target: String, reason: String },

    /// A kernel specification is invalid (unknown template, bad parameter value or combination).
    #[error("invalid kernel spec `{spec}`: {reason}")]
    InvalidSpec { spec: String, reason: String },

    /// A template failed to render.
    #[error("template `{template}`: {message}")]
    Template { template: String, message: String },

    /// Launch configuration or arguments rejected before reaching the driver.
    #[error("launch of `{kernel}` rejected: {reason}")]
    Launch { kernel: String, reason: String },

    /// Host/device size mismatches and similar misuse of buffers.
    #[error("buffer error: {0}")]
    Buffer(String),

    /// The kernel cache (disk store) could not do what was asked.
    #[error("kernel cache: {0}")]
    Cache(String),

    /// A GGUF file is malformed or uses something unsupported.
    #[error("GGUF {path}: {message}")]
    Gguf { path: String, message: String },

    /// Quantization input/format problem.
    #[error("quantization: {0}")]
    Quant(String),

    /// Shapes or arguments of an op are invalid.
    #[error("{op}: {reason}")]
    Op { op: &'static str, reason: String },

    /// A model file does not describe a model this runtime can run (key, tensor, shape or type named).
    #[error("model: {0}")]
    Model(String),

    /// Tokenizer or chat-template problem (vocabulary, template rendering).
    #[error("tokenizer: {0}")]
    Tokenizer(String),

    /// I/O on a named path.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

impl Error {
    /// Wrap an I/O error with the path it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }
    /// Shorthand for [`Error::Op`].
    pub fn op(op: &'static str, reason: impl Into<String>) -> Self {
        Error::Op {
            op,
            reason: reason.into(),
        }
    }
}
