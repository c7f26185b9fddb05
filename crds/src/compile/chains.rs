//! TaskChains: graph validation (ids, gotos, reachability of `end`), handler requirements,
//! hooks and their Secret headers, explicit model targets.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use super::targets::{self, Usable};
use super::{ConditionType, Cx, Details, Kind, Severity, headers, sorted};
use crate::snapshot::{HookSnapshot, TaskChainSnapshot};
use crate::task_chain::{END, Handler, Operator, TaskChainSpec, TaskSpec};

/// Hook timeout when a hook names none.
pub const DEFAULT_HOOK_TIMEOUT_MS: u64 = 10_000;

pub(crate) fn compile(cx: &mut Cx<'_>, usable: &Usable<'_>) -> Vec<TaskChainSnapshot> {
    let inv = cx.inv;
    let mut out = Vec::new();
    for (key, c) in sorted(cx, Kind::TaskChain, &inv.task_chains, || {
        Details::TaskChain { task_count: 0 }
    }) {
        let spec = &c.spec;
        cx.set_details(
            &key,
            Details::TaskChain {
                task_count: spec.tasks.len() as u32,
            },
        );
        for problem in graph_problems(spec) {
            cx.error(&key, ConditionType::Ready, "InvalidGraph", problem);
        }
        for problem in unreachable_tasks(spec) {
            cx.warn(&key, ConditionType::Ready, "UnreachableTask", problem);
        }
        let hook_names: BTreeSet<&str> = spec.hooks.iter().map(|h| h.name.as_str()).collect();
        for problem in handler_problems(spec, &hook_names) {
            cx.error(&key, ConditionType::Ready, "InvalidTask", problem);
        }
        let mut hooks = Vec::new();
        let mut seen = BTreeSet::new();
        for h in &spec.hooks {
            if !seen.insert(h.name.as_str()) {
                cx.error(
                    &key,
                    ConditionType::Ready,
                    "InvalidHook",
                    format!("hook \"{}\" is declared twice", h.name),
                );
                continue;
            }
            let headers = headers(cx, &key, Severity::Error, &h.headers);
            hooks.push(HookSnapshot {
                name: h.name.clone(),
                url: h.url.clone(),
                timeout_ms: h
                    .timeout
                    .map_or(DEFAULT_HOOK_TIMEOUT_MS, |t| t.get().as_millis() as u64),
                headers,
                properties: h.properties.clone(),
            });
        }
        let mut task_targets = BTreeMap::new();
        for t in &spec.tasks {
            if let Some(target) = t.execute.as_ref().and_then(|e| e.target.as_ref()) {
                let field = format!("task \"{}\": execute.target", t.id);
                if let Some(resolved) =
                    targets::resolve(cx, usable, &key, Severity::Error, &field, target)
                {
                    task_targets.insert(t.id.clone(), resolved);
                }
            }
        }
        if cx.has_error(&key) {
            continue;
        }
        out.push(TaskChainSnapshot {
            key: key.key(),
            description: spec.description.clone(),
            debug: spec.debug,
            token_limit: spec.token_limit,
            max_steps: spec.max_steps,
            hooks,
            tasks: spec.tasks.clone(),
            task_targets,
        });
    }
    out
}

/// Successor task ids of a task (`end` included). A task without branches ends the chain.
fn successors(t: &TaskSpec) -> Vec<&str> {
    let mut next: Vec<&str> = t
        .transition
        .branches
        .iter()
        .map(|b| b.goto.as_str())
        .collect();
    if t.transition.branches.is_empty() {
        next.push(END);
    }
    if let Some(f) = &t.transition.on_failure {
        next.push(f.as_str());
    }
    next
}

