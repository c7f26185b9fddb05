//! `TaskChain`: a multi-step workflow served as a model (seed 002 TaskChainDefinition).

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::common::{GoDuration, HeaderSpec, TargetRef};
use crate::provider::ProviderType;

/// Task ids: usable as template variables (`{{.my_task}}`).
pub const TASK_ID_PATTERN: &str = r"^[A-Za-z_][A-Za-z0-9_]*$";
/// The reserved `goto` target that ends a chain.
pub const END: &str = "end";

/// Spec of a TaskChain.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "switchyard.dev",
    version = "v1alpha1",
    kind = "TaskChain",
    namespaced,
    status = "TaskChainStatus",
    shortname = "swtc",
    category = "switchyard",
    doc = "A multi-step workflow served as the model `chain/NAME` and at /v1/chains/NAME/chat/completions.",
    printcolumn(name = "Tasks", type_ = "integer", json_path = ".status.taskCount"),
    printcolumn(name = "Runs", type_ = "integer", json_path = ".status.runs"),
    printcolumn(name = "Failures", type_ = "integer", json_path = ".status.failures"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].status"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct TaskChainSpec {
    /// What the chain does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub description: Option<String>,
    /// Capture each task's input and output in the stack trace.
    #[serde(default)]
    pub debug: bool,
    /// Context window limit: chat history is trimmed (oldest first) to fit. 0 = no limit.
    #[serde(default)]
    #[schemars(range(min = 0, max = 10000000))]
    pub token_limit: u32,
    /// Most task executions per run (stops loops).
    #[serde(default = "default_max_steps")]
    #[schemars(range(min = 1, max = 10000), default = "default_max_steps")]
    pub max_steps: u32,
    /// Remote HTTP hooks tasks may call.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub hooks: Vec<HookSpec>,
    /// Tasks; execution starts at the first.
    #[schemars(length(min = 1, max = 256))]
    pub tasks: Vec<TaskSpec>,
}

fn default_max_steps() -> u32 {
    100
}

/// A remote hook (seed 002 RemoteHook).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HookSpec {
    /// Name tasks use in `hook.name` and `execute.hooks`.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[A-Za-z_][-A-Za-z0-9_]*$")
    )]
    pub name: String,
    /// Endpoint URL.
    #[schemars(length(min = 1, max = 2048), regex(pattern = r"^https?://[^\s]+$"))]
    pub url: String,
    /// Per-call timeout (default 10s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<GoDuration>,
    /// Headers, credentials from Secrets.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 32))]
    pub headers: Vec<HeaderSpec>,
    /// An argument injected into every call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub properties: Option<InjectionArg>,
}

/// An argument injected into hook calls (seed 002 InjectionArg).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct InjectionArg {
    /// Where: body, query or header.
    #[serde(rename = "in")]
    pub in_: InjectionLocation,
    /// Argument name.
    #[schemars(length(min = 1, max = 256))]
    pub name: String,
    /// Argument value.
    #[schemars(length(max = 8192))]
    pub value: String,
}

/// Injection locations.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum InjectionLocation {
    /// JSON body field.
    Body,
    /// Query parameter.
    Query,
    /// HTTP header.
    Header,
}

/// One task (seed 002 TaskDefinition).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskSpec {
    /// Unique id; the task's output is stored under it.
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[A-Za-z_][A-Za-z0-9_]*$")
    )]
    pub id: String,
    /// What the task does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 1024))]
    pub description: Option<String>,
    /// How the task's input (or model output) is interpreted.
    pub handler: Handler,
    /// Variable used as input (`input`, a task id, `previous_output`); default: the previous output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub input_var: Option<String>,
    /// Prompt rendered from variables (`{{.input}}`, `{{.task_id}}`, `{{.previous_output}}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 65536))]
    pub prompt_template: Option<String>,
    /// System instruction for model calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 65536))]
    pub system_instruction: Option<String>,
    /// Allowed answers for `condition_key`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64), inner(length(min = 1, max = 256)))]
    pub valid_conditions: Vec<String>,
    /// Model call settings (model_execution, condition_key, parse_* handlers with a prompt).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub execute: Option<ExecuteConfig>,
    /// Hook call (`hook` handler).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hook: Option<HookCall>,
    /// Combine the output with another variable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compose: Option<Compose>,
    /// Retries after a failure, each with `timeout`.
    #[serde(default)]
    #[schemars(range(min = 0, max = 10))]
    pub retry_on_failure: u32,
    /// Per-attempt timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<GoDuration>,
    /// Template logged (and shown in the stack trace) after the task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 8192))]
    pub print: Option<String>,
    /// Template over the hook's JSON output that becomes the task's output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 65536))]
    pub output_template: Option<String>,
    /// Where to go next.
    #[serde(default)]
    pub transition: Transition,
}

/// Task handlers (seed 002 TaskHandler).
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Handler {
    /// Model answer checked against `validConditions`.
    ConditionKey,
    /// Integer.
    ParseNumber,
    /// Float.
    ParseScore,
    /// `5-7` (or `5`).
    ParseRange,
    /// Text as is.
    RawString,
    /// Text in, vector out.
    Embedding,
    /// Fails the task with the rendered prompt as message.
    RaiseError,
    /// Chat call through the normal routing path.
    ModelExecution,
    /// Runs the tool calls of the previous model answer through hooks.
    ExecuteToolCalls,
    /// Parses `/command args`.
    ParseTransition,
    /// Parses `key=value` lines.
    ParseKeyValue,
    /// Wraps chat history as an OpenAI chat completion.
    ConvertToOpenaiChatResponse,
    /// Passes the input through.
    Noop,
    /// Calls a remote hook.
    Hook,
}

