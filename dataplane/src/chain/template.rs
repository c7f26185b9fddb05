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

use std::borrow::Cow;
use std::fmt;

use serde_json::{Map, Number, Value as Json};

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

// ---------------------------------------------------------------------------------------------
// Syntax tree

#[derive(Debug, Clone)]
enum Node {
    Text(String),
    Output(Pipeline),
    If {
        arms: Vec<(Pipeline, Vec<Node>)>,
        otherwise: Vec<Node>,
    },
    With {
        pipe: Pipeline,
        body: Vec<Node>,
        otherwise: Vec<Node>,
    },
    Range {
        pipe: Pipeline,
        body: Vec<Node>,
        otherwise: Vec<Node>,
    },
}

#[derive(Debug, Clone)]
struct Pipeline {
    at: usize,
    /// `$a, $b :=` (declare) or `$a =` (assign).
    decl: Option<(Vec<String>, bool)>,
    cmds: Vec<Command>,
}

#[derive(Debug, Clone)]
struct Command {
    at: usize,
    operands: Vec<Operand>,
}

#[derive(Debug, Clone)]
struct Operand {
    at: usize,
    term: Term,
    fields: Vec<String>,
}

#[derive(Debug, Clone)]
enum Term {
    Dot,
    Var(String),
    Func(String),
    Lit(Json),
    Sub(Box<Pipeline>),
}

// ---------------------------------------------------------------------------------------------
// Parser

/// How a list of nodes ended.
enum Stop {
    Eof,
    End(usize),
    Else(usize),
    ElseIf(Pipeline, usize),
}

struct Parser<'s> {
    src: &'s str,
    pos: usize,
    depth: usize,
    /// The previous action ended with ` -}}`: trim the leading whitespace of the next text.
    pending_trim: bool,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Dot,
    Field(String),
    Var(String),
    Ident(String),
    Lit(Json),
    LParen,
    RParen,
    Pipe,
    Declare,
    Assign,
    Comma,
}

#[derive(Debug, Clone)]
struct Token {
    tok: Tok,
    at: usize,
    /// No whitespace between this token and the previous one.
    glued: bool,
}

