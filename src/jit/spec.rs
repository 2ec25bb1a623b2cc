//! `KernelSpec`: the name of everything. A family (template) plus typed parameter values plus the wave
//! size. Its `Display` is a stable URI (`smoke_reduce.f32.b256.w32`) used as the kernel symbol (dots
//! made underscores), the cache path component and the bench label. Invalid values and combinations
//! are rejected here, before anything is rendered or compiled, with the supported values listed.

use crate::error::{Error, Result};
use crate::gpu::Target;
use std::fmt;

/// A parameter value.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Value {
    Int(i64),
    Str(String),
    Bool(bool),
}

impl Value {
    pub fn as_int(&self) -> Option<i64> {
        if let Value::Int(v) = self {
            Some(*v)
        } else {
            None
        }
    }
    pub fn as_str(&self) -> Option<&str> {
        if let Value::Str(v) = self {
            Some(v)
        } else {
            None
        }
    }
    pub fn as_bool(&self) -> Option<bool> {
        if let Value::Bool(v) = self {
            Some(*v)
        } else {
            None
        }
    }
}

impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Int(v)
    }
}
impl From<i32> for Value {
    fn from(v: i32) -> Self {
        Value::Int(v as i64)
    }
}
impl From<usize> for Value {
    fn from(v: usize) -> Self {
        Value::Int(v as i64)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Str(v.to_string())
    }
}
impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Bool(v)
    }
}

/// The kind and allowed values of one parameter.
#[derive(Debug, Clone, Copy)]
pub enum ParamKind {
    /// Integer from a list; shown in the URI as `prefix` + value (`hd128`).
    Int {
        prefix: &'static str,
        values: &'static [i64],
    },
    /// One of a list of names, shown as the name (`bf16`).
    Choice { values: &'static [&'static str] },
    /// On/off, shown as one of two words (`causal` / `full`).
    Flag { on: &'static str, off: &'static str },
}

/// One parameter of a kernel family.
#[derive(Debug, Clone, Copy)]
pub struct ParamDef {
    pub name: &'static str,
    pub kind: ParamKind,
    pub doc: &'static str,
}

impl ParamDef {
    fn supported(&self) -> String {
        match self.kind {
            ParamKind::Int { values, .. } => values
                .iter()
                .map(|v| v.to_string())
                .collect::<Vec<_>>()
                .join(", "),
            ParamKind::Choice { values } => values.join(", "),
            ParamKind::Flag { .. } => "true, false".into(),
        }
    }
    fn accepts(&self, v: &Value) -> bool {
        match (self.kind, v) {
            (ParamKind::Int { values, .. }, Value::Int(x)) => values.contains(x),
            (ParamKind::Choice { values }, Value::Str(s)) => values.contains(&s.as_str()),
            (ParamKind::Flag { .. }, Value::Bool(_)) => true,
            _ => false,
        }
    }
    /// Parse a command-line value (`128`, `bf16`, `true`).
    pub fn parse(&self, s: &str) -> Option<Value> {
        match self.kind {
            ParamKind::Int { .. } => s.parse().ok().map(Value::Int),
            ParamKind::Choice { .. } => Some(Value::Str(s.to_string())),
            ParamKind::Flag { on, off } => match s {
                "true" | "1" | "yes" => Some(Value::Bool(true)),
                "false" | "0" | "no" => Some(Value::Bool(false)),
                x if x == on => Some(Value::Bool(true)),
                x if x == off => Some(Value::Bool(false)),
                _ => None,
            },
        }
    }
    fn uri_part(&self, v: &Value) -> String {
        match (self.kind, v) {
            (ParamKind::Int { prefix, .. }, Value::Int(x)) => format!("{prefix}{x}"),
            (ParamKind::Flag { on, off }, Value::Bool(b)) => {
                (if *b { on } else { off }).to_string()
            }
            (_, Value::Str(s)) => s.clone(),
            (_, Value::Int(x)) => x.to_string(),
            (_, Value::Bool(b)) => b.to_string(),
        }
    }
}

