//! The evaluator: runs a parsed template against its data (how values print and test true is
//! `value`).

use std::borrow::Cow;

use serde_json::Value as Json;

use super::functions::call;
use super::parser::{Command, Node, Operand, Pipeline, Term};
use super::value::{field, kind, number_text, to_text, truthy};
use super::{MAX_OUTPUT_BYTES, MAX_STEPS, Raw, Val};

pub(super) struct Eval<'d> {
    pub(super) out: String,
    pub(super) steps: usize,
    pub(super) vars: Vec<(String, Val<'d>)>,
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

    pub(super) fn list(&mut self, nodes: &[Node], dot: &Val<'d>) -> Result<(), Raw> {
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