impl Parser<'_> {
    /// Parses nodes until the end of input or an `{{end}}` / `{{else…}}`.
    fn list(&mut self) -> Result<(Vec<Node>, Stop), Raw> {
        let mut nodes = Vec::new();
        loop {
            let rest = &self.src[self.pos..];
            let next = rest.find("{{");
            let text_end = next.map_or(self.src.len(), |i| self.pos + i);
            let mut text = &self.src[self.pos..text_end];
            if self.pending_trim {
                text = text.trim_start();
                self.pending_trim = false;
            }
            let Some(_) = next else {
                if !text.is_empty() {
                    nodes.push(Node::Text(text.to_owned()));
                }
                self.pos = self.src.len();
                return Ok((nodes, Stop::Eof));
            };
            let open = text_end;
            let (inner_start, inner_end, after, trim_left, trim_right) =
                self.action_bounds(open)?;
            if trim_left {
                text = text.trim_end();
            }
            if !text.is_empty() {
                nodes.push(Node::Text(text.to_owned()));
            }
            self.pos = after;
            self.pending_trim = trim_right;
            let inner = &self.src[inner_start..inner_end];
            let trimmed = inner.trim();
            if trimmed.starts_with("/*") {
                if !trimmed.ends_with("*/") || trimmed.len() < 4 {
                    return Err(Raw::new(open, "unclosed comment"));
                }
                continue;
            }
            let toks = tokenize(inner, inner_start)?;
            let Some(first) = toks.first() else {
                return Err(Raw::new(open, "empty action {{}}"));
            };
            match &first.tok {
                Tok::Ident(k) if k == "end" => {
                    if toks.len() > 1 {
                        return Err(Raw::new(open, "unexpected text after {{end}}"));
                    }
                    return Ok((nodes, Stop::End(open)));
                }
                Tok::Ident(k) if k == "else" => {
                    return match toks.get(1).map(|t| &t.tok) {
                        None => Ok((nodes, Stop::Else(open))),
                        Some(Tok::Ident(k)) if k == "if" => {
                            let pipe = pipeline(&toks[2..], open, self.depth)?;
                            Ok((nodes, Stop::ElseIf(pipe, open)))
                        }
                        Some(_) => Err(Raw::new(
                            open,
                            "only {{else}} and {{else if …}} are supported",
                        )),
                    };
                }
                Tok::Ident(k) if k == "if" || k == "with" || k == "range" => {
                    let kind = k.clone();
                    self.enter(open)?;
                    let pipe = pipeline(&toks[1..], open, self.depth)?;
                    let node = match kind.as_str() {
                        "if" => self.if_chain(pipe, open)?,
                        "with" => {
                            let (body, otherwise) = self.body_else(open, "with")?;
                            Node::With {
                                pipe,
                                body,
                                otherwise,
                            }
                        }
                        _ => {
                            if let Some((names, _)) = &pipe.decl
                                && names.len() > 2
                            {
                                return Err(Raw::new(open, "range declares at most two variables"));
                            }
                            let (body, otherwise) = self.body_else(open, "range")?;
                            Node::Range {
                                pipe,
                                body,
                                otherwise,
                            }
                        }
                    };
                    self.depth -= 1;
                    nodes.push(node);
                }
                Tok::Ident(k)
                    if matches!(
                        k.as_str(),
                        "define" | "template" | "block" | "break" | "continue"
                    ) =>
                {
                    return Err(Raw::new(open, format!("{{{{{k}}}}} is not supported")));
                }
                _ => nodes.push(Node::Output(pipeline(&toks, open, self.depth)?)),
            }
        }
    }

    fn enter(&mut self, at: usize) -> Result<(), Raw> {
        self.depth += 1;
        if self.depth > MAX_NESTING {
            return Err(Raw::new(
                at,
                format!("blocks nested deeper than {MAX_NESTING}"),
            ));
        }
        Ok(())
    }

    fn if_chain(&mut self, first: Pipeline, open: usize) -> Result<Node, Raw> {
        let mut arms = Vec::new();
        let mut cond = first;
        loop {
            let (body, end) = self.list()?;
            arms.push((cond, body));
            match end {
                Stop::End(_) => {
                    return Ok(Node::If {
                        arms,
                        otherwise: Vec::new(),
                    });
                }
                Stop::ElseIf(p, _) => cond = p,
                Stop::Else(_) => {
                    let (otherwise, end) = self.list()?;
                    return match end {
                        Stop::End(_) => Ok(Node::If { arms, otherwise }),
                        _ => Err(Raw::new(open, "{{if}} without a matching {{end}}")),
                    };
                }
                Stop::Eof => return Err(Raw::new(open, "{{if}} without a matching {{end}}")),
            }
        }
    }

    fn body_else(&mut self, open: usize, what: &str) -> Result<(Vec<Node>, Vec<Node>), Raw> {
        let (body, end) = self.list()?;
        match end {
            Stop::End(_) => Ok((body, Vec::new())),
            Stop::Else(_) => {
                let (otherwise, end) = self.list()?;
                match end {
                    Stop::End(_) => Ok((body, otherwise)),
                    _ => Err(Raw::new(
                        open,
                        format!("{{{{{what}}}}} without a matching {{{{end}}}}"),
                    )),
                }
            }
            Stop::ElseIf(_, at) => Err(Raw::new(
                at,
                format!("{{{{else if}}}} inside {{{{{what}}}}}"),
            )),
            Stop::Eof => Err(Raw::new(
                open,
                format!("{{{{{what}}}}} without a matching {{{{end}}}}"),
            )),
        }
    }

    /// Bounds of the action opening at `open` (`{{`): inner start and end, the position after
    /// `}}`, and the trim markers.
    fn action_bounds(&self, open: usize) -> Result<(usize, usize, usize, bool, bool), Raw> {
        let bytes = self.src.as_bytes();
        let mut start = open + 2;
        let trim_left = bytes.get(start) == Some(&b'-')
            && bytes.get(start + 1).is_some_and(u8::is_ascii_whitespace);
        if trim_left {
            start += 1;
        }
        let mut i = start;
        let mut quote: Option<u8> = None;
        // Comments may hold anything, quotes included.
        let comment = self
            .src
            .get(start..)
            .is_some_and(|s| s.trim_start().starts_with("/*"));
        while i < bytes.len() {
            let b = bytes[i];
            if comment {
                if bytes[i..].starts_with(b"*/") {
                    let mut j = i + 2;
                    while j < bytes.len() && bytes[j].is_ascii_whitespace() {
                        j += 1;
                    }
                    let (trim_right, close) = if bytes.get(j) == Some(&b'-') {
                        (true, j + 1)
                    } else {
                        (false, j)
                    };
                    if bytes.get(close..).is_some_and(|b| b.starts_with(b"}}")) {
                        return Ok((start, i + 2, close + 2, trim_left, trim_right));
                    }
                }
                i += 1;
                continue;
            }
            match quote {
                Some(q) => {
                    if b == b'\\' && q != b'`' {
                        i += 2;
                        continue;
                    }
                    if b == q {
                        quote = None;
                    }
                }
                None => {
                    if b == b'"' || b == b'`' || b == b'\'' {
                        quote = Some(b);
                    } else if b == b'}' && bytes.get(i + 1) == Some(&b'}') {
                        let trim_right = i >= start + 2
                            && bytes[i - 1] == b'-'
                            && bytes[i - 2].is_ascii_whitespace();
                        let end = if trim_right { i - 1 } else { i };
                        return Ok((start, end, i + 2, trim_left, trim_right));
                    }
                }
            }
            i += 1;
        }
        Err(Raw::new(open, "unclosed action: \"{{\" without \"}}\""))
    }
}

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Splits the inside of an action into tokens (`base` is its offset in the template).
fn tokenize(s: &str, base: usize) -> Result<Vec<Token>, Raw> {
    let mut out: Vec<Token> = Vec::new();
    let mut chars = s.char_indices().peekable();
    let mut glued = false;
    while let Some(&(i, c)) = chars.peek() {
        let at = base + i;
        if c.is_whitespace() {
            chars.next();
            glued = false;
            continue;
        }
        let push = |tok: Tok, out: &mut Vec<Token>| {
            out.push(Token { tok, at, glued });
        };
        match c {
            '.' => {
                chars.next();
                let mut name = String::new();
                while let Some(&(_, c)) = chars.peek() {
                    if is_ident_char(c) {
                        name.push(c);
                        chars.next();
                    } else {
                        break;
                    }
                }
                if name.is_empty() {
                    if chars.peek().is_some_and(|(_, c)| c.is_ascii_digit()) {
                        return Err(Raw::new(at, "numbers must start with a digit"));
                    }
                    push(Tok::Dot, &mut out);
                } else if name.starts_with(|c: char| c.is_ascii_digit()) {
                    return Err(Raw::new(at, format!("bad field name .{name}")));
                } else {
                    push(Tok::Field(name), &mut out);
                }
            }
            '$' => {
                chars.next();
                let mut name = String::from("$");
                while let Some(&(_, c)) = chars.peek() {
                    if is_ident_char(c) {
                        name.push(c);
                        chars.next();
                    } else {
                        break;
                    }
                }
                push(Tok::Var(name), &mut out);
            }
            '(' => {
                chars.next();
                push(Tok::LParen, &mut out);
            }
            ')' => {
                chars.next();
                push(Tok::RParen, &mut out);
            }
            '|' => {
                chars.next();
                push(Tok::Pipe, &mut out);
            }
            ',' => {
                chars.next();
                push(Tok::Comma, &mut out);
            }
            ':' => {
                chars.next();
                if chars.next_if(|&(_, c)| c == '=').is_none() {
                    return Err(Raw::new(at, "expected := after :"));
                }
                push(Tok::Declare, &mut out);
            }
            '=' => {
                chars.next();
                push(Tok::Assign, &mut out);
            }
            '"' => {
                chars.next();
                let mut text = String::new();
                let mut closed = false;
                while let Some((_, c)) = chars.next() {
                    match c {
                        '"' => {
                            closed = true;
                            break;
                        }
                        '\\' => match chars.next().map(|(_, c)| c) {
                            Some('n') => text.push('\n'),
                            Some('t') => text.push('\t'),
                            Some('r') => text.push('\r'),
                            Some('\\') => text.push('\\'),
                            Some('"') => text.push('"'),
                            Some('\'') => text.push('\''),
                            Some(other) => {
                                return Err(Raw::new(
                                    at,
                                    format!("unknown escape \\{other} in string"),
                                ));
                            }
                            None => break,
                        },
                        c => text.push(c),
                    }
                }
                if !closed {
                    return Err(Raw::new(at, "unterminated string"));
                }
                push(Tok::Lit(Json::String(text)), &mut out);
            }
            '`' => {
                chars.next();
                let mut text = String::new();
                let mut closed = false;
                for (_, c) in chars.by_ref() {
                    if c == '`' {
                        closed = true;
                        break;
                    }
                    text.push(c);
                }
                if !closed {
                    return Err(Raw::new(at, "unterminated raw string"));
                }
                push(Tok::Lit(Json::String(text)), &mut out);
            }
            '\'' => {
                return Err(Raw::new(
                    at,
                    "character literals are not supported; use a \"string\"",
                ));
            }
            c if c.is_ascii_digit() || c == '-' || c == '+' => {
                let mut num = String::new();
                while let Some(&(_, c)) = chars.peek() {
                    if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '+' | '_') {
                        num.push(c);
                        chars.next();
                    } else {
                        break;
                    }
                }
                push(Tok::Lit(number(&num, at)?), &mut out);
            }
            c if is_ident_char(c) => {
                let mut name = String::new();
                while let Some(&(_, c)) = chars.peek() {
                    if is_ident_char(c) {
                        name.push(c);
                        chars.next();
                    } else {
                        break;
                    }
                }
                let tok = match name.as_str() {
                    "true" => Tok::Lit(Json::Bool(true)),
                    "false" => Tok::Lit(Json::Bool(false)),
                    "nil" => Tok::Lit(Json::Null),
                    _ => Tok::Ident(name),
                };
                push(tok, &mut out);
            }
            other => return Err(Raw::new(at, format!("unexpected character {other:?}"))),
        }
        glued = true;
    }
    Ok(out)
}

