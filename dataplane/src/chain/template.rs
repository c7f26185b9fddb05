//! The template language of TaskChain `promptTemplate`, `print`, `outputTemplate` and hook
//! `args`: a documented subset of Go's `text/template`, enough for the seed's usage
//! (`{{.input}}`, `{{.task_id}}`, `{{.previous_output}}`, `{{.field.sub}}` into JSON) plus the
//! usual control structures. docs/dataplane-api.md ("TaskChains") lists all; in short:
//!
//! - actions `{{ … }}` with trim markers `{{- ` / ` -}}` and comments `{{/* … */}}`;
//! - `.` (dot), `.a.b` (fields), `$` (the root), `$x.a`, literals (`"…"`, `` `…` ``, numbers,
//!   `true`, `false`, `nil`), parentheses and pipes `a | f b`;
//! - `{{if}}`/`{{else if}}`/`{{else}}`/`{{end}}`, `{{with}}`, `{{range}}` (arrays, objects in key
//!   order, chat histories, integers) with `$i, $e :=`, and `{{$x := …}}` / `{{$x = …}}`;
//! - functions `and or not eq ne lt le gt ge len index print printf println`, and (not Go's)
//!   `json lower upper trim join default contains`.
//!
//! Where it differs from Go: an unknown top-level variable is an error (a typo must not reach a
//! model as an empty string), while a missing field inside JSON is `null`, which prints as an
//! empty string (Go prints `<no value>`); objects and arrays print as compact JSON; a chat
//! history prints as the text of its last message. Output, evaluation steps and nesting are
//! bounded, so no template can exhaust the data plane.
//!
//! The parts: `lexer` (tokens of an action), `parser` (syntax tree), `eval` (rendering),
//! `value` (how values print, test true and read fields) and `functions`.

mod eval;
mod functions;
mod lexer;
mod parser;
mod value;

use std::borrow::Cow;
use std::fmt;

use serde_json::Value as Json;

use eval::Eval;
use parser::{Node, Parser, Stop};
pub use value::{float_text, last_message_text, number_text};

/// Largest rendered output, in bytes.
pub const MAX_OUTPUT_BYTES: usize = 1 << 20;
/// Most evaluation steps (nodes, commands, loop iterations) of one rendering.
const MAX_STEPS: usize = 200_000;
/// Deepest nesting of blocks and parentheses.
const MAX_NESTING: usize = 48;

/// A parse or evaluation error, with the position (1-based) of the action at fault.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TemplateError {
    /// Line of the action.
    pub line: usize,
    /// Column (in characters) of the action.
    pub column: usize,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "line {}, column {}: {}",
            self.line, self.column, self.message
        )
    }
}

impl std::error::Error for TemplateError {}

/// Named values a template reads at its root (the chain's variables).
pub trait Scope {
    /// The value of a variable.
    fn lookup(&self, name: &str) -> Option<Val<'_>>;
    /// Names of the variables that are set (for error messages).
    fn names(&self) -> Vec<String>;
}

/// A value seen by a template.
#[derive(Clone)]
pub enum Val<'a> {
    /// JSON (strings, numbers, booleans, null, arrays, objects).
    Json(Cow<'a, Json>),
    /// A chat history: prints as the text of its last message; `.messages` is the list.
    Chat(&'a [Json]),
    /// A borrowed list of JSON values (a chat history's `.messages`).
    List(&'a [Json]),
    /// Named variables (the root of prompt templates).
    Scope(&'a dyn Scope),
}

impl fmt::Debug for Val<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Val::Json(j) => write!(f, "Json({j})"),
            Val::Chat(m) => write!(f, "Chat({} messages)", m.len()),
            Val::List(l) => write!(f, "List({} items)", l.len()),
            Val::Scope(s) => write!(f, "Scope({:?})", s.names()),
        }
    }
}

impl<'a> Val<'a> {
    /// A JSON value owned by the template.
    pub fn owned(v: Json) -> Self {
        Val::Json(Cow::Owned(v))
    }

    /// A borrowed JSON value.
    pub fn borrowed(v: &'a Json) -> Self {
        Val::Json(Cow::Borrowed(v))
    }
}

/// A parsed template.
#[derive(Debug, Clone)]
pub struct Template {
    nodes: Vec<Node>,
    /// The source, for positions in errors.
    source: String,
}

/// Parses and renders `source` against `root` in one go.
pub fn render(source: &str, root: Val<'_>) -> Result<String, TemplateError> {
    Template::parse(source)?.render(root)
}

impl Template {
    /// Parses a template.
    pub fn parse(source: &str) -> Result<Template, TemplateError> {
        let mut p = Parser {
            src: source,
            pos: 0,
            depth: 0,
            pending_trim: false,
        };
        let (nodes, end) = p.list().map_err(|e| e.locate(source))?;
        match end {
            Stop::Eof => Ok(Template {
                nodes,
                source: source.to_owned(),
            }),
            Stop::End(at) | Stop::Else(at) | Stop::ElseIf(_, at) => Err(Raw {
                at,
                message: "unexpected {{end}} or {{else}} without a matching {{if}}, {{with}} or {{range}}".into(),
            }
            .locate(source)),
        }
    }

    /// Renders the template with `root` as dot and `$`.
    pub fn render(&self, root: Val<'_>) -> Result<String, TemplateError> {
        let mut ev = Eval {
            out: String::new(),
            steps: 0,
            vars: vec![("$".to_owned(), root.clone())],
        };
        ev.list(&self.nodes, &root)
            .map_err(|e| e.locate(&self.source))?;
        Ok(ev.out)
    }
}

/// An error before it knows its line and column.
#[derive(Debug)]
struct Raw {
    at: usize,
    message: String,
}

impl Raw {
    fn new(at: usize, message: impl Into<String>) -> Self {
        Raw {
            at,
            message: message.into(),
        }
    }

    fn locate(self, src: &str) -> TemplateError {
        let at = self.at.min(src.len());
        let before = src.get(..at).unwrap_or(src);
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        TemplateError {
            line: before.matches('\n').count() + 1,
            column: before
                .get(line_start..)
                .map_or(1, |s| s.chars().count() + 1),
            message: self.message,
        }
    }
}

#[cfg(test)]
mod tests;