impl Handler {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ConditionKey => "condition_key",
            Self::ParseNumber => "parse_number",
            Self::ParseScore => "parse_score",
            Self::ParseRange => "parse_range",
            Self::RawString => "raw_string",
            Self::Embedding => "embedding",
            Self::RaiseError => "raise_error",
            Self::ModelExecution => "model_execution",
            Self::ExecuteToolCalls => "execute_tool_calls",
            Self::ParseTransition => "parse_transition",
            Self::ParseKeyValue => "parse_key_value",
            Self::ConvertToOpenaiChatResponse => "convert_to_openai_chat_response",
            Self::Noop => "noop",
            Self::Hook => "hook",
        }
    }
}

/// Model call settings (seed 002 LLMExecutionConfig).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExecuteConfig {
    /// Explicit target; otherwise the normal routing path picks one for `model`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<TargetRef>,
    /// Model to call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 256))]
    pub model: Option<String>,
    /// Candidate models in preference order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16), inner(length(min = 1, max = 256)))]
    pub models: Vec<String>,
    /// Restrict to this provider type.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider: Option<ProviderType>,
    /// Restrict to these provider types.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub providers: Vec<ProviderType>,
    /// Sampling temperature.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 2.0))]
    pub temperature: Option<f64>,
    /// Output token cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_tokens: Option<u32>,
    /// Hooks offered to the model as tools (`hook.tool`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub hooks: Vec<String>,
    /// Tools hidden from the model (`tool` or `hook.tool`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 256))]
    pub hide_tools: Vec<String>,
    /// Pass the caller's own tools to the model.
    #[serde(default)]
    pub pass_clients_tools: bool,
}

/// A hook call (seed 002 HookCall).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HookCall {
    /// Hook name (one of `spec.hooks`).
    #[schemars(length(min = 1, max = 63))]
    pub name: String,
    /// Tool of the hook to invoke.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub tool_name: Option<String>,
    /// Arguments (values are templates).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schemars(schema_with = "crate::common::string_map_schema")]
    pub args: BTreeMap<String, String>,
}

/// Compose settings (seed 002 ComposeTask).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Compose {
    /// How to combine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<ComposeStrategy>,
    /// Variable to combine with.
    #[schemars(length(min = 1, max = 63))]
    pub with_var: String,
}

/// Compose strategies.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ComposeStrategy {
    /// The output replaces the variable.
    Override,
    /// Both chat histories, concatenated.
    MergeChatHistories,
    /// The output string appended to the variable's chat history.
    AppendStringToChatHistory,
}

/// Where to go after a task (seed 002 TaskTransition).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Transition {
    /// Evaluated in order; the first non-default match wins, then the `default` branch.
    /// No branches: the chain ends after this task.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 64))]
    pub branches: Vec<Branch>,
    /// Task to run when this one fails after its retries (`end` ends the chain normally);
    /// unset: the chain fails.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 63))]
    pub on_failure: Option<String>,
}

/// A branch (seed 002 TransitionBranch).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Branch {
    /// Comparison of the task's output with `when`.
    #[serde(default)]
    pub operator: Operator,
    /// Value compared with (for in_range: `min-max`).
    #[serde(default)]
    #[schemars(length(max = 1024))]
    pub when: String,
    /// Next task id, or `end`.
    #[schemars(length(min = 1, max = 63))]
    pub goto: String,
}

/// Transition operators (seed 002 OperatorTerm).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, Default, JsonSchema)]
pub enum Operator {
    /// Exact string match.
    #[default]
    #[serde(rename = "equals")]
    Equals,
    /// Substring.
    #[serde(rename = "contains")]
    Contains,
    /// Prefix.
    #[serde(rename = "starts_with")]
    StartsWith,
    /// Suffix.
    #[serde(rename = "ends_with")]
    EndsWith,
    /// Numerically greater (symbol form).
    #[serde(rename = ">")]
    GreaterSymbol,
    /// Numerically greater.
    #[serde(rename = "gt")]
    Gt,
    /// Numerically less (symbol form).
    #[serde(rename = "<")]
    LessSymbol,
    /// Numerically less.
    #[serde(rename = "lt")]
    Lt,
    /// Within `min-max`, inclusive.
    #[serde(rename = "in_range")]
    InRange,
    /// Taken when no other branch matches.
    #[serde(rename = "default")]
    Default,
}

impl Operator {
    /// Wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Equals => "equals",
            Self::Contains => "contains",
            Self::StartsWith => "starts_with",
            Self::EndsWith => "ends_with",
            Self::GreaterSymbol => ">",
            Self::Gt => "gt",
            Self::LessSymbol => "<",
            Self::Lt => "lt",
            Self::InRange => "in_range",
            Self::Default => "default",
        }
    }
}

/// Observed state of a TaskChain.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TaskChainStatus {
    /// Generation the status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Ready (False with reason InvalidGraph and the exact problem), ResolvedRefs.
    #[serde(default)]
    #[schemars(schema_with = "crate::common::conditions_schema")]
    pub conditions: Vec<Condition>,
    /// Number of tasks (for `kubectl get`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_count: Option<u32>,
    /// Runs started.
    #[serde(default)]
    pub runs: u64,
    /// Runs that failed.
    #[serde(default)]
    pub failures: u64,
    /// Start of the last run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run_at: Option<Time>,
}
