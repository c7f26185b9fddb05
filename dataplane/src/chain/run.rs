//! The execution loop (seed 002 Appendix A.5): start at the first task with `{input}`; for
//! each task take its input (`inputVar`, else the previous output), render `promptTemplate`,
//! run the handler up to `1 + retryOnFailure` times (each attempt bounded by `timeout`), apply
//! `outputTemplate` and `compose`, store the output under the task id and `previous_output`,
//! render `print`, and follow the first matching branch; a failure after the retries goes to
//! `onFailure` or fails the run. Every attempt leaves a captured state unit for the stack
//! trace; `maxSteps` stops loops.

use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value as Json;
use switchyard_crds::task_chain::{END, TaskSpec};

use super::handlers::{self, Calls, Context, Outcome};
use super::template::{self, Val};
use super::{TaskError, Value, Vars, compose, transition};
use crate::errors::{ApiError, ErrorKind};

/// Most state units a stack trace keeps (later ones are counted, not kept).
pub const MAX_TRACE_UNITS: usize = 500;
/// Longest `input`/`output` of a debug state unit, in bytes of JSON.
pub const MAX_TRACE_FIELD_BYTES: usize = 16 * 1024;

/// One attempt of one task (seed 002 `CapturedStateUnit`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct StateUnit {
    /// Task id.
    #[serde(rename = "taskID")]
    pub task_id: String,
    /// Handler.
    pub task_handler: &'static str,
    /// Variable the input came from.
    pub input_var: String,
    /// Type of the input (after `promptTemplate`).
    pub input_type: &'static str,
    /// Type of the output (`null` when the attempt failed).
    pub output_type: Option<&'static str>,
    /// The transition value the branches were compared with.
    pub transition: String,
    /// The task that ran next (`end` when the chain finished).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
    /// Duration of the attempt in milliseconds.
    pub duration: f64,
    /// Attempt number (0 first, then retries).
    pub attempt: u32,
    /// `{"error": "…"}` when the attempt failed.
    pub error: Option<UnitError>,
    /// The input (only for chains with `debug`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub input: Option<Json>,
    /// The output (only for chains with `debug`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<Json>,
    /// The rendered `print`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub print: Option<String>,
}

/// The error of a state unit (seed 002 `taskengine_ErrorResponse`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UnitError {
    /// Message.
    pub error: String,
}

/// A run that finished.
#[derive(Debug, Clone, PartialEq)]
pub struct Finished {
    /// The final output (`previous_output` when the chain ended).
    pub output: Value,
    /// The captured state units.
    pub trace: Trace,
}

/// A run that failed.
#[derive(Debug, Clone, PartialEq)]
pub struct Failed {
    /// The task at fault.
    pub task: String,
    /// What went wrong.
    pub error: ChainError,
    /// The captured state units.
    pub trace: Trace,
}

/// Why a run failed.
#[derive(Debug, Clone, PartialEq)]
pub enum ChainError {
    /// A task failed on every attempt and has no `onFailure`.
    Task {
        /// Attempts made.
        attempts: u32,
        /// The last attempt's error.
        error: TaskError,
    },
    /// No branch matched and there is no default branch.
    NoTransition(String),
    /// `maxSteps` task executions without reaching `end`.
    StepLimit(u32),
}

impl Failed {
    /// The error answered to the caller (OpenAI shape), naming the failing task.
    pub fn api_error(&self) -> ApiError {
        let task = &self.task;
        match &self.error {
            ChainError::Task { attempts, error } => {
                let tries = if *attempts > 1 {
                    format!(" after {attempts} attempts")
                } else {
                    String::new()
                };
                let message = format!("task \"{task}\" failed{tries}: {error}");
                match error {
                    TaskError::Model(e) => {
                        let mut out = ApiError::new(e.kind, message).code(e.code.unwrap_or("chain_task_failed"));
                        out.retry_after = e.retry_after;
                        out
                    }
                    TaskError::Raised(_) => ApiError::invalid(message).code("chain_error_raised"),
                    TaskError::Timeout(_) => {
                        ApiError::new(ErrorKind::Timeout, message).code("chain_task_timeout")
                    }
                    TaskError::Hook(_) | TaskError::Parse(_) => {
                        ApiError::new(ErrorKind::Upstream, message).code("chain_task_failed")
                    }
                    TaskError::Template { .. } => {
                        ApiError::new(ErrorKind::Internal, message).code("chain_template_error")
                    }
                    TaskError::Input(_) => {
                        ApiError::new(ErrorKind::Internal, message).code("chain_task_failed")
                    }
                }
            }
            ChainError::NoTransition(m) => {
                ApiError::new(ErrorKind::Internal, m.clone()).code("chain_no_transition")
            }
            ChainError::StepLimit(max) => ApiError::new(
                ErrorKind::Internal,
                format!(
                    "the chain ran {max} tasks (maxSteps) without reaching \"end\"; the last was task \"{task}\""
                ),
            )
            .code("chain_step_limit"),
        }
    }
}

