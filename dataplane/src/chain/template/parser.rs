//! The parser: the syntax tree, and the parser that builds it from the template text (text,
//! actions, blocks with their `{{else}}`/`{{end}}`, pipelines and commands).

use serde_json::Value as Json;

use super::lexer::{Tok, Token, tokenize};
use super::{MAX_NESTING, Raw};

// ---------------------------------------------------------------------------------------------
// Syntax tree

#[derive(Debug, Clone)]
pub(super) enum Node {
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
pub(super) struct Pipeline {
    pub(super) at: usize,
    /// `$a, $b :=` (declare) or `$a =` (assign).
    pub(super) decl: Option<(Vec<String>, bool)>,
    pub(super) cmds: Vec<Command>,
}

#[derive(Debug, Clone)]
pub(super) struct Command {
    pub(super) at: usize,
    pub(super) operands: Vec<Operand>,
}

#[derive(Debug, Clone)]
pub(super) struct Operand {
    pub(super) at: usize,
    pub(super) term: Term,
    pub(super) fields: Vec<String>,
}

#[derive(Debug, Clone)]
pub(super) enum Term {
    Dot,
    Var(String),
    Func(String),
    Lit(Json),
    Sub(Box<Pipeline>),
}

// ---------------------------------------------------------------------------------------------
// Parser

/// How a list of nodes ended.
pub(super) enum Stop {
    Eof,
    End(usize),
    Else(usize),
    ElseIf(Pipeline, usize),
}

pub(super) struct Parser<'s> {
    pub(super) src: &'s str,
    pub(super) pos: usize,
    pub(super) depth: usize,
    /// The previous action ended with ` -}}`: trim the leading whitespace of the next text.
    pub(super) pending_trim: bool,
}

impl Parser<'_> {
    /// Parses nodes until the end of input or an `{{end}}` / `{{else…}}`.
    pub(super) fn list(&mut self) -> Result<(Vec<Node>, Stop), Raw> {
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
