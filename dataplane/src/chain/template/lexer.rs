//! The lexer: splits the inside of an action (`{{ … }}`) into tokens (fields, variables,
//! identifiers, literals, punctuation).

use serde_json::{Number, Value as Json};

use super::Raw;

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Tok {
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
pub(super) struct Token {
    pub(super) tok: Tok,
    pub(super) at: usize,
    /// No whitespace between this token and the previous one.
    pub(super) glued: bool,
}

fn is_ident_char(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// Splits the inside of an action into tokens (`base` is its offset in the template).
pub(super) fn tokenize(s: &str, base: usize) -> Result<Vec<Token>, Raw> {
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
