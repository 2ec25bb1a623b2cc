//! Chat templates (`tokenizer.chat_template`) rendered with minijinja, HF semantics.
//!
//! What HF's `apply_chat_template` gives a template, this gives too: `messages`,
//! `add_generation_prompt`, `bos_token`, `eos_token`, `raise_exception(msg)`, `strftime_now(fmt)`,
//! a `tojson` filter that writes JSON as Python's `json.dumps` does (", " and ": " separators,
//! non-ASCII kept, `indent=`), Python string/dict methods (minijinja-contrib's pycompat), loop
//! controls, and Jinja's `trim_blocks` + `lstrip_blocks`, which HF turns on.

use std::fmt::Write as _;

use minijinja::value::{Kwargs, Value, ValueKind};
use minijinja::{Environment, ErrorKind};

use crate::error::{Error, Result};
use crate::gguf::GgufFile;

/// Where errors say the template came from.
const TEMPLATE_NAME: &str = "tokenizer.chat_template";

/// One message of a conversation.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ChatMessage {
    /// "system", "user", "assistant", ...
    pub role: String,
    /// The message text.
    pub content: String,
}

impl ChatMessage {
    /// A message with this role and content.
    pub fn new(role: impl Into<String>, content: impl Into<String>) -> Self {
        ChatMessage {
            role: role.into(),
            content: content.into(),
        }
    }
}

/// A compiled chat template.
pub struct ChatTemplate {
    env: Environment<'static>,
    bos: String,
    eos: String,
}

impl std::fmt::Debug for ChatTemplate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChatTemplate")
            .field("bos", &self.bos)
            .field("eos", &self.eos)
            .finish()
    }
}

fn template_err(e: minijinja::Error) -> Error {
    // minijinja's message names the template and line; the causes follow it.
    let mut message = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        let _ = write!(message, ": {s}");
        src = s.source();
    }
    Error::Template {
        template: TEMPLATE_NAME.into(),
        message,
    }
}

impl ChatTemplate {
    /// The GGUF's `tokenizer.chat_template`, or None when it has none. `bos_token`/`eos_token` are the
    /// vocabulary entries of `tokenizer.ggml.bos_token_id`/`eos_token_id` ("" when absent).
    pub fn from_gguf(g: &GgufFile) -> Result<Option<ChatTemplate>> {
        if g.get("tokenizer.chat_template").is_none() {
            return Ok(None);
        }
        let source = g.get_str("tokenizer.chat_template")?;
        let tokens = g.get_str_array("tokenizer.ggml.tokens")?;
        let piece = |key: &str| -> Result<String> {
            if g.get(key).is_none() {
                return Ok(String::new());
            }
            let id = g.get_u32(key)? as usize;
            tokens
                .get(id)
                .map(|s| (*s).to_owned())
                .ok_or_else(|| Error::Gguf {
                    path: g.path().display().to_string(),
                    message: format!(
                        "`{key}` = {id} is outside the {}-token vocabulary",
                        tokens.len()
                    ),
                })
        };
        let bos = piece("tokenizer.ggml.bos_token_id")?;
        let eos = piece("tokenizer.ggml.eos_token_id")?;
        ChatTemplate::from_source(source, &bos, &eos).map(Some)
    }

    /// Compile a template from its Jinja source.
    pub fn from_source(source: &str, bos: &str, eos: &str) -> Result<ChatTemplate> {
        let mut env = Environment::new();
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function("raise_exception", raise_exception);
        env.add_function("strftime_now", strftime_now);
        env.add_filter("tojson", tojson);
        env.add_template_owned(TEMPLATE_NAME, source.to_owned())
            .map_err(template_err)?;
        Ok(ChatTemplate {
            env,
            bos: bos.to_owned(),
            eos: eos.to_owned(),
        })
    }

    /// Render a conversation. `add_generation_prompt` asks the template to open the assistant's turn.
    pub fn render(&self, messages: &[ChatMessage], add_generation_prompt: bool) -> Result<String> {
        let tmpl = self.env.get_template(TEMPLATE_NAME).map_err(template_err)?;
        tmpl.render(minijinja::context! {
            messages => messages,
            add_generation_prompt => add_generation_prompt,
            bos_token => &self.bos,
            eos_token => &self.eos,
        })
        .map_err(template_err)
    }
}