/// The captured state units of a run, bounded.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Trace {
    /// Units kept (at most [`MAX_TRACE_UNITS`]).
    pub units: Vec<StateUnit>,
    /// Units left out past the bound.
    pub dropped: usize,
}

impl Trace {
    fn push(&mut self, u: StateUnit) {
        if self.units.len() < MAX_TRACE_UNITS {
            self.units.push(u);
        } else {
            self.dropped += 1;
        }
    }

    fn last_mut(&mut self) -> Option<&mut StateUnit> {
        if self.dropped == 0 {
            self.units.last_mut()
        } else {
            None
        }
    }
}

fn debug_json(v: &Value) -> Json {
    let j = v.to_json();
    let text = j.to_string();
    if text.len() <= MAX_TRACE_FIELD_BYTES {
        j
    } else {
        Json::String(format!(
            "{}… (truncated, {} bytes)",
            crate::classify::truncate(&text, MAX_TRACE_FIELD_BYTES),
            text.len()
        ))
    }
}

/// The input of a task: its variable, then the rendered prompt.
fn task_input(task: &TaskSpec, vars: &Vars) -> Result<(String, Value), TaskError> {
    let name = task.input_var.as_deref().unwrap_or("previous_output");
    let value = vars.get(name).cloned().ok_or_else(|| {
        TaskError::Input(format!(
            "inputVar \"{name}\" is not set: task \"{name}\" has not run in this run"
        ))
    })?;
    let value = match &task.prompt_template {
        Some(p) => Value::Text(template::render(p, Val::Scope(vars)).map_err(|error| {
            TaskError::Template {
                field: "promptTemplate".into(),
                error,
            }
        })?),
        None => value,
    };
    Ok((name.to_owned(), value))
}

/// One attempt: handler, then `outputTemplate` (which makes the rendered text both the
/// output and the transition value).
async fn attempt<C: Calls>(
    cx: &Context<'_>,
    calls: &C,
    task: &TaskSpec,
    input: Value,
    vars: &Vars,
) -> Result<Outcome, TaskError> {
    let mut out = handlers::execute(cx, calls, task, input, vars).await?;
    if let Some(t) = &task.output_template {
        let rendered =
            template::render(t, out.value.view()).map_err(|error| TaskError::Template {
                field: "outputTemplate".into(),
                error,
            })?;
        out = Outcome {
            value: Value::Text(rendered.clone()),
            eval: rendered,
        };
    }
    Ok(out)
}