/// Structural problems: ids, gotos, operators, and whether `end` can be reached.
pub(crate) fn graph_problems(spec: &TaskChainSpec) -> Vec<String> {
    let mut problems = Vec::new();
    let mut positions: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, t) in spec.tasks.iter().enumerate() {
        positions.entry(t.id.as_str()).or_default().push(i);
    }
    for (id, at) in &positions {
        if at.len() > 1 {
            let list: Vec<String> = at.iter().map(|i| i.to_string()).collect();
            problems.push(format!(
                "duplicate task id \"{id}\" (tasks {})",
                list.join(", ")
            ));
        }
    }
    if positions.contains_key(END) {
        problems.push(format!(
            "task id \"{END}\" is reserved for ending the chain"
        ));
    }
    let known = |id: &str| id == END || positions.contains_key(id);
    for t in &spec.tasks {
        for b in &t.transition.branches {
            if !known(&b.goto) {
                problems.push(format!(
                    "task \"{}\": goto \"{}\" is not a task id or \"{END}\"",
                    t.id, b.goto
                ));
            }
            if let Some(p) = operator_problem(b.operator, &b.when) {
                problems.push(format!("task \"{}\": branch to \"{}\": {p}", t.id, b.goto));
            }
        }
        if let Some(f) = &t.transition.on_failure
            && !known(f)
        {
            problems.push(format!(
                "task \"{}\": onFailure \"{f}\" is not a task id or \"{END}\"",
                t.id
            ));
        }
        let defaults = t
            .transition
            .branches
            .iter()
            .filter(|b| b.operator == Operator::Default)
            .count();
        if defaults > 1 {
            problems.push(format!(
                "task \"{}\": {defaults} default branches; at most one is allowed",
                t.id
            ));
        }
    }
    if !problems.is_empty() {
        return problems;
    }
    // Every task reachable from the first must be able to reach `end`, or a run that gets
    // there can only loop until the step limit.
    let Some(first) = spec.tasks.first() else {
        return vec!["no tasks".into()];
    };
    let by_id: BTreeMap<&str, &TaskSpec> = spec.tasks.iter().map(|t| (t.id.as_str(), t)).collect();
    let mut reaches_end: BTreeSet<&str> = BTreeSet::new();
    loop {
        let before = reaches_end.len();
        for t in &spec.tasks {
            if successors(t)
                .iter()
                .any(|s| *s == END || reaches_end.contains(s))
            {
                reaches_end.insert(t.id.as_str());
            }
        }
        if reaches_end.len() == before {
            break;
        }
    }
    for id in reachable(first.id.as_str(), &by_id) {
        if !reaches_end.contains(id) {
            let loop_ids: Vec<&str> = reachable(id, &by_id).into_iter().collect();
            problems.push(format!(
                "task \"{id}\" can never reach \"{END}\" (from it only {} can run)",
                loop_ids
                    .iter()
                    .map(|s| format!("\"{s}\""))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }
    problems
}

/// Tasks that no path from the first task reaches.
fn unreachable_tasks(spec: &TaskChainSpec) -> Vec<String> {
    let Some(first) = spec.tasks.first() else {
        return Vec::new();
    };
    let by_id: BTreeMap<&str, &TaskSpec> = spec.tasks.iter().map(|t| (t.id.as_str(), t)).collect();
    let seen = reachable(first.id.as_str(), &by_id);
    spec.tasks
        .iter()
        .filter(|t| !seen.contains(t.id.as_str()))
        .map(|t| {
            format!(
                "task \"{}\" is never reached from the first task \"{}\"",
                t.id, first.id
            )
        })
        .collect()
}

fn reachable<'a>(from: &'a str, by_id: &BTreeMap<&'a str, &'a TaskSpec>) -> BTreeSet<&'a str> {
    let mut seen = BTreeSet::from([from]);
    let mut queue = VecDeque::from([from]);
    while let Some(id) = queue.pop_front() {
        let Some(t) = by_id.get(id) else { continue };
        for s in successors(t) {
            if s != END && by_id.contains_key(s) && seen.insert(s) {
                queue.push_back(s);
            }
        }
    }
    seen
}