/// A kernel family: one template body, its parameter space and its rules.
pub struct Family {
    /// Family name, the first URI component.
    pub name: &'static str,
    /// One line saying what it computes.
    pub doc: &'static str,
    /// Template file holding the kernel body (plain HIP C++, included verbatim).
    pub body: &'static str,
    /// Template file (tera) that renders the `extern "C"` instantiation.
    pub instance: &'static str,
    pub params: &'static [ParamDef],
    /// Rules across parameters (and the wave size); `Err(reason)` when a combination is invalid.
    pub validate: fn(&KernelSpec) -> std::result::Result<(), String>,
    /// Whether this instance is meant for `target` (e.g. MFMA paths only on CDNA). `--all` skips others.
    pub applies: fn(&KernelSpec, &Target) -> bool,
    /// Extra source the family needs before its body (e.g. quant block structs); may use the spec.
    pub preamble: fn(&KernelSpec) -> String,
}

impl fmt::Debug for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Family({})", self.name)
    }
}

/// Validation helpers for families without cross-parameter rules.
pub fn no_rules(_: &KernelSpec) -> std::result::Result<(), String> {
    Ok(())
}
/// Every instance applies to every target.
pub fn any_target(_: &KernelSpec, _: &Target) -> bool {
    true
}
/// No extra source.
pub fn no_preamble(_: &KernelSpec) -> String {
    String::new()
}

/// Supported wave sizes.
pub const WAVES: [u32; 2] = [32, 64];

/// A fully specified kernel instance.
#[derive(Debug, Clone)]
pub struct KernelSpec {
    family: &'static Family,
    values: Vec<Value>,
    wave: u32,
    uri: String,
}

impl PartialEq for KernelSpec {
    fn eq(&self, o: &Self) -> bool {
        self.uri == o.uri
    }
}
impl Eq for KernelSpec {}
impl std::hash::Hash for KernelSpec {
    fn hash<H: std::hash::Hasher>(&self, h: &mut H) {
        self.uri.hash(h)
    }
}

impl KernelSpec {
    /// Build and validate a spec. Every parameter of the family must be given exactly once.
    pub fn new(family: &'static Family, params: &[(&str, Value)], wave: u32) -> Result<KernelSpec> {
        let err = |reason: String| Error::InvalidSpec {
            spec: family.name.to_string(),
            reason,
        };
        for (k, _) in params {
            if !family.params.iter().any(|p| p.name == *k) {
                let names: Vec<_> = family.params.iter().map(|p| p.name).collect();
                return Err(err(format!(
                    "unknown parameter `{k}`; parameters: {}",
                    names.join(", ")
                )));
            }
        }
        let mut values = Vec::with_capacity(family.params.len());
        for p in family.params {
            let mut given = params.iter().filter(|(k, _)| *k == p.name);
            let v = given.next().ok_or_else(|| {
                err(format!(
                    "missing parameter `{}` (supported: {})",
                    p.name,
                    p.supported()
                ))
            })?;
            if given.next().is_some() {
                return Err(err(format!("parameter `{}` given twice", p.name)));
            }
            if !p.accepts(&v.1) {
                return Err(err(format!(
                    "unsupported {} = {:?}; supported: {}",
                    p.name,
                    v.1,
                    p.supported()
                )));
            }
            values.push(v.1.clone());
        }
        if !WAVES.contains(&wave) {
            return Err(err(format!(
                "unsupported wave size {wave}; supported: 32, 64"
            )));
        }
        let mut uri = family.name.to_string();
        for (p, v) in family.params.iter().zip(&values) {
            uri.push('.');
            uri.push_str(&p.uri_part(v));
        }
        uri.push_str(&format!(".w{wave}"));
        let spec = KernelSpec {
            family,
            values,
            wave,
            uri,
        };
        (family.validate)(&spec).map_err(|r| Error::InvalidSpec {
            spec: spec.uri.clone(),
            reason: r,
        })?;
        Ok(spec)
    }