/// Runs the chain of `cx` on `input`.
pub async fn run<C: Calls>(cx: &Context<'_>, calls: &C, input: Value) -> Result<Finished, Failed> {
    let chain = cx.chain;
    let mut vars = Vars::new(input);
    let mut trace = Trace::default();
    let Some(mut task) = chain.tasks.first() else {
        return Err(Failed {
            task: String::new(),
            error: ChainError::Task {
                attempts: 0,
                error: TaskError::Input("the chain has no tasks".into()),
            },
            trace,
        });
    };
    let find = |id: &str| chain.tasks.iter().find(|t| t.id == id);
    let mut steps = 0u32;
    loop {
        steps += 1;
        if steps > chain.max_steps {
            return Err(Failed {
                task: task.id.clone(),
                error: ChainError::StepLimit(chain.max_steps),
                trace,
            });
        }
        let attempts = task.retry_on_failure.saturating_add(1);
        let mut result: Result<Outcome, TaskError> = Err(TaskError::Input("not run".into()));
        for n in 0..attempts {
            let started = Instant::now();
            let prepared = task_input(task, &vars);
            let (input_var, input_type, debug_input) = match &prepared {
                Ok((name, v)) => (
                    name.clone(),
                    v.type_name(),
                    chain.debug.then(|| debug_json(v)),
                ),
                Err(_) => (
                    task.input_var
                        .clone()
                        .unwrap_or_else(|| "previous_output".into()),
                    "nil",
                    None,
                ),
            };
            let run_once = async {
                let (_, input) = prepared?;
                attempt(cx, calls, task, input, &vars).await
            };
            result = match task.timeout {
                Some(t) => {
                    let limit: Duration = t.get();
                    tokio::time::timeout(limit, run_once)
                        .await
                        .unwrap_or(Err(TaskError::Timeout(limit)))
                }
                None => run_once.await,
            };
            trace.push(StateUnit {
                task_id: task.id.clone(),
                task_handler: task.handler.as_str(),
                input_var,
                input_type,
                output_type: result.as_ref().ok().map(|o| o.value.type_name()),
                transition: result.as_ref().map(|o| o.eval.clone()).unwrap_or_default(),
                next: None,
                duration: started.elapsed().as_secs_f64() * 1000.0,
                attempt: n,
                error: result.as_ref().err().map(|e| UnitError {
                    error: e.to_string(),
                }),
                input: debug_input,
                output: match (&result, chain.debug) {
                    (Ok(o), true) => Some(debug_json(&o.value)),
                    _ => None,
                },
                print: None,
            });
            if let Err(e) = &result {
                tracing::debug!(chain = %chain.key, task = %task.id, attempt = n, error = %e, "task attempt failed");
            } else {
                break;
            }
        }
        let out = match result {
            Ok(out) => out,
            Err(error) => match &task.transition.on_failure {
                Some(target) => {
                    if let Some(u) = trace.last_mut() {
                        u.next = Some(target.clone());
                    }
                    if target == END {
                        return Ok(Finished {
                            output: vars
                                .get("previous_output")
                                .cloned()
                                .unwrap_or(Value::Text(String::new())),
                            trace,
                        });
                    }
                    match find(target) {
                        Some(t) => {
                            task = t;
                            continue;
                        }
                        None => {
                            return Err(Failed {
                                task: task.id.clone(),
                                error: ChainError::Task { attempts, error },
                                trace,
                            });
                        }
                    }
                }
                None => {
                    return Err(Failed {
                        task: task.id.clone(),
                        error: ChainError::Task { attempts, error },
                        trace,
                    });
                }
            },
        };
        let next_value = match &task.compose {
            Some(c) => {
                let with = vars.get(&c.with_var).cloned();
                let composed = match with {
                    Some(w) => compose::compose(c.strategy, &out.value, &w),
                    None => Err(TaskError::Input(format!(
                        "compose.withVar \"{}\" is not set in this run",
                        c.with_var
                    ))),
                };
                match composed {
                    Ok(v) => {
                        vars.set(format!("{}_composed", task.id), v.clone());
                        v
                    }
                    Err(error) => {
                        return Err(Failed {
                            task: task.id.clone(),
                            error: ChainError::Task { attempts: 1, error },
                            trace,
                        });
                    }
                }
            }
            None => out.value.clone(),
        };
        vars.set(task.id.clone(), out.value);
        vars.set("previous_output", next_value);
        if let Some(p) = &task.print {
            let printed = template::render(p, Val::Scope(&vars))
                .unwrap_or_else(|e| format!("<print: template error at {e}>"));
            tracing::debug!(chain = %chain.key, task = %task.id, print = %printed, "task print");
            if let Some(u) = trace.last_mut() {
                u.print = Some(printed);
            }
        }
        let next = match transition::next(&task.id, &task.transition, &out.eval) {
            Ok(n) => n,
            Err(m) => {
                return Err(Failed {
                    task: task.id.clone(),
                    error: ChainError::NoTransition(m),
                    trace,
                });
            }
        };
        if let Some(u) = trace.last_mut() {
            u.next = Some(next.to_owned());
        }
        if next == END {
            return Ok(Finished {
                output: vars
                    .get("previous_output")
                    .cloned()
                    .unwrap_or(Value::Text(String::new())),
                trace,
            });
        }
        match find(next) {
            Some(t) => task = t,
            None => {
                return Err(Failed {
                    task: task.id.clone(),
                    error: ChainError::NoTransition(format!(
                        "task \"{}\": goto \"{next}\" names no task",
                        task.id
                    )),
                    trace,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests;