/// The error a model without a template gets when asked to chat.
pub fn no_template_error(model_name: &str) -> Error {
    Error::op(
        "chat",
        format!(
            "model {model_name} has no chat template (tokenizer.chat_template); use a plain prompt"
        ),
    )
}

fn raise_exception(msg: String) -> std::result::Result<Value, minijinja::Error> {
    Err(minijinja::Error::new(
        ErrorKind::InvalidOperation,
        format!("raise_exception: {msg}"),
    ))
}

/// `strftime_now(fmt)`: the current UTC time, with the common strftime codes.
fn strftime_now(fmt: String) -> std::result::Result<String, minijinja::Error> {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    strftime(secs, &fmt)
}

/// Format a Unix time (UTC).
fn strftime(secs: i64, fmt: &str) -> std::result::Result<String, minijinja::Error> {
    const MONTHS: [&str; 12] = [
        "January",
        "February",
        "March",
        "April",
        "May",
        "June",
        "July",
        "August",
        "September",
        "October",
        "November",
        "December",
    ];
    const DAYS: [&str; 7] = [
        "Monday",
        "Tuesday",
        "Wednesday",
        "Thursday",
        "Friday",
        "Saturday",
        "Sunday",
    ];
    let days = secs.div_euclid(86_400);
    let tod = secs.rem_euclid(86_400);
    // Civil date from days since 1970-01-01 (proleptic Gregorian).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    let weekday = (days + 3).rem_euclid(7) as usize; // 1970-01-01 was a Thursday
    let (mi, h, s) = ((tod / 60) % 60, tod / 3600, tod % 60);
    let month = MONTHS[(m - 1) as usize];
    let mut out = String::new();
    let mut chars = fmt.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let _ = match chars.next() {
            Some('Y') => write!(out, "{y}"),
            Some('y') => write!(out, "{:02}", y.rem_euclid(100)),
            Some('m') => write!(out, "{m:02}"),
            Some('d') => write!(out, "{d:02}"),
            Some('-') if chars.clone().next() == Some('d') => {
                chars.next();
                write!(out, "{d}")
            }
            Some('B') => write!(out, "{month}"),
            Some('b') => write!(out, "{}", &month[..3]),
            Some('A') => write!(out, "{}", DAYS[weekday]),
            Some('a') => write!(out, "{}", &DAYS[weekday][..3]),
            Some('H') => write!(out, "{h:02}"),
            Some('M') => write!(out, "{mi:02}"),
            Some('S') => write!(out, "{s:02}"),
            Some('%') => write!(out, "%"),
            other => {
                return Err(minijinja::Error::new(
                    ErrorKind::InvalidOperation,
                    format!(
                        "strftime_now: unsupported code %{} in {fmt:?} (supported: %Y %y %m %d %-d %B %b %A %a %H %M %S %%)",
                        other.map(String::from).unwrap_or_default()
                    ),
                ))
            }
        };
    }
    Ok(out)
}

/// `tojson` as HF defines it: Python's `json.dumps(x, ensure_ascii=False, indent=indent)`.
fn tojson(value: &Value, kwargs: Kwargs) -> std::result::Result<Value, minijinja::Error> {
    let indent: Option<usize> = kwargs.get("indent")?;
    let sort_keys: Option<bool> = kwargs.get("sort_keys")?;
    let _ensure_ascii: Option<bool> = kwargs.get("ensure_ascii")?;
    kwargs.assert_all_used()?;
    let mut out = String::new();
    py_json(value, indent, sort_keys.unwrap_or(false), 0, &mut out)?;
    Ok(Value::from_safe_string(out))
}