fn number(text: &str, at: usize) -> Result<Json, Raw> {
    let clean = text.replace('_', "");
    if let Ok(i) = clean.parse::<i64>() {
        return Ok(Json::Number(i.into()));
    }
    clean
        .parse::<f64>()
        .ok()
        .and_then(Number::from_f64)
        .map(Json::Number)
        .ok_or_else(|| Raw::new(at, format!("bad number {text:?}")))
}

/// Parses a pipeline (with an optional declaration) from tokens.
fn pipeline(toks: &[Token], at: usize, depth: usize) -> Result<Pipeline, Raw> {
    if depth > MAX_NESTING {
        return Err(Raw::new(at, format!("nested deeper than {MAX_NESTING}")));
    }
    let mut rest = toks;
    let mut decl = None;
    // `$a :=`, `$a, $b :=`, `$a =`
    let decl_end = rest
        .iter()
        .position(|t| matches!(t.tok, Tok::Declare | Tok::Assign));
    if let Some(end) = decl_end
        && rest[..end]
            .iter()
            .all(|t| matches!(t.tok, Tok::Var(_) | Tok::Comma))
        && end > 0
    {
        let mut names = Vec::new();
        for (i, t) in rest[..end].iter().enumerate() {
            match (&t.tok, i % 2) {
                (Tok::Var(v), 0) if v != "$" => names.push(v.clone()),
                (Tok::Comma, 1) => {}
                _ => return Err(Raw::new(t.at, "bad variable declaration")),
            }
        }
        if end % 2 == 0 {
            return Err(Raw::new(at, "bad variable declaration"));
        }
        let declare = matches!(rest[end].tok, Tok::Declare);
        if !declare && names.len() != 1 {
            return Err(Raw::new(at, "assign one variable at a time"));
        }
        decl = Some((names, declare));
        rest = &rest[end + 1..];
    }
    if rest.is_empty() {
        return Err(Raw::new(at, "missing value"));
    }
    let mut cmds = Vec::new();
    let mut i = 0;
    loop {
        let (cmd, next) = command(rest, i, at, depth)?;
        cmds.push(cmd);
        i = next;
        match rest.get(i) {
            None => break,
            Some(t) if t.tok == Tok::Pipe => {
                i += 1;
                if i >= rest.len() {
                    return Err(Raw::new(t.at, "missing command after |"));
                }
            }
            Some(t) => return Err(Raw::new(t.at, "unexpected token")),
        }
    }
    Ok(Pipeline { at, decl, cmds })
}

/// Parses one command starting at `i`; returns it and the index after it.
fn command(toks: &[Token], mut i: usize, at: usize, depth: usize) -> Result<(Command, usize), Raw> {
    let cmd_at = toks.get(i).map_or(at, |t| t.at);
    let mut operands = Vec::new();
    while let Some(t) = toks.get(i) {
        let mut fields = Vec::new();
        let (term, next) = match &t.tok {
            Tok::Pipe | Tok::RParen => break,
            Tok::Dot => (Term::Dot, i + 1),
            Tok::Field(name) => {
                fields.push(name.clone());
                (Term::Dot, i + 1)
            }
            Tok::Var(v) => (Term::Var(v.clone()), i + 1),
            Tok::Ident(f) => (Term::Func(f.clone()), i + 1),
            Tok::Lit(v) => (Term::Lit(v.clone()), i + 1),
            Tok::LParen => {
                let close = matching_paren(toks, i)?;
                let inner = pipeline(&toks[i + 1..close], t.at, depth + 1)?;
                if inner.decl.is_some() {
                    return Err(Raw::new(t.at, "declaration inside parentheses"));
                }
                (Term::Sub(Box::new(inner)), close + 1)
            }
            Tok::Declare | Tok::Assign | Tok::Comma => {
                return Err(Raw::new(t.at, "unexpected := or , here"));
            }
        };
        i = next;
        // `.a.b`, `$x.a`, `(…).a`: fields glued to the term.
        while let Some(Token {
            tok: Tok::Field(name),
            glued: true,
            ..
        }) = toks.get(i)
        {
            fields.push(name.clone());
            i += 1;
        }
        if matches!(term, Term::Func(_)) && !fields.is_empty() {
            return Err(Raw::new(t.at, "a function has no fields"));
        }
        operands.push(Operand {
            at: t.at,
            term,
            fields,
        });
    }
    if operands.is_empty() {
        return Err(Raw::new(cmd_at, "empty command"));
    }
    Ok((
        Command {
            at: cmd_at,
            operands,
        },
        i,
    ))
}

fn matching_paren(toks: &[Token], open: usize) -> Result<usize, Raw> {
    let mut depth = 0usize;
    for (j, t) in toks.iter().enumerate().skip(open) {
        match t.tok {
            Tok::LParen => depth += 1,
            Tok::RParen => {
                depth -= 1;
                if depth == 0 {
                    return Ok(j);
                }
            }
            _ => {}
        }
    }
    Err(Raw::new(toks[open].at, "unclosed ("))
}