    /// Build from command-line strings `name=value`.
    pub fn from_strings(
        family: &'static Family,
        params: &[(String, String)],
        wave: u32,
    ) -> Result<KernelSpec> {
        let mut vals = Vec::new();
        for (k, v) in params {
            let def =
                family
                    .params
                    .iter()
                    .find(|p| p.name == k)
                    .ok_or_else(|| Error::InvalidSpec {
                        spec: family.name.into(),
                        reason: format!(
                            "unknown parameter `{k}`; parameters: {}",
                            family
                                .params
                                .iter()
                                .map(|p| p.name)
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    })?;
            let val = def.parse(v).ok_or_else(|| Error::InvalidSpec {
                spec: family.name.into(),
                reason: format!("bad value `{v}` for {k}; supported: {}", def.supported()),
            })?;
            vals.push((def.name, val));
        }
        KernelSpec::new(family, &vals, wave)
    }

    /// Every valid instance of a family for one wave size.
    pub fn enumerate(family: &'static Family, wave: u32) -> Vec<KernelSpec> {
        let mut combos: Vec<Vec<(&str, Value)>> = vec![vec![]];
        for p in family.params {
            let vals: Vec<Value> = match p.kind {
                ParamKind::Int { values, .. } => values.iter().map(|&v| Value::Int(v)).collect(),
                ParamKind::Choice { values } => values.iter().map(|&v| Value::from(v)).collect(),
                ParamKind::Flag { .. } => vec![Value::Bool(false), Value::Bool(true)],
            };
            combos = combos
                .into_iter()
                .flat_map(|c| {
                    vals.iter()
                        .map(move |v| [c.clone(), vec![(p.name, v.clone())]].concat())
                })
                .collect();
        }
        combos
            .into_iter()
            .filter_map(|c| KernelSpec::new(family, &c, wave).ok())
            .collect()
    }

    pub fn family(&self) -> &'static Family {
        self.family
    }
    pub fn wave(&self) -> u32 {
        self.wave
    }
    pub fn uri(&self) -> &str {
        &self.uri
    }
    /// The C symbol of the instance: `rf_` + the URI with `.` → `_`.
    pub fn symbol(&self) -> String {
        symbol_for(&self.uri)
    }
    /// Value of a parameter by name.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.family
            .params
            .iter()
            .position(|p| p.name == name)
            .map(|i| &self.values[i])
    }
    pub fn int(&self, name: &str) -> i64 {
        self.get(name).and_then(Value::as_int).unwrap_or(0)
    }
    pub fn str(&self, name: &str) -> &str {
        self.get(name).and_then(Value::as_str).unwrap_or("")
    }
    pub fn flag(&self, name: &str) -> bool {
        self.get(name).and_then(Value::as_bool).unwrap_or(false)
    }
    /// (name, value) pairs in declaration order.
    pub fn params(&self) -> impl Iterator<Item = (&'static str, &Value)> {
        self.family
            .params
            .iter()
            .map(|p| p.name)
            .zip(self.values.iter())
    }
    /// Check the spec is meant for this target (wave size must be the target's).
    pub fn check_target(&self, t: &Target) -> Result<()> {
        if self.wave != t.wave_size {
            return Err(Error::InvalidSpec {
                spec: self.uri.clone(),
                reason: format!(
                    "wave size {} but target {} runs waves of {}",
                    self.wave, t, t.wave_size
                ),
            });
        }
        if !(self.family.applies)(self, t) {
            return Err(Error::InvalidSpec {
                spec: self.uri.clone(),
                reason: format!("this instance is not built for {t}"),
            });
        }
        Ok(())
    }
}

impl fmt::Display for KernelSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.uri)
    }
}

/// The C symbol of the instance named `uri` (see [`KernelSpec::symbol`]).
pub fn symbol_for(uri: &str) -> String {
    format!("rf_{}", uri.replace(['.', '-'], "_"))
}