fn py_json(
    v: &Value,
    indent: Option<usize>,
    sort_keys: bool,
    depth: usize,
    out: &mut String,
) -> std::result::Result<(), minijinja::Error> {
    let bad = |what: &str| {
        minijinja::Error::new(
            ErrorKind::InvalidOperation,
            format!("tojson: cannot serialize {what}"),
        )
    };
    let newline = |out: &mut String, depth: usize| {
        if let Some(n) = indent {
            out.push('\n');
            out.extend(std::iter::repeat(' ').take(n * depth));
        }
    };
    let item_sep = if indent.is_some() { "," } else { ", " };
    match v.kind() {
        ValueKind::Undefined | ValueKind::None => out.push_str("null"),
        ValueKind::Bool => out.push_str(if v.is_true() { "true" } else { "false" }),
        ValueKind::Number => {
            // integers print as integers; floats keep a fraction (Python's json: 2.0 -> "2.0")
            if let Some(i) = v.as_i64().filter(|_| v.is_integer()) {
                let _ = write!(out, "{i}");
            } else {
                let f = f64::try_from(v.clone()).map_err(|_| bad("this number"))?;
                if !f.is_finite() {
                    out.push_str(if f.is_nan() {
                        "NaN"
                    } else if f > 0.0 {
                        "Infinity"
                    } else {
                        "-Infinity"
                    });
                } else if f.fract() == 0.0 && f.abs() < 1e16 {
                    let _ = write!(out, "{f:.1}");
                } else {
                    let _ = write!(out, "{f}");
                }
            }
        }
        ValueKind::String => {
            let s = v.as_str().unwrap_or_default();
            out.push_str(&serde_json::to_string(s).map_err(|e| bad(&e.to_string()))?);
        }
        ValueKind::Seq | ValueKind::Iterable => {
            let items: Vec<Value> = v.try_iter()?.collect();
            if items.is_empty() {
                out.push_str("[]");
                return Ok(());
            }
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                newline(out, depth + 1);
                py_json(item, indent, sort_keys, depth + 1, out)?;
            }
            newline(out, depth);
            out.push(']');
        }
        ValueKind::Map => {
            let mut keys: Vec<Value> = v.try_iter()?.collect();
            if keys.is_empty() {
                out.push_str("{}");
                return Ok(());
            }
            if sort_keys {
                keys.sort();
            }
            out.push('{');
            for (i, k) in keys.iter().enumerate() {
                if i > 0 {
                    out.push_str(item_sep);
                }
                newline(out, depth + 1);
                let key = match k.as_str() {
                    Some(s) => s.to_owned(),
                    None => k.to_string(),
                };
                out.push_str(&serde_json::to_string(&key).map_err(|e| bad(&e.to_string()))?);
                out.push_str(": ");
                py_json(&v.get_item(k)?, indent, sort_keys, depth + 1, out)?;
            }
            newline(out, depth);
            out.push('}');
        }
        other => return Err(bad(&format!("a value of kind {other:?}"))),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strftime_known_dates() {
        // 2024-02-29 13:05:09 UTC was a Thursday.
        let t = 1_709_211_909;
        assert_eq!(strftime(t, "%d %b %Y").unwrap(), "29 Feb 2024");
        assert_eq!(
            strftime(t, "%A %B %-d, %H:%M:%S %y%%").unwrap(),
            "Thursday February 29, 13:05:09 24%"
        );
        assert_eq!(strftime(0, "%Y-%m-%d %a").unwrap(), "1970-01-01 Thu");
        assert!(strftime(t, "%Q").is_err());
    }

    #[test]
    fn tojson_like_python() {
        let t = ChatTemplate::from_source("{{ x | tojson }}|{{ x | tojson(indent=2) }}", "", "")
            .unwrap();
        let env = &t.env;
        let tmpl = env.get_template(TEMPLATE_NAME).unwrap();
        let out = tmpl
            .render(minijinja::context! { x => vec![Value::from(1), Value::from("é\"\n"), Value::from(2.0), Value::from(())] })
            .unwrap();
        assert_eq!(
            out,
            "[1, \"é\\\"\\n\", 2.0, null]|[\n  1,\n  \"é\\\"\\n\",\n  2.0,\n  null\n]"
        );
    }
}