fn operator_problem(op: Operator, when: &str) -> Option<String> {
    match op {
        Operator::Gt | Operator::GreaterSymbol | Operator::Lt | Operator::LessSymbol => when
            .trim()
            .parse::<f64>()
            .map_or(true, |n| !n.is_finite())
            .then(|| {
                format!(
                    "operator {} needs a number in `when`, got {when:?}",
                    op.as_str()
                )
            }),
        Operator::InRange => crate::task_chain_range(when)
            .is_none()
            .then(|| format!("operator in_range needs `when` as \"min-max\", got {when:?}")),
        _ => None,
    }
}

/// Per-handler requirements and references to variables and hooks.
pub(crate) fn handler_problems(spec: &TaskChainSpec, hooks: &BTreeSet<&str>) -> Vec<String> {
    let mut problems = Vec::new();
    let mut vars: BTreeSet<String> = ["input", "previous_output"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    for t in &spec.tasks {
        vars.insert(t.id.clone());
        vars.insert(format!("{}_composed", t.id));
    }
    for t in &spec.tasks {
        let id = &t.id;
        let has_model = t
            .execute
            .as_ref()
            .is_some_and(|e| e.model.is_some() || !e.models.is_empty() || e.target.is_some());
        match t.handler {
            Handler::ConditionKey => {
                if t.valid_conditions.is_empty() {
                    problems.push(format!(
                        "task \"{id}\": handler condition_key requires validConditions"
                    ));
                }
                for b in &t.transition.branches {
                    if b.operator == Operator::Equals
                        && !t.valid_conditions.is_empty()
                        && !t.valid_conditions.contains(&b.when)
                    {
                        problems.push(format!(
                            "task \"{id}\": branch when {:?} is not one of validConditions ({})",
                            b.when,
                            t.valid_conditions.join(", ")
                        ));
                    }
                }
            }
            Handler::Hook => match &t.hook {
                None => problems.push(format!("task \"{id}\": handler hook requires hook")),
                Some(h) if !hooks.contains(h.name.as_str()) => problems.push(format!(
                    "task \"{id}\": hook \"{}\" is not declared in spec.hooks",
                    h.name
                )),
                Some(_) => {}
            },
            Handler::ModelExecution | Handler::Embedding if !has_model => {
                problems.push(format!(
                    "task \"{id}\": handler {} requires execute with model, models or target",
                    t.handler.as_str()
                ));
            }
            _ => {}
        }
        if t.handler != Handler::Hook && t.hook.is_some() {
            problems.push(format!("task \"{id}\": hook is only used by handler hook"));
        }
        for h in t.execute.iter().flat_map(|e| &e.hooks) {
            if !hooks.contains(h.as_str()) {
                problems.push(format!(
                    "task \"{id}\": execute.hooks names undeclared hook \"{h}\""
                ));
            }
        }
        if let Some(v) = &t.input_var
            && !vars.contains(v)
        {
            problems.push(format!(
                "task \"{id}\": inputVar \"{v}\" is not input, previous_output or a task id"
            ));
        }
        if let Some(c) = &t.compose
            && !vars.contains(&c.with_var)
        {
            problems.push(format!(
                "task \"{id}\": compose.withVar \"{}\" is not input, previous_output or a task id",
                c.with_var
            ));
        }
        for (field, text) in [
            ("promptTemplate", &t.prompt_template),
            ("print", &t.print),
            ("outputTemplate", &t.output_template),
            ("systemInstruction", &t.system_instruction),
        ] {
            if let Some(text) = text
                && let Some(p) = template_delimiter_problem(text)
            {
                problems.push(format!("task \"{id}\": {field}: {p}"));
            }
        }
    }
    problems
}

/// Checks that `{{` and `}}` pair up (the template engine reports finer errors at run time).
fn template_delimiter_problem(text: &str) -> Option<String> {
    let mut rest = text;
    let mut offset = 0;
    while let Some(open) = rest.find("{{") {
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            return Some(format!(
                "\"{{{{\" at byte {} is never closed",
                offset + open
            ));
        };
        if let Some(nested) = after[..close].find("{{") {
            return Some(format!(
                "\"{{{{\" at byte {} opens inside another action",
                offset + open + 2 + nested
            ));
        }
        offset += open + 2 + close + 2;
        rest = &after[close + 2..];
    }
    None
}