// ---------------------------------------------------------------------------------------------
// Evaluation

struct Eval<'d> {
    out: String,
    steps: usize,
    vars: Vec<(String, Val<'d>)>,
}

impl<'d> Eval<'d> {
    fn step(&mut self, at: usize) -> Result<(), Raw> {
        self.steps += 1;
        if self.steps > MAX_STEPS {
            return Err(Raw::new(
                at,
                format!("more than {MAX_STEPS} evaluation steps"),
            ));
        }
        Ok(())
    }

    fn write(&mut self, text: &str, at: usize) -> Result<(), Raw> {
        if self.out.len() + text.len() > MAX_OUTPUT_BYTES {
            return Err(Raw::new(
                at,
                format!("output is larger than {MAX_OUTPUT_BYTES} bytes"),
            ));
        }
        self.out.push_str(text);
        Ok(())
    }

    fn list(&mut self, nodes: &[Node], dot: &Val<'d>) -> Result<(), Raw> {
        let scope = self.vars.len();
        for node in nodes {
            self.node(node, dot)?;
        }
        self.vars.truncate(scope);
        Ok(())
    }

    fn node(&mut self, node: &Node, dot: &Val<'d>) -> Result<(), Raw> {
        match node {
            Node::Text(t) => {
                self.step(0)?;
                self.write(t, 0)
            }
            Node::Output(p) => {
                self.step(p.at)?;
                let v = self.pipeline(p, dot)?;
                if p.decl.is_none() {
                    let text = to_text(&v).map_err(|m| Raw::new(p.at, m))?;
                    self.write(&text, p.at)?;
                }
                Ok(())
            }
            Node::If { arms, otherwise } => {
                let scope = self.vars.len();
                for (cond, body) in arms {
                    self.step(cond.at)?;
                    let v = self.pipeline(cond, dot)?;
                    if truthy(&v) {
                        self.list(body, dot)?;
                        self.vars.truncate(scope);
                        return Ok(());
                    }
                }
                self.list(otherwise, dot)?;
                self.vars.truncate(scope);
                Ok(())
            }
            Node::With {
                pipe,
                body,
                otherwise,
            } => {
                self.step(pipe.at)?;
                let scope = self.vars.len();
                let v = self.pipeline(pipe, dot)?;
                if truthy(&v) {
                    self.list(body, &v)?;
                } else {
                    self.list(otherwise, dot)?;
                }
                self.vars.truncate(scope);
                Ok(())
            }
            Node::Range {
                pipe,
                body,
                otherwise,
            } => {
                self.step(pipe.at)?;
                let scope = self.vars.len();
                let names = pipe.decl.as_ref().map(|(n, _)| n.clone());
                let bare = Pipeline {
                    at: pipe.at,
                    decl: None,
                    cmds: pipe.cmds.clone(),
                };
                let v = self.pipeline(&bare, dot)?;
                let items = iterate(&v).map_err(|m| Raw::new(pipe.at, m))?;
                if items.is_empty() {
                    self.list(otherwise, dot)?;
                }
                for (key, item) in items {
                    self.step(pipe.at)?;
                    let inner = self.vars.len();
                    match names.as_deref() {
                        Some([elem]) => self.vars.push((elem.clone(), item.clone())),
                        Some([k, elem]) => {
                            self.vars.push((k.clone(), key));
                            self.vars.push((elem.clone(), item.clone()));
                        }
                        _ => {}
                    }
                    self.list(body, &item)?;
                    self.vars.truncate(inner);
                }
                self.vars.truncate(scope);
                Ok(())
            }
        }
    }

    fn pipeline(&mut self, p: &Pipeline, dot: &Val<'d>) -> Result<Val<'d>, Raw> {
        let mut value: Option<Val<'d>> = None;
        for cmd in &p.cmds {
            self.step(cmd.at)?;
            value = Some(self.command(cmd, dot, value)?);
        }
        let value = value.ok_or_else(|| Raw::new(p.at, "missing value"))?;
        if let Some((names, declare)) = &p.decl {
            // `$x := v` / `$x = v` (range declarations are handled by the range node).
            if let [name] = names.as_slice() {
                if *declare {
                    self.vars.push((name.clone(), value.clone()));
                } else {
                    let slot = self
                        .vars
                        .iter_mut()
                        .rev()
                        .find(|(n, _)| n == name)
                        .ok_or_else(|| Raw::new(p.at, format!("undefined variable {name}")))?;
                    slot.1 = value.clone();
                }
            } else {
                return Err(Raw::new(p.at, "only range declares two variables"));
            }
        }
        Ok(value)
    }

    fn command(
        &mut self,
        cmd: &Command,
        dot: &Val<'d>,
        piped: Option<Val<'d>>,
    ) -> Result<Val<'d>, Raw> {
        let Some(first) = cmd.operands.first() else {
            return Err(Raw::new(cmd.at, "empty command"));
        };
        if let Term::Func(name) = &first.term {
            let mut args = Vec::with_capacity(cmd.operands.len());
            for op in &cmd.operands[1..] {
                args.push(self.operand(op, dot)?);
            }
            if let Some(p) = piped {
                args.push(p);
            }
            return call(name, args).map_err(|m| Raw::new(first.at, m));
        }
        if cmd.operands.len() > 1 {
            return Err(Raw::new(
                cmd.operands[1].at,
                "a value cannot take arguments; only functions can",
            ));
        }
        if piped.is_some() {
            return Err(Raw::new(
                first.at,
                "cannot pipe a value into something that is not a function",
            ));
        }
        self.operand(first, dot)
    }

    fn operand(&mut self, op: &Operand, dot: &Val<'d>) -> Result<Val<'d>, Raw> {
        let mut v = match &op.term {
            Term::Dot => dot.clone(),
            Term::Var(name) => self
                .vars
                .iter()
                .rev()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
                .ok_or_else(|| Raw::new(op.at, format!("undefined variable {name}")))?,
            Term::Lit(j) => Val::owned(j.clone()),
            Term::Sub(p) => self.pipeline(p, dot)?,
            Term::Func(name) => {
                return Err(Raw::new(
                    op.at,
                    format!("function {name} must come first in a command (or in parentheses)"),
                ));
            }
        };
        for f in &op.fields {
            v = field(v, f).map_err(|m| Raw::new(op.at, m))?;
        }
        Ok(v)
    }
}

fn field<'d>(v: Val<'d>, name: &str) -> Result<Val<'d>, String> {
    match v {
        Val::Scope(s) => s.lookup(name).ok_or_else(|| {
            let names = s.names();
            format!(
                "no variable \"{name}\" is set (set: {})",
                if names.is_empty() {
                    "none".to_owned()
                } else {
                    names.join(", ")
                }
            )
        }),
        Val::Json(Cow::Borrowed(j)) => match j {
            Json::Object(o) => Ok(o.get(name).map_or(Val::owned(Json::Null), Val::borrowed)),
            Json::Null => Ok(Val::owned(Json::Null)),
            other => Err(format!("can't read field {name} of a {}", kind(other))),
        },
        Val::Json(Cow::Owned(j)) => match j {
            Json::Object(mut o) => Ok(Val::owned(o.remove(name).unwrap_or(Json::Null))),
            Json::Null => Ok(Val::owned(Json::Null)),
            other => Err(format!("can't read field {name} of a {}", kind(&other))),
        },
        Val::Chat(m) if name == "messages" => Ok(Val::List(m)),
        Val::Chat(_) => Err(format!(
            "a chat history has no field {name} (only .messages)"
        )),
        Val::List(_) => Err(format!("can't read field {name} of a list")),
    }
}

fn kind(j: &Json) -> &'static str {
    match j {
        Json::Null => "null",
        Json::Bool(_) => "boolean",
        Json::Number(_) => "number",
        Json::String(_) => "string",
        Json::Array(_) => "array",
        Json::Object(_) => "object",
    }
}

/// Text of a number as Go's `%v` prints it (integers without a decimal point).
pub fn number_text(n: &Number) -> String {
    if let Some(i) = n.as_i64() {
        return i.to_string();
    }
    if let Some(u) = n.as_u64() {
        return u.to_string();
    }
    let f = n.as_f64().unwrap_or(0.0);
    float_text(f)
}

/// Shortest text of a float; whole numbers without a decimal point.
pub fn float_text(f: f64) -> String {
    if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e15 {
        format!("{}", f as i64)
    } else {
        format!("{f}")
    }
}

/// The text of the last message of a chat history.
pub fn last_message_text(messages: &[Json]) -> String {
    messages
        .last()
        .map(crate::classify::message_text)
        .unwrap_or_default()
}

/// How a value prints.
fn to_text(v: &Val<'_>) -> Result<String, String> {
    Ok(match v {
        Val::Json(j) => json_text(j),
        Val::Chat(m) => last_message_text(m),
        Val::List(l) => Json::Array(l.to_vec()).to_string(),
        Val::Scope(_) => {
            return Err("cannot print the whole variable set; name a variable (.input)".into());
        }
    })
}

fn json_text(j: &Json) -> String {
    match j {
        Json::Null => String::new(),
        Json::Bool(b) => b.to_string(),
        Json::Number(n) => number_text(n),
        Json::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn truthy(v: &Val<'_>) -> bool {
    match v {
        Val::Json(j) => match j.as_ref() {
            Json::Null => false,
            Json::Bool(b) => *b,
            Json::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
            Json::String(s) => !s.is_empty(),
            Json::Array(a) => !a.is_empty(),
            Json::Object(o) => !o.is_empty(),
        },
        Val::Chat(m) | Val::List(m) => !m.is_empty(),
        Val::Scope(_) => true,
    }
}

/// The items of a range: (key or index, value).
fn iterate<'d>(v: &Val<'d>) -> Result<Vec<(Val<'d>, Val<'d>)>, String> {
    let idx = |i: usize| Val::owned(Json::Number((i as u64).into()));
    Ok(match v {
        Val::Json(Cow::Borrowed(j)) => match j {
            Json::Array(a) => a
                .iter()
                .enumerate()
                .map(|(i, x)| (idx(i), Val::borrowed(x)))
                .collect(),
            Json::Object(o) => {
                let mut keys: Vec<&String> = o.keys().collect();
                keys.sort();
                keys.into_iter()
                    .filter_map(|k| {
                        o.get(k)
                            .map(|x| (Val::owned(Json::String(k.clone())), Val::borrowed(x)))
                    })
                    .collect()
            }
            other => return range_scalar(other),
        },
        Val::Json(Cow::Owned(j)) => match j {
            Json::Array(a) => a
                .iter()
                .enumerate()
                .map(|(i, x)| (idx(i), Val::owned(x.clone())))
                .collect(),
            Json::Object(o) => {
                let mut keys: Vec<&String> = o.keys().collect();
                keys.sort();
                keys.into_iter()
                    .filter_map(|k| {
                        o.get(k)
                            .map(|x| (Val::owned(Json::String(k.clone())), Val::owned(x.clone())))
                    })
                    .collect()
            }
            other => return range_scalar(other),
        },
        Val::Chat(m) | Val::List(m) => m
            .iter()
            .enumerate()
            .map(|(i, x)| (idx(i), Val::borrowed(x)))
            .collect(),
        Val::Scope(_) => return Err("cannot range over the variable set".into()),
    })
}

fn range_scalar<'d>(j: &Json) -> Result<Vec<(Val<'d>, Val<'d>)>, String> {
    match j {
        Json::Null => Ok(Vec::new()),
        Json::Number(n) => {
            let count = n
                .as_u64()
                .ok_or_else(|| format!("cannot range over {}", number_text(n)))?;
            let count = usize::try_from(count)
                .unwrap_or(usize::MAX)
                .min(MAX_STEPS + 1);
            Ok((0..count)
                .map(|i| {
                    let v = Val::owned(Json::Number((i as u64).into()));
                    (v.clone(), v)
                })
                .collect())
        }
        other => Err(format!("cannot range over a {}", kind(other))),
    }
}

/// A value as JSON for comparison and encoding (a chat history: its last message's text for
/// comparisons).
fn scalar(v: &Val<'_>) -> Result<Json, String> {
    match v {
        Val::Json(j) => Ok(j.as_ref().clone()),
        Val::Chat(m) => Ok(Json::String(last_message_text(m))),
        Val::List(l) => Ok(Json::Array(l.to_vec())),
        Val::Scope(_) => Err("cannot compare the variable set".into()),
    }
}

fn equal(a: &Json, b: &Json) -> bool {
    match (a, b) {
        (Json::Number(x), Json::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

fn order(a: &Json, b: &Json) -> Result<std::cmp::Ordering, String> {
    match (a, b) {
        (Json::Number(x), Json::Number(y)) => x
            .as_f64()
            .zip(y.as_f64())
            .and_then(|(x, y)| x.partial_cmp(&y))
            .ok_or_else(|| "numbers that cannot be compared".to_owned()),
        (Json::String(x), Json::String(y)) => Ok(x.cmp(y)),
        _ => Err(format!(
            "incompatible types for comparison: {} and {}",
            kind(a),
            kind(b)
        )),
    }
}

fn arity(name: &str, args: &[Val<'_>], n: usize) -> Result<(), String> {
    if args.len() == n {
        Ok(())
    } else {
        Err(format!(
            "{name} takes {n} argument{}, got {}",
            if n == 1 { "" } else { "s" },
            args.len()
        ))
    }
}

fn text_arg(v: &Val<'_>) -> Result<String, String> {
    to_text(v)
}

fn call<'d>(name: &str, args: Vec<Val<'d>>) -> Result<Val<'d>, String> {
    let bool_val = |b: bool| Val::owned(Json::Bool(b));
    match name {
        "and" | "or" => {
            if args.is_empty() {
                return Err(format!("{name} needs at least one argument"));
            }
            let want = name == "or";
            let mut last = None;
            for a in args {
                if truthy(&a) == want {
                    return Ok(a);
                }
                last = Some(a);
            }
            last.ok_or_else(|| format!("{name} needs at least one argument"))
        }
        "not" => {
            arity(name, &args, 1)?;
            Ok(bool_val(!truthy(&args[0])))
        }
        "eq" | "ne" => {
            if args.len() < 2 {
                return Err(format!("{name} needs at least two arguments"));
            }
            let first = scalar(&args[0])?;
            let mut any = false;
            for a in &args[1..] {
                if equal(&first, &scalar(a)?) {
                    any = true;
                }
            }
            Ok(bool_val(if name == "eq" { any } else { !any }))
        }
        "lt" | "le" | "gt" | "ge" => {
            arity(name, &args, 2)?;
            let o = order(&scalar(&args[0])?, &scalar(&args[1])?)?;
            use std::cmp::Ordering::*;
            Ok(bool_val(match name {
                "lt" => o == Less,
                "le" => o != Greater,
                "gt" => o == Greater,
                _ => o != Less,
            }))
        }
        "len" => {
            arity(name, &args, 1)?;
            let n = match &args[0] {
                Val::Json(j) => match j.as_ref() {
                    Json::String(s) => s.len(),
                    Json::Array(a) => a.len(),
                    Json::Object(o) => o.len(),
                    Json::Null => 0,
                    other => return Err(format!("len of a {}", kind(other))),
                },
                Val::Chat(m) | Val::List(m) => m.len(),
                Val::Scope(s) => s.names().len(),
            };
            Ok(Val::owned(Json::Number((n as u64).into())))
        }
        "index" => {
            let mut it = args.into_iter();
            let mut v = it
                .next()
                .ok_or_else(|| "index needs a value to index".to_owned())?;
            for key in it {
                v = index(v, &key)?;
            }
            Ok(v)
        }
        "print" | "println" => {
            let mut out = String::new();
            let mut prev_string = true;
            for (i, a) in args.iter().enumerate() {
                let is_string = matches!(a, Val::Json(j) if j.is_string());
                if i > 0 && (name == "println" || (!is_string && !prev_string)) {
                    out.push(' ');
                }
                out.push_str(&text_arg(a)?);
                prev_string = is_string;
            }
            if name == "println" {
                out.push('\n');
            }
            Ok(Val::owned(Json::String(out)))
        }
        "printf" => {
            let mut it = args.iter();
            let format = it
                .next()
                .ok_or_else(|| "printf needs a format".to_owned())
                .and_then(text_arg)?;
            printf(&format, it.collect()).map(|s| Val::owned(Json::String(s)))
        }
        "json" => {
            arity(name, &args, 1)?;
            let j = match &args[0] {
                Val::Chat(m) => {
                    let mut o = Map::new();
                    o.insert("messages".into(), Json::Array(m.to_vec()));
                    Json::Object(o)
                }
                other => scalar(other)?,
            };
            Ok(Val::owned(Json::String(j.to_string())))
        }
        "lower" | "upper" | "trim" => {
            arity(name, &args, 1)?;
            let s = text_arg(&args[0])?;
            Ok(Val::owned(Json::String(match name {
                "lower" => s.to_lowercase(),
                "upper" => s.to_uppercase(),
                _ => s.trim().to_owned(),
            })))
        }
        "contains" => {
            arity(name, &args, 2)?;
            Ok(bool_val(text_arg(&args[1])?.contains(&text_arg(&args[0])?)))
        }
        "join" => {
            arity(name, &args, 2)?;
            let sep = text_arg(&args[0])?;
            let items: Vec<String> = match &args[1] {
                Val::Json(j) => match j.as_ref() {
                    Json::Array(a) => a.iter().map(json_text).collect(),
                    Json::Null => Vec::new(),
                    other => return Err(format!("join needs a list, got a {}", kind(other))),
                },
                Val::Chat(m) | Val::List(m) => m.iter().map(json_text).collect(),
                Val::Scope(_) => return Err("join needs a list".into()),
            };
            Ok(Val::owned(Json::String(items.join(&sep))))
        }
        "default" => {
            arity(name, &args, 2)?;
            let mut it = args.into_iter();
            match (it.next(), it.next()) {
                (Some(fallback), Some(v)) => Ok(if truthy(&v) { v } else { fallback }),
                _ => Err("default takes 2 arguments".into()),
            }
        }
        "html" | "js" | "urlquery" | "slice" | "call" => {
            Err(format!("function {name} is not supported"))
        }
        other => Err(format!("unknown function {other}")),
    }
}

fn index<'d>(v: Val<'d>, key: &Val<'_>) -> Result<Val<'d>, String> {
    let key = scalar(key)?;
    let position = |len: usize| -> Result<usize, String> {
        let i = key
            .as_i64()
            .ok_or_else(|| format!("index of a list must be an integer, got {key}"))?;
        usize::try_from(i)
            .ok()
            .filter(|&i| i < len)
            .ok_or_else(|| format!("index {i} out of range (length {len})"))
    };
    match v {
        Val::Chat(m) | Val::List(m) => {
            let i = position(m.len())?;
            Ok(Val::borrowed(&m[i]))
        }
        Val::Json(Cow::Borrowed(j)) => match j {
            Json::Array(a) => {
                let i = position(a.len())?;
                Ok(Val::borrowed(&a[i]))
            }
            Json::Object(o) => {
                let k = key.as_str().ok_or("index of an object must be a string")?;
                Ok(o.get(k).map_or(Val::owned(Json::Null), Val::borrowed))
            }
            Json::Null => Ok(Val::owned(Json::Null)),
            other => Err(format!("cannot index a {}", kind(other))),
        },
        Val::Json(Cow::Owned(j)) => match j {
            Json::Array(mut a) => {
                let i = position(a.len())?;
                Ok(Val::owned(a.swap_remove(i)))
            }
            Json::Object(mut o) => {
                let k = key.as_str().ok_or("index of an object must be a string")?;
                Ok(Val::owned(o.remove(k).unwrap_or(Json::Null)))
            }
            Json::Null => Ok(Val::owned(Json::Null)),
            other => Err(format!("cannot index a {}", kind(&other))),
        },
        Val::Scope(s) => {
            let k = key
                .as_str()
                .ok_or("index of the variable set must be a string")?;
            field(Val::Scope(s), k)
        }
    }
}

/// `printf` with the verbs `%v %s %d %f %.Nf %q %t %%`.
fn printf(format: &str, args: Vec<&Val<'_>>) -> Result<String, String> {
    let mut out = String::new();
    let mut args = args.into_iter();
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut precision: Option<usize> = None;
        if chars.peek() == Some(&'.') {
            chars.next();
            let mut digits = String::new();
            while let Some(d) = chars.next_if(char::is_ascii_digit) {
                digits.push(d);
            }
            precision = Some(digits.parse().unwrap_or(0).min(20));
        }
        let verb = chars
            .next()
            .ok_or_else(|| "printf format ends with %".to_owned())?;
        if verb == '%' {
            out.push('%');
            continue;
        }
        let arg = args
            .next()
            .ok_or_else(|| format!("printf: missing argument for %{verb}"))?;
        let j = scalar(arg)?;
        match verb {
            'v' | 's' => out.push_str(&text_arg(arg)?),
            'd' => {
                let n = j
                    .as_f64()
                    .filter(|f| f.fract() == 0.0)
                    .ok_or_else(|| format!("printf %d needs an integer, got {}", json_text(&j)))?;
                out.push_str(&float_text(n));
            }
            'f' => {
                let n = j
                    .as_f64()
                    .ok_or_else(|| format!("printf %f needs a number, got {}", json_text(&j)))?;
                out.push_str(&format!("{:.*}", precision.unwrap_or(6), n));
            }
            'q' => out.push_str(&Json::String(text_arg(arg)?).to_string()),
            't' => {
                let b = j
                    .as_bool()
                    .ok_or_else(|| format!("printf %t needs a boolean, got {}", json_text(&j)))?;
                out.push_str(&b.to_string());
            }
            other => return Err(format!("printf verb %{other} is not supported")),
        }
    }
    if args.next().is_some() {
        return Err("printf: more arguments than verbs".into());
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;

    #[derive(Debug)]
    struct Vars(BTreeMap<String, Json>);

    impl Scope for Vars {
        fn lookup(&self, name: &str) -> Option<Val<'_>> {
            self.0.get(name).map(Val::borrowed)
        }
        fn names(&self) -> Vec<String> {
            self.0.keys().cloned().collect()
        }
    }

    fn vars(v: Json) -> Vars {
        Vars(
            v.as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        )
    }

    fn r(src: &str, data: Json) -> Result<String, TemplateError> {
        let v = vars(data);
        render(src, Val::Scope(&v))
    }

    fn ok(src: &str, data: Json) -> String {
        r(src, data).unwrap()
    }

    #[test]
    fn seed_usage() {
        let data = json!({"input": "hello", "previous_output": 7, "validate_input": "valid"});
        assert_eq!(
            ok("Rate the quality from 1-10: {{.input}}", data.clone()),
            "Rate the quality from 1-10: hello"
        );
        assert_eq!(
            ok("The score is: {{.previous_output}}", data.clone()),
            "The score is: 7"
        );
        assert_eq!(
            ok("Validation result: {{ .validate_input }}", data),
            "Validation result: valid"
        );
    }

    #[test]
    fn json_field_access_as_in_hook_output() {
        let hook = json!({"weather": "sunny", "temperature": 21.0, "wind": {"kmh": 12.5}, "tags": ["a", "b"]});
        let out = render(
            "The weather is {{.weather}} with a temperature of {{.temperature}} ({{.wind.kmh}} km/h, {{index .tags 1}}).",
            Val::borrowed(&hook),
        )
        .unwrap();
        assert_eq!(
            out,
            "The weather is sunny with a temperature of 21 (12.5 km/h, b)."
        );
        // Missing fields inside JSON are null: empty, and falsy.
        assert_eq!(
            render(
                "[{{.nope}}]{{if .nope}}yes{{else}}no{{end}}",
                Val::borrowed(&hook)
            )
            .unwrap(),
            "[]no"
        );
        assert_eq!(
            render("{{.nope | default \"n/a\"}}", Val::borrowed(&hook)).unwrap(),
            "n/a"
        );
    }

    #[test]
    fn unknown_variable_is_an_error_naming_the_set() {
        let e = r(
            "Hi {{.inptu}}",
            json!({"input": "x", "previous_output": "y"}),
        )
        .unwrap_err();
        assert_eq!((e.line, e.column), (1, 6));
        assert!(e.message.contains("no variable \"inptu\""), "{e}");
        assert!(e.message.contains("input, previous_output"), "{e}");
    }

    #[test]
    fn control_structures() {
        let data = json!({"items": [{"n": "a", "v": 1}, {"n": "b", "v": 2}], "m": {"z": 1, "a": 2}, "flag": false, "x": 5});
        assert_eq!(
            ok("{{range .items}}{{.n}}={{.v}};{{end}}", data.clone()),
            "a=1;b=2;"
        );
        assert_eq!(
            ok(
                "{{range $i, $e := .items}}{{$i}}:{{$e.n}} {{end}}",
                data.clone()
            ),
            "0:a 1:b "
        );
        assert_eq!(
            ok("{{range $k, $v := .m}}{{$k}}{{$v}}{{end}}", data.clone()),
            "a2z1"
        );
        assert_eq!(
            ok("{{range .none}}x{{else}}empty{{end}}", json!({"none": []})),
            "empty"
        );
        assert_eq!(
            ok(
                "{{if .flag}}a{{else if gt .x 3}}b{{else}}c{{end}}",
                data.clone()
            ),
            "b"
        );
        assert_eq!(ok("{{with .m}}{{.a}}{{end}}", data.clone()), "2");
        assert_eq!(ok("{{$y := .x}}{{$y}}{{$y = 6}}{{$y}}", data.clone()), "56");
        assert_eq!(ok("{{range 3}}{{.}}{{end}}", data), "012");
    }

    #[test]
    fn trim_markers_and_comments() {
        let data = json!({"a": "A"});
        assert_eq!(ok("x  {{- .a -}}  y", data.clone()), "xAy");
        assert_eq!(
            ok("x {{/* a comment with }} and \" */}} y", data.clone()),
            "x  y"
        );
        assert_eq!(ok("x {{- /* c */ -}} y", data), "xy");
    }

    #[test]
    fn functions() {
        let data = json!({"s": " Hello ", "n": 7.5, "l": ["a", "b"], "t": true});
        assert_eq!(ok("{{trim .s | lower}}", data.clone()), "hello");
        assert_eq!(
            ok("{{upper \"x\"}}{{len .l}}{{join \", \" .l}}", data.clone()),
            "X2a, b"
        );
        assert_eq!(
            ok(
                "{{printf \"%s|%.1f|%d|%q|%t|%%\" .l 2.25 3 \"q\" .t}}",
                data.clone()
            ),
            "[\"a\",\"b\"]|2.2|3|\"q\"|true|%"
        );
        assert_eq!(ok("{{print 1 2 \"a\" \"b\"}}", data.clone()), "1 2ab");
        assert_eq!(ok("{{json .l}}", data.clone()), "[\"a\",\"b\"]");
        assert_eq!(
            ok("{{and .t 0}}|{{or 0 \"\" .n}}|{{not .t}}", data.clone()),
            "0|7.5|false"
        );
        assert_eq!(
            ok(
                "{{eq .n 7.5}} {{eq 1 2 1}} {{ne \"a\" \"b\"}} {{le 2 2}}",
                data.clone()
            ),
            "true true true true"
        );
        assert_eq!(ok("{{contains \"ell\" .s}}", data.clone()), "true");
        assert_eq!(ok("{{(index .l 0) | upper}}", data.clone()), "A");
        assert!(
            r("{{lt 1 \"a\"}}", data.clone())
                .unwrap_err()
                .message
                .contains("incompatible")
        );
        assert!(
            r("{{nope 1}}", data.clone())
                .unwrap_err()
                .message
                .contains("unknown function")
        );
        assert!(
            r("{{index .l 5}}", data)
                .unwrap_err()
                .message
                .contains("out of range")
        );
    }

    #[test]
    fn chat_history_prints_its_last_message() {
        let msgs = vec![
            json!({"role": "system", "content": "be nice"}),
            json!({"role": "user", "content": [{"type": "text", "text": "I love it"}]}),
        ];
        #[derive(Debug)]
        struct Chat<'a>(&'a [Json]);
        impl Scope for Chat<'_> {
            fn lookup(&self, name: &str) -> Option<Val<'_>> {
                (name == "input").then_some(Val::Chat(self.0))
            }
            fn names(&self) -> Vec<String> {
                vec!["input".into()]
            }
        }
        let s = Chat(&msgs);
        let out = render(
            "{{.input}}|{{len .input}}|{{range .input.messages}}{{.role}} {{end}}|{{eq .input \"I love it\"}}",
            Val::Scope(&s),
        )
        .unwrap();
        assert_eq!(out, "I love it|2|system user |true");
    }

    #[test]
    fn parse_errors_have_positions() {
        for (src, line, col, needle) in [
            ("a {{.x", 1, 3, "unclosed action"),
            ("a\n  {{if .x}}b", 2, 3, "without a matching {{end}}"),
            ("{{end}}", 1, 1, "unexpected {{end}}"),
            ("{{.x | }}", 1, 6, "missing command"),
            ("{{\"abc}}", 1, 1, "unclosed action"),
            ("{{define \"x\"}}{{end}}", 1, 1, "not supported"),
            ("{{.x 1}}", 1, 6, "cannot take arguments"),
            ("{{}}", 1, 1, "empty action"),
            ("{{/* x }}", 1, 1, "unclosed"),
        ] {
            let e = Template::parse(src)
                .and_then(|t| {
                    let v = vars(json!({"x": 1}));
                    t.render(Val::Scope(&v))
                })
                .unwrap_err();
            assert!(e.message.contains(needle), "{src}: {e}");
            assert_eq!((e.line, e.column), (line, col), "{src}: {e}");
        }
    }

    #[test]
    fn output_and_work_are_bounded() {
        let big = "x".repeat(600_000);
        let e = r("{{.b}}{{.b}}", json!({"b": big})).unwrap_err();
        assert!(e.message.contains("larger than"), "{e}");
        let e = r("{{range 1000}}{{range 1000}}{{end}}{{end}}", json!({})).unwrap_err();
        assert!(e.message.contains("evaluation steps"), "{e}");
        let deep = format!("{}1{}", "(".repeat(200), ")".repeat(200));
        let e = r(&format!("{{{{{deep}}}}}"), json!({})).unwrap_err();
        assert!(e.message.contains("nested deeper"), "{e}");
        let nested = "{{if 1}}".repeat(100) + &"{{end}}".repeat(100);
        assert!(
            r(&nested, json!({}))
                .unwrap_err()
                .message
                .contains("nested deeper")
        );
    }

    #[test]
    fn printing_the_root_is_an_error() {
        assert!(
            r("{{.}}", json!({}))
                .unwrap_err()
                .message
                .contains("variable set")
        );
        assert_eq!(ok("{{$.a}}", json!({"a": 1})), "1");
    }

    #[test]
    fn no_panic_on_odd_input() {
        for src in [
            "{{",
            "}}",
            "{{-",
            "{{- }}",
            "{{ -}}",
            "{{.}}}",
            "{{(}}",
            "{{)}}",
            "{{$}}",
            "{{$x}}",
            "{{:=}}",
            "{{$a, $b := 1}}",
            "{{1 | 2}}",
            "{{\"\\",
            "{{`",
            "{{'a'}}",
            "{{.a.}}",
            "{{..}}",
            "{{-1}}",
            "{{- -}}",
            "é{{.é}}ü",
            "{{range $a, $b, $c := 1}}{{end}}",
            "{{else}}",
            "{{if}}{{end}}",
            "{{printf \"%\"}}",
            "{{printf \"%z\" 1}}",
        ] {
            let _ = r(src, json!({"a": {"b": 1}}));
        }
    }
}
